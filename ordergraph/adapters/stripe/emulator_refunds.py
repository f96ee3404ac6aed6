"""Two of Stripe's refund rules that localstripe 1.15 lacks, taught to the emulator
(`python -m ordergraph.adapters.stripe.emulator`), so partial refunds behave as on Stripe:

- a PaymentIntent shows `amount_received`, what its charge captured (0 until it succeeds);
- a refund larger than what is left unrefunded on the charge is refused (400), instead of
  refunding more than was captured.
"""

from __future__ import annotations

from typing import Any


def teach_refund_rules(resources: Any) -> None:
    def amount_received(self: Any) -> int:
        charge = self.latest_charge
        if charge is None or charge.status != "succeeded" or not charge.captured:
            return 0
        return int(charge.amount)

    resources.PaymentIntent.amount_received = property(amount_received)

    refund_init = resources.Refund.__init__

    def __init__(self: Any, charge: Any = None, payment_intent: Any = None,
                 amount: Any = None, **kwargs: Any) -> None:
        charge_obj = _charge_of(resources, charge, payment_intent)
        if charge_obj is not None:
            left = int(charge_obj.amount) - int(charge_obj.amount_refunded)
            asked = resources.try_convert_to_int(amount) if amount is not None else left
            if left <= 0:
                raise resources.UserError(
                    400, f"Charge {charge_obj.id} has already been refunded.")
            if isinstance(asked, int) and asked > left:
                raise resources.UserError(
                    400, f"Refund amount ({asked}) is greater than unrefunded amount on "
                         f"charge ({left})")
        refund_init(self, charge=charge, payment_intent=payment_intent, amount=amount,
                    **kwargs)

    resources.Refund.__init__ = __init__


def _charge_of(resources: Any, charge: Any, payment_intent: Any) -> Any:
    """The charge a refund request names, or None (localstripe then refuses it itself)."""
    try:
        if isinstance(charge, str) and charge.startswith("ch_"):
            return resources.Charge._api_retrieve(charge)
        if isinstance(payment_intent, str) and payment_intent.startswith("pi_"):
            return resources.PaymentIntent._api_retrieve(payment_intent).latest_charge
    except resources.UserError:
        return None
    return None

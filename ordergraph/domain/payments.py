"""What the payment provider tells us, in the domain's words."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ordergraph.domain.ports import PaymentIntent, PaymentState


class PaymentSignal(enum.Enum):
    """The news a provider status or event carries for an order."""

    SUCCEEDED = "succeeded"          # money taken: the order is PAID
    FAILED = "failed"                # the attempt failed (declined): the order FAILED
    CANCELED = "canceled"            # the intent was cancelled: the order is CANCELLED
    REFUNDED = "refunded"            # the charge was refunded in full: the order is REFUNDED
    PARTIALLY_REFUNDED = "partially_refunded"  # part of it: recorded, the order stays PAID
    PROCESSING = "processing"        # in flight: record it, wait
    ACTION_REQUIRED = "requires_action"  # 3-D Secure: the customer acts (e.g. in Stripe.js)
    PENDING = "pending"              # nothing new (no payment method yet)


_SIGNALS = {
    PaymentState.SUCCEEDED: PaymentSignal.SUCCEEDED,
    PaymentState.CANCELED: PaymentSignal.CANCELED,
    PaymentState.PROCESSING: PaymentSignal.PROCESSING,
    PaymentState.ACTION_REQUIRED: PaymentSignal.ACTION_REQUIRED,
    PaymentState.FAILED: PaymentSignal.FAILED,
    PaymentState.PENDING: PaymentSignal.PENDING,
}


def signal_for_intent(intent: PaymentIntent) -> PaymentSignal:
    """The news an intent's state carries (the gateway read the provider's status)."""
    return _SIGNALS[intent.state]


def refund_signal(intent: PaymentIntent) -> PaymentSignal:
    """The news of a refund, read from the intent as the provider shows it now: REFUNDED only
    when its refunds cover the whole capture (README, Guarantees: money), PARTIALLY_REFUNDED
    for less, and otherwise what the intent's own state says."""
    received, refunded = intent.amount_received, intent.amount_refunded or 0
    if intent.state is PaymentState.SUCCEEDED and refunded > 0:
        captured = intent.amount if received is None else received
        return PaymentSignal.REFUNDED if refunded >= captured else \
            PaymentSignal.PARTIALLY_REFUNDED
    return signal_for_intent(intent)


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """One piece of news about an intent, from a webhook, a status read, or our own call."""

    intent: PaymentIntent
    signal: PaymentSignal
    event_id: str | None = None  # the provider's event id, for de-duplication
    event_type: str | None = None

    @classmethod
    def from_intent(cls, intent: PaymentIntent) -> PaymentUpdate:
        return cls(intent=intent, signal=signal_for_intent(intent))

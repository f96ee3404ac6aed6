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
    """The news an intent's state carries (the gateway read the provider's status). A
    succeeded intent whose refunds cover its capture is REFUNDED, whoever reads it (a
    status read, the sweeper, a webhook of any type): its money is back, so it must never
    make an order PAID (README, Guarantees: money)."""
    if intent.state is PaymentState.SUCCEEDED and _refunded(intent) >= _captured(intent) > 0:
        return PaymentSignal.REFUNDED
    return _SIGNALS[intent.state]


def refund_signal(intent: PaymentIntent) -> PaymentSignal:
    """The news of a refund, read from the intent as the provider shows it now: REFUNDED only
    when its refunds cover the whole capture (README, Guarantees: money), PARTIALLY_REFUNDED
    for less, and otherwise what the intent's own state says."""
    if intent.state is PaymentState.SUCCEEDED and 0 < _refunded(intent) < _captured(intent):
        return PaymentSignal.PARTIALLY_REFUNDED
    return signal_for_intent(intent)


def _captured(intent: PaymentIntent) -> int:
    return intent.amount if intent.amount_received is None else intent.amount_received


def _refunded(intent: PaymentIntent) -> int:
    return intent.amount_refunded or 0


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

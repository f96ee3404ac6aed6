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
    REFUNDED = "refunded"            # the charge was refunded: the order is REFUNDED
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

"""Stripe webhook events, verified and read as PaymentUpdates."""

from __future__ import annotations

import json
from typing import Any

import stripe

from ordergraph.adapters.stripe import PROVIDER
from ordergraph.adapters.stripe.gateway import INSTALLATION_KEY, intent_from_stripe
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import PaymentIntent, PaymentState

# The events we act on; every other type is acknowledged and ignored.
SIGNALS = {
    "payment_intent.succeeded": PaymentSignal.SUCCEEDED,
    "payment_intent.payment_failed": PaymentSignal.FAILED,
    "payment_intent.canceled": PaymentSignal.CANCELED,
    "payment_intent.processing": PaymentSignal.PROCESSING,
    "charge.refunded": PaymentSignal.REFUNDED,
}


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


class InvalidWebhook(Exception):
    """Missing, forged, stale or unparseable: answer 400 and change nothing."""


def parse_event(payload: bytes, signature: str | None, secret: str, *,
                installation_id: str = "") -> tuple[str, str, PaymentUpdate | None]:
    """(event id, event type, update or None for types we do not act on).

    The signature is checked over the raw body with Stripe's SDK (default 300 s tolerance).
    """
    if not signature:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret,
                                              stripe.Webhook.DEFAULT_TOLERANCE)
        data = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        raise InvalidWebhook(f"bad signature: {error.user_message or error}") from None
    except ValueError as error:  # not JSON (or not UTF-8)
        raise InvalidWebhook(f"unparseable payload: {error}") from None
    # Signed JSON that is no event object (`[]`, `null`, `"x"`) is refused the same way;
    # the SDK's Event would fail on it deep inside.
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), type(data).__name__)
        raise InvalidWebhook(f"unexpected payload: a JSON {kind}, not an event object")
    event_id, event_type = str(data.get("id")), str(data.get("type"))
    signal = SIGNALS.get(event_type)
    if signal is None:
        return event_id, event_type, None
    body = data.get("data") or {}
    obj = (body.get("object") or {}) if isinstance(body, dict) else None
    if not isinstance(obj, dict):
        raise InvalidWebhook(f"unexpected {event_type} payload: data.object is not an object")
    try:
        intent = _charge_as_intent(obj, installation_id) if event_type == "charge.refunded" \
            else intent_from_stripe(obj, installation_id=installation_id)
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidWebhook(f"unexpected {event_type} payload: {error}") from None
    return event_id, event_type, PaymentUpdate(intent=intent, signal=signal, event_id=event_id,
                                               event_type=event_type)


def _charge_as_intent(charge: dict[str, Any], installation_id: str) -> PaymentIntent:
    """A refunded charge, seen as news about its PaymentIntent."""
    intent_id = charge["payment_intent"]
    if not intent_id:
        raise ValueError("charge without payment_intent")
    metadata = charge.get("metadata") or {}
    ours = (metadata.get(INSTALLATION_KEY) or "") == installation_id
    order_id = metadata.get("order_id") if ours else None
    return PaymentIntent(id=str(intent_id), status="succeeded", state=PaymentState.SUCCEEDED,
                         provider=PROVIDER, amount=int(charge["amount"]),
                         currency=str(charge["currency"]).lower(),
                         order_id=int(order_id) if str(order_id or "").isdigit() else None)

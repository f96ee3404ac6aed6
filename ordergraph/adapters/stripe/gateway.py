"""The PaymentGateway on Stripe's PaymentIntents, through the official SDK's async calls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe

from ordergraph.adapters.metrics import stripe_call
from ordergraph.adapters.stripe import PROVIDER
from ordergraph.domain.errors import IntentNotFound, PaymentFailed
from ordergraph.domain.model import Money
from ordergraph.domain.ports import PaymentIntent, PaymentState
from ordergraph.domain.shipping import Address

log = logging.getLogger(__name__)
T = TypeVar("T")

# Stripe's own client waits 80 s; a checkout should not.
REQUEST_TIMEOUT_SECONDS = 15.0


class StripeGateway:
    """Every intent we open carries our installation id in its metadata and every write an
    idempotency key prefixed with it: two shops on one Stripe account never collide, and an
    intent that is not ours is read with no order id (the domain then ignores it)."""

    provider = PROVIDER

    def __init__(self, secret_key: str, *, installation_id: str | None = "",
                 api_base: str | None = None, max_network_retries: int = 2,
                 timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.installation_id = installation_id
        # The use cases cut every call at PAYMENT_PROVIDER_DEADLINE (README); no SDK
        # attempt needs to outlive it.
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key=secret_key,
            base_addresses={"api": api_base} if api_base else None,
            # Safe: every write carries an idempotency key derived from our ids.
            max_network_retries=max_network_retries,
            http_client=self._http,
        )

    @property
    def http_client(self) -> Any:
        """The SDK's httpx.AsyncClient (for tracing)."""
        return getattr(self._http, "_client_async", None)

    async def aclose(self) -> None:
        """Close the pooled HTTP connections (app shutdown)."""
        await self._http.close_async()

    @stripe_call("create_intent")
    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            shipping: Address | None = None,
                            receipt_email: str | None = None) -> PaymentIntent:
        params: dict[str, Any] = {
            "amount": amount.amount, "currency": amount.currency,
            "payment_method_types": ["card"],
            "metadata": {"order_id": str(order_id), INSTALLATION_KEY: self._installation()}}
        if shipping is not None:
            params["shipping"] = stripe_shipping(shipping)
        if receipt_email is not None:
            params["receipt_email"] = receipt_email
        intent = await _call(self._client.v1.payment_intents.create_async(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": self._key(idempotency_key)},
        ))
        return self._intent(intent.to_dict())

    @stripe_call("retrieve_intent")
    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(
                intent_id, params={"expand": ["latest_charge"]})  # its refunds, too
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                raise IntentNotFound(intent_id) from error
            raise _as_payment_failure(error) from error
        except stripe.StripeError as error:
            raise _as_payment_failure(error) from error
        return self._intent(intent.to_dict())

    @stripe_call("confirm_intent")
    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        """Attach the payment method, then confirm (two calls: works on Stripe and the
        emulator alike). A decline raises PaymentFailed(PAYMENT_DECLINED)."""
        await _call(self._client.v1.payment_intents.update_async(
            intent_id, params={"payment_method": payment_method_id},
            options={"idempotency_key": self._key(f"{idempotency_key}-attach")},
        ))
        intent = await _call(self._client.v1.payment_intents.confirm_async(
            intent_id, options={"idempotency_key": self._key(idempotency_key)}))
        return self._intent(intent.to_dict())

    @stripe_call("cancel_intent")
    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        """Cancel if still cancellable; otherwise return the intent as it is (e.g. succeeded)."""
        try:
            intent = await self._client.v1.payment_intents.cancel_async(
                intent_id, options={"idempotency_key": self._key(idempotency_key)})
        except stripe.InvalidRequestError as error:
            log.info("intent %s not cancelled (%s); reading its status", intent_id,
                     error.user_message or error)
            return await self.retrieve_intent(intent_id)
        except stripe.StripeError as error:
            raise _as_payment_failure(error) from error
        return self._intent(intent.to_dict())

    @stripe_call("refund")
    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        """Refund the intent in full, once. Refunds the provider already holds for it count
        (ours after a lost answer, or a partial one made in the dashboard): one of them is
        returned when together they cover the capture, else only what they leave is refunded
        (README, Payments: "Refunds"). Stripe's idempotency keys expire after a day and a lost
        answer must not become a double refund, so we look before and after."""
        captured = await self._captured(intent_id)
        existing, refunded = await self._existing_refunds(intent_id)
        if existing is not None and refunded >= captured:
            return existing
        params: dict[str, Any] = {"payment_intent": intent_id}
        if refunded:
            # The rest only, under a key of its own (the same key with another amount is
            # refused); a retry after a lost answer finds the same rest, so the same key.
            params["amount"] = captured - refunded
            idempotency_key = f"{idempotency_key}-rest-{captured - refunded}"
        try:
            refund = await self._client.v1.refunds.create_async(
                params=params,  # type: ignore[arg-type]
                # No blind retries: after a lost answer we look instead.
                options={"idempotency_key": self._key(idempotency_key),
                         "max_network_retries": 0},
            )
        except (stripe.APIConnectionError, stripe.APIError) as error:
            log.warning("refund of %s: no answer (%r); looking for it", intent_id, error)
            found, refunded = await self._existing_refunds(intent_id)
            if found is not None and refunded >= captured:
                return found
            raise _as_payment_failure(error) from error
        except stripe.StripeError as error:
            raise _as_payment_failure(error) from error
        return str(refund.id)

    async def _captured(self, intent_id: str) -> int:
        """What the intent's charge captured (its amount when the provider does not say). An
        intent the provider does not know is refused as Stripe refuses a refund of it (a
        decline): the refund request is then closed, not retried for ever."""
        try:
            intent = await self.retrieve_intent(intent_id)
        except IntentNotFound as unknown:
            raise PaymentFailed.declined(unknown.message, "resource_missing") from unknown
        return intent.amount if intent.amount_received is None else intent.amount_received

    async def _existing_refunds(self, intent_id: str) -> tuple[str | None, int]:
        """(the newest refund the provider holds for the intent, all of them summed)."""
        refunds = await _call(self._client.v1.refunds.list_async(
            params={"payment_intent": intent_id, "limit": 100}))
        held = [refund for refund in refunds.data
                if getattr(refund, "status", None) in ("succeeded", "pending", None)]
        total = sum(int(getattr(refund, "amount", 0) or 0) for refund in held)
        return (str(held[0].id) if held else None), total

    def _installation(self) -> str:
        if self.installation_id is None:  # the database has not answered since start-up
            raise PaymentFailed.provider_error()
        return self.installation_id

    def _key(self, idempotency_key: str) -> str:
        installation = self._installation()
        return f"{installation}-{idempotency_key}" if installation else idempotency_key

    def _intent(self, data: dict[str, Any]) -> PaymentIntent:
        return intent_from_stripe(data, installation_id=self._installation(),
                                  provider=self.provider)


async def _call(request: Awaitable[T]) -> T:
    try:
        return await request
    except stripe.StripeError as error:
        raise _as_payment_failure(error) from error


def _as_payment_failure(error: stripe.StripeError) -> PaymentFailed:
    if isinstance(error, stripe.CardError):
        details = error.error
        decline_code = getattr(details, "decline_code", None) or error.code or "card_declined"
        return PaymentFailed.declined(error.user_message or "Your card was declined.",
                                      decline_code)
    if isinstance(error, stripe.InvalidRequestError) and error.http_status in (400, 404):
        # Our request named something the provider refuses (an unknown payment method...).
        return PaymentFailed.declined(error.user_message or "The payment was refused.",
                                      error.code or "invalid_request")
    log.warning("payment provider error: %r", error)
    return PaymentFailed.provider_error()


INSTALLATION_KEY = "installation"


def stripe_shipping(address: Address) -> dict[str, Any]:
    """Stripe's `shipping` hash (its `state` is our region); empty parts are left out."""
    parts = {"line1": address.line1, "line2": address.line2, "city": address.city,
             "postal_code": address.postal_code, "state": address.region,
             "country": address.country}
    return {"name": address.name,
            "address": {key: value for key, value in parts.items() if value is not None}}


# Stripe's PaymentIntent statuses in the domain's words; any other is PENDING.
STATES = {
    "succeeded": PaymentState.SUCCEEDED,
    "canceled": PaymentState.CANCELED,
    "processing": PaymentState.PROCESSING,
    "requires_action": PaymentState.ACTION_REQUIRED,
}


def payment_state(status: str, *, failed: bool = False) -> PaymentState:
    """A Stripe status as a PaymentState: back to requires_payment_method with an error is
    a failed attempt (a decline)."""
    if status == "requires_payment_method" and failed:
        return PaymentState.FAILED
    return STATES.get(status, PaymentState.PENDING)


def intent_from_stripe(data: dict[str, Any], *, installation_id: str = "",
                       provider: str = PROVIDER) -> PaymentIntent:
    """A PaymentIntent from Stripe's JSON (an API response or a webhook's data.object).

    Its order id is read only from intents this installation opened: another shop's intent
    on the same account names an order of theirs, not ours."""
    error = data.get("last_payment_error") or {}
    metadata = data.get("metadata") or {}
    ours = (metadata.get(INSTALLATION_KEY) or "") == installation_id
    order_id = metadata.get("order_id") if ours else None
    status, last_error = data.get("status") or "unknown", error.get("message") or error.get("code")
    charge = data.get("latest_charge")  # an object when expanded (retrieve_intent does)
    received = data.get("amount_received")
    return PaymentIntent(
        id=data["id"], status=status, state=payment_state(status, failed=bool(last_error)),
        provider=provider,
        amount=int(data.get("amount") or 0), currency=str(data.get("currency") or "").lower(),
        client_secret=data.get("client_secret"),
        last_error=last_error,
        decline_code=error.get("decline_code") or error.get("code"),
        order_id=int(order_id) if order_id and str(order_id).isdigit() else None,
        amount_received=int(received) if received is not None else None,
        amount_refunded=int(charge.get("amount_refunded") or 0)
        if isinstance(charge, dict) else None,
    )

"""The payment gateways by provider name: the Gateways port (domain/ports.py).

ordergraph/wiring_payments.py builds it with one gateway per provider; the first is the
default, where new checkouts open their payments. A payment that exists goes to the gateway
its order names (`order.payment.provider`)."""

from __future__ import annotations

import logging

from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import Money, Payment
from ordergraph.domain.ports import PaymentGateway, PaymentIntent
from ordergraph.domain.shipping import Address

log = logging.getLogger(__name__)


class GatewayRegistry:
    def __init__(self, default: PaymentGateway, *others: PaymentGateway) -> None:
        self.default = default
        self.gateways = {gateway.provider: gateway for gateway in (default, *others)}
        assert len(self.gateways) == 1 + len(others), "one gateway per provider"

    @property
    def provider(self) -> str:
        return self.default.provider

    def for_provider(self, provider: str) -> PaymentGateway:
        gateway = self.gateways.get(provider)
        if gateway is None:
            log.error("no payment gateway for provider %r (wired: %s)", provider,
                      ", ".join(self.gateways))
            raise PaymentFailed.provider_error()
        return gateway

    def for_payment(self, payment: Payment | None) -> PaymentGateway:
        return self.default if payment is None else self.for_provider(payment.provider)

    # The default gateway's calls: a new checkout's payment.

    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            shipping: Address | None = None,
                            receipt_email: str | None = None) -> PaymentIntent:
        return await self.default.create_intent(order_id=order_id, amount=amount,
                                                idempotency_key=idempotency_key,
                                                shipping=shipping, receipt_email=receipt_email)

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return await self.default.retrieve_intent(intent_id)

    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        return await self.default.confirm_intent(intent_id, payment_method_id=payment_method_id,
                                                 idempotency_key=idempotency_key)

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        return await self.default.cancel_intent(intent_id, idempotency_key=idempotency_key)

    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        return await self.default.refund(intent_id, idempotency_key=idempotency_key)

    async def aclose(self) -> None:
        """Close every gateway's connections (shutdown)."""
        for gateway in self.gateways.values():
            close = getattr(gateway, "aclose", None)
            if close is not None:
                await close()

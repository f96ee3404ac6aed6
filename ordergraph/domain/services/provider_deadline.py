"""PAYMENT_PROVIDER_DEADLINE for every provider call, not only checkout's (README, Settings
and "Payment provider slow or hung").

The use cases take their gateways through one of these wrappers of the Gateways port:

- `per_request`: everything one request asks the provider (`payOrder`'s confirmation and the
  read after it, a refund, a cancel, `syncPayment`'s read, a webhook's refund) shares one
  deadline, counted from the first call, so a deploy's SHUTDOWN_TIMEOUT outlasts the request;
- `per_pass`: the sweeper gives each call the deadline, and once one has hung past it the
  pass stops asking (`gave_up`): what it had not reached waits, untouched, for a later pass,
  instead of each failing at once and being backed off for an attempt never made.

A call past its deadline is cancelled and raises PaymentFailed(PAYMENT_PROVIDER_ERROR), like
any provider failure, so the callers' recovery applies unchanged: we cannot tell whether the
provider did the work, and the idempotency keys make asking again safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import Money, Payment
from ordergraph.domain.ports import Gateways, PaymentGateway, PaymentIntent
from ordergraph.domain.shipping import Address

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a request waits for the provider, retries included (PAYMENT_PROVIDER_DEADLINE):
# less than the server's graceful shutdown, so a deploy never cuts a request in half.
DEFAULT_PROVIDER_DEADLINE = timedelta(seconds=8)


class _Budget:
    def __init__(self, deadline: timedelta, *, shared: bool) -> None:
        self.deadline = deadline
        self.shared = shared
        self.ends_at: float | None = None  # the shared deadline, from the first call
        self.hung = False                  # a call of this pass outlived its deadline

    async def run(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        now = asyncio.get_running_loop().time()
        if self.ends_at is None or not self.shared:
            self.ends_at = now + self.deadline.total_seconds()
        if self.hung or self.ends_at <= now:
            log.warning("payment provider: %s not tried, its deadline (%ss) is spent", method,
                        self.deadline.total_seconds())
            raise PaymentFailed.provider_error()
        try:
            async with asyncio.timeout_at(self.ends_at):
                return await call()
        except TimeoutError:
            self.hung = True
            log.warning("payment provider: %s gave no answer within %ss", method,
                        self.deadline.total_seconds())
            raise PaymentFailed.provider_error() from None


class _Bounded:
    """One gateway whose calls run within the budget."""

    def __init__(self, gateway: PaymentGateway, budget: _Budget) -> None:
        self._gateway = gateway
        self._budget = budget
        self.provider = gateway.provider

    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            shipping: Address | None = None,
                            receipt_email: str | None = None) -> PaymentIntent:
        return await self._budget.run("create_intent", lambda: self._gateway.create_intent(
            order_id=order_id, amount=amount, idempotency_key=idempotency_key,
            shipping=shipping, receipt_email=receipt_email))

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return await self._budget.run("retrieve_intent",
                                      lambda: self._gateway.retrieve_intent(intent_id))

    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        return await self._budget.run("confirm_intent", lambda: self._gateway.confirm_intent(
            intent_id, payment_method_id=payment_method_id, idempotency_key=idempotency_key))

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        return await self._budget.run("cancel_intent", lambda: self._gateway.cancel_intent(
            intent_id, idempotency_key=idempotency_key))

    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        return await self._budget.run("refund", lambda: self._gateway.refund(
            intent_id, idempotency_key=idempotency_key))


class BoundedGateways(_Bounded):
    """The Gateways port, every gateway it hands out bounded by the same budget."""

    def __init__(self, gateways: Gateways, budget: _Budget) -> None:
        super().__init__(gateways, budget)
        self._gateways = gateways

    def for_provider(self, provider: str) -> PaymentGateway:
        return _Bounded(self._gateways.for_provider(provider), self._budget)

    def for_payment(self, payment: Payment | None) -> PaymentGateway:
        return _Bounded(self._gateways.for_payment(payment), self._budget)

    @property
    def gave_up(self) -> bool:
        """A call outlived its deadline: the provider is not answering (per_pass)."""
        return self._budget.hung


def per_request(gateways: Gateways, deadline: timedelta) -> Gateways:
    """All the provider calls of one request within one `deadline`."""
    return BoundedGateways(gateways, _Budget(deadline, shared=True))


def within(gateway: PaymentGateway, deadline: timedelta) -> PaymentGateway:
    """One gateway's calls within one `deadline`."""
    return _Bounded(gateway, _Budget(deadline, shared=True))


def per_pass(gateways: Gateways, deadline: timedelta) -> BoundedGateways:
    """Each call within `deadline`; after one outlived it, the others fail at once (and
    `gave_up` tells the pass to stop asking)."""
    return BoundedGateways(gateways, _Budget(deadline, shared=False))

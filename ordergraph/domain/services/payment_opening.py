"""Opening a checkout's payment at the provider, and what happens when it cannot be opened:
the order cancelled and its stock released, an intent nobody recorded closed (checkout.py
calls these; the sweeper and cancelOrder close unrecorded intents too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta

from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import SYSTEM, Order, OrderStatus
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, PaymentGateway, PaymentIntent, UnitOfWork
from ordergraph.domain.services.payments import settle_payment
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)


def intent_key(order_id: int) -> str:
    """The idempotency key that opens the order's PaymentIntent: asking again with it finds
    the same intent at the provider (see close_unrecorded_intent)."""
    return f"order-{order_id}"


def _create_intent(gateway: PaymentGateway, order: Order,
                   receipt_email: str | None) -> Coroutine[None, None, PaymentIntent]:
    """The one request that opens the order's intent: asked again (a retry, a resumed
    checkout, closing an unrecorded intent) it must be the same request, or the provider
    refuses the reused idempotency key."""
    return gateway.create_intent(order_id=order.id, amount=order.total,
                                 idempotency_key=intent_key(order.id),
                                 shipping=order.shipping_address, receipt_email=receipt_email)


async def _receipt_email(uow: UnitOfWork, customer_id: int) -> str | None:
    async with uow:
        customer = await uow.users.get(customer_id)
    return customer.email if customer else None


async def open_intent(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, order: Order,
                      deadline: timedelta, *, cancel_on_failure: bool,
                      receipt_email: str | None) -> PaymentIntent:
    """The order's PaymentIntent, within `deadline` however the provider retries. If it
    cannot be had — an error, the deadline, or this request cancelled by a shutdown — the
    order is cancelled and its stock released before anything else happens: that cleanup is
    shielded, so a cancelled request still runs it to the end. (A resumed checkout leaves
    the order to the checkout that may still be running, or to its deadline.)"""
    try:
        async with asyncio.timeout(deadline.total_seconds()):
            return await _create_intent(gateway, order, receipt_email)
    except BaseException as failure:
        log.warning("could not open a payment for order %s (%r)", order.id, failure,
                    exc_info=not isinstance(failure, PaymentFailed | TimeoutError |
                                            asyncio.CancelledError))
        if cancel_on_failure:
            await asyncio.shield(_give_up_on_payment(uow, gateway, clock, order.id, failure,
                                                     deadline, receipt_email))
        if isinstance(failure, Exception):
            raise PaymentFailed.provider_error() from None
        raise


async def _give_up_on_payment(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                              order_id: int, failure: BaseException,
                              deadline: timedelta, receipt_email: str | None) -> None:
    """The stock must not stay held by an order that cannot be paid."""
    async for attempt in retrying(uow):
        async with attempt:
            closed = await _cancel_unopened(uow, clock, order_id)
            await uow.commit()
    refused = isinstance(failure, PaymentFailed) and failure.code == PaymentFailed.DECLINED
    if closed is not None and not refused and not isinstance(failure, asyncio.CancelledError):
        # The provider may have opened the intent before its answer was lost. Closing it
        # waits on the same provider: in the background, bounded, not in the customer's way.
        _in_background(close_unrecorded_intent(uow=uow, gateway=gateway, clock=clock, order=closed,
                                               receipt_email=receipt_email), deadline)


_background: set[asyncio.Task[None]] = set()


def _in_background(work: Coroutine[None, None, None], deadline: timedelta) -> None:
    async def bounded() -> None:
        try:
            async with asyncio.timeout(deadline.total_seconds()):
                await work
        except TimeoutError:
            log.warning("closing an unrecorded payment timed out; nobody holds its secret")

    task = asyncio.get_running_loop().create_task(bounded())
    _background.add(task)  # keep a reference until it is done
    task.add_done_callback(_background.discard)


async def _cancel_unopened(uow: UnitOfWork, clock: Clock, order_id: int) -> Order | None:
    """The provider failed: CREATED -> CANCELLED and the stock goes back on sale."""
    order = await uow.orders.get(order_id, for_update=True)
    assert order is not None, order_id
    if order.status is not OrderStatus.CREATED:
        return None
    now = clock.now()
    await release_reservation(uow, order, actor=SYSTEM, at=now)
    order.transition(OrderStatus.CANCELLED, actor=SYSTEM, at=now,
                     reason="payment provider error")
    await uow.orders.save(order)
    return order


async def cancel_orphan_intent(gateway: PaymentGateway, intent_id: str, order_id: int) -> None:
    try:
        await gateway.cancel_intent(intent_id, idempotency_key=f"order-{order_id}-cancel")
    except PaymentFailed:
        log.warning("could not cancel intent %s of cancelled order %s", intent_id, order_id)


async def close_unrecorded_intent(*, uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                                  order: Order, receipt_email: str | None = None) -> None:
    """A CREATED order closed before checkout recorded its payment (a crash, a deploy, a
    cancel while the provider was slow). An intent may exist for it that nobody holds: open
    it again with the same idempotency key, which finds that one, and cancel it."""
    try:
        if receipt_email is None:  # the same request as checkout's, the customer's email too
            receipt_email = await _receipt_email(uow, order.customer_id)
        intent = await _create_intent(gateway, order, receipt_email)
        intent = await gateway.cancel_intent(intent.id,
                                             idempotency_key=f"order-{order.id}-cancel")
    except Exception as failure:  # best effort: nobody holds that intent's secret anyway
        log.warning("could not close a payment of closed order %s: %r", order.id, failure)
        return
    if PaymentUpdate.from_intent(intent).signal is PaymentSignal.SUCCEEDED:
        await settle_payment(uow=uow, gateways=gateway, clock=clock,
                             update=PaymentUpdate.from_intent(intent))

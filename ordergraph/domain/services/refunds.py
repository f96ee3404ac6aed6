"""Refunds: money owed back (sent after the commit that owes it, retried by the sweeper) and
an admin's refund of a PAID order (recorded before the provider is called, so never twice)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from ordergraph.domain.errors import InvalidTransition, NotFound, PaymentFailed
from ordergraph.domain.model import (
    PAYMENT_PROVIDER,
    SYSTEM,
    Actor,
    Order,
    OrderStatus,
    RefundStatus,
    User,
)
from ordergraph.domain.ports import Clock, Gateways, PaymentGateway, UnitOfWork
from ordergraph.domain.services.provider_deadline import DEFAULT_PROVIDER_DEADLINE, per_request
from ordergraph.domain.services.reservations import restock_order
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)

# A refund an admin asked for that has shown no result for this long may be asked again
# (the first request died between our record and the provider's answer); the sweeper
# finishes it. Longer than one provider call can take.
STALE_REFUND_REQUEST = timedelta(minutes=2)

# How often a second refundOrder looks for the answer to the one under way, and how long
# after the provider deadline it still waits for that answer to be recorded.
REFUND_ANSWER_POLL = 0.05
REFUND_ANSWER_MARGIN = 2.0
# How a refused refund's reason starts on the payment's last error (`lastError`).
REFUND_DECLINED = "The payment provider refused the refund: "

# A refund owed is tried at once, then after 30 s, 1 min, 2 min... at most hourly.
FIRST_REFUND_RETRY = timedelta(seconds=30)
MAX_REFUND_RETRY = timedelta(hours=1)


def refund_retry_delay(attempts: int) -> timedelta:
    return min(MAX_REFUND_RETRY, FIRST_REFUND_RETRY * 2 ** max(0, attempts - 1))


async def refund_owed(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                      intent_id: str) -> Order | None:
    """Send back money we owe, if it is due and nobody else is sending it right now.

    The claim moves the debt's next attempt into the future before the provider is called,
    so a concurrent sweeper (or webhook) leaves it alone, and a failure needs no second write
    to back off. Returns the order once the provider accepted the refund, else None.
    """
    now = clock.now()
    async for attempt in retrying(uow):
        async with attempt:
            debt = await uow.owed_refunds.claim(
                intent_id, now=now,
                retry_at=lambda attempts: now + refund_retry_delay(attempts))
            owner = await uow.orders.get(debt.order_id) if debt is not None else None
            await uow.commit()
    if debt is None:
        return None
    try:
        # The order's provider took the money (the default one for an order without payment).
        gateway = gateways.for_payment(owner.payment if owner is not None else None)
        refund_id = await gateway.refund(intent_id, idempotency_key=f"refund-{intent_id}")
    except PaymentFailed as failure:
        log.error("refund of %s for order %s failed (attempt %d: %s); retrying later",
                  intent_id, debt.order_id, debt.attempts, failure.message)
        async for attempt in retrying(uow):
            async with attempt:
                await uow.owed_refunds.failed(intent_id, error=failure.message,
                                              at=clock.now())
                await uow.commit()
        return None

    async for attempt in retrying(uow):
        async with attempt:
            at = clock.now()
            await uow.owed_refunds.settled(intent_id, refund_id=refund_id, at=at)
            order = await uow.orders.get(debt.order_id, for_update=True)
            if order is not None and order.payment is not None and \
                    order.payment.intent_id == intent_id:
                order.update_payment(actor=PAYMENT_PROVIDER, at=at,
                                     refund_status=RefundStatus.SUCCEEDED, refund_id=refund_id,
                                     reason="payment refunded automatically")
            elif order is not None:
                order.update_payment(actor=PAYMENT_PROVIDER, at=at, provider=gateway.provider,
                                     last_error=f"second payment {intent_id} refunded "
                                                f"({refund_id})",
                                     reason="second payment refunded automatically")
            if order is not None:
                await uow.orders.save(order)
            await uow.commit()
    return order


async def refund_order(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                       order_id: int, viewer: User,
                       provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE) -> Order:
    """Admins: PAID -> REFUNDED through the provider, once, even when asked twice at once.

    The request is recorded under the row lock before the provider is called, so a second or
    racing call sees it and, instead of refunding again, answers what the first one does
    (`_outcome_of_refund_under_way`); fulfilment waits until the refund has an answer (never
    both shipped and refunded). A provider that does not answer within `provider_deadline`
    raises PAYMENT_PROVIDER_ERROR with the request still recorded: the sweeper finishes it
    (resume_refund).
    """
    actor = Actor.user(viewer.id)
    gateways = per_request(gateways, provider_deadline)
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id, for_update=True)
            if order is None or not order.visible_to(viewer):
                raise NotFound(f"Order {order_id} not found.", field="id")
            payment, now = order.payment, clock.now()
            if order.status is not OrderStatus.PAID or payment is None or \
                    payment.intent_id is None:
                raise InvalidTransition(from_status=order.status.value,
                                        to_status=OrderStatus.REFUNDED.value)
            # Someone is refunding it right now: the order as it stands.
            ours = not (payment.refund_status is RefundStatus.REQUESTED and
                        payment.refund_requested_at is not None and
                        now - payment.refund_requested_at < STALE_REFUND_REQUEST)
            if ours:
                order.update_payment(actor=actor, at=now, refund_status=RefundStatus.REQUESTED,
                                     refund_requested_at=now, reason="refund requested")
                await uow.orders.save(order)
                await uow.commit()
    if not ours:
        return await _outcome_of_refund_under_way(uow, order.id, provider_deadline)
    return await _refund_requested(uow, gateways.for_payment(order.payment), clock, order,
                                   actor)


async def _outcome_of_refund_under_way(uow: UnitOfWork, order_id: int,
                                       provider_deadline: timedelta) -> Order:
    """A refundOrder that finds another one under way (a double click, two admins) waits
    for that one's answer, which comes within the provider deadline, and answers its
    outcome: the order REFUNDED, or PAYMENT_DECLINED with the provider's reason when it
    refused the refund (a request ends without a refund only so, its reason recorded on the
    payment as its last error: worded as an earlier refusal's or not), or the order as it
    then is.
    Answering the order as it stood (PAID, and nothing in the API shows a refund under way)
    told the second admin that nothing was refunded. Still unanswered after the deadline:
    PAYMENT_PROVIDER_ERROR, the first call's own answer then (the sweeper finishes the
    request; README, Refunds)."""
    # The deadline is checked between reads, never cutting one short (a connection taken
    # back from a cancelled query is one the pool has to throw away).
    give_up_at = time.monotonic() + provider_deadline.total_seconds() + REFUND_ANSWER_MARGIN
    while time.monotonic() < give_up_at:
        await asyncio.sleep(REFUND_ANSWER_POLL)
        async with uow:
            order = await uow.orders.get(order_id)
        assert order is not None  # orders are never deleted
        payment = order.payment
        if not (order.status is OrderStatus.PAID and payment is not None and
                payment.refund_status is RefundStatus.REQUESTED):
            if order.status is OrderStatus.PAID and payment is not None and \
                    payment.refund_status is None and \
                    (payment.last_error or "").startswith(REFUND_DECLINED):
                # In the words the provider gave the first caller.
                reason = (payment.last_error or "").removeprefix(REFUND_DECLINED)
                raise PaymentFailed.declined(reason or REFUND_DECLINED.rstrip(": ") + ".",
                                             None)
            return order
    raise PaymentFailed.provider_error(
        "The refund under way has no answer from the payment provider yet; it is finished "
        "in the background.")


async def _refund_requested(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                            order: Order, actor: Actor) -> Order:
    """The provider call of a recorded refund request, and its answer recorded."""
    assert order.payment is not None and order.payment.intent_id is not None
    try:
        refund_id = await gateway.refund(order.payment.intent_id,
                                         idempotency_key=f"order-{order.id}-refund")
    except PaymentFailed as failure:
        if failure.code == PaymentFailed.DECLINED:
            # A definite no: nothing was refunded, the order can be fulfilled again. Why is
            # kept on the payment (a second call waiting for this one answers it too).
            await _forget_refund_request(uow, clock, order.id, actor,
                                         error=f"{REFUND_DECLINED}{failure.message}")
        # Otherwise we cannot know whether the provider did it: the request stays, blocking
        # fulfilment, and the sweeper finishes it (the gateway never refunds twice).
        raise

    async for attempt in retrying(uow):
        async with attempt:
            locked = await uow.orders.get(order.id, for_update=True)
            assert locked is not None
            if locked.status is OrderStatus.PAID:
                now = clock.now()
                await restock_order(uow, locked, actor=actor, at=now)
                # An earlier refusal's reason is no longer news once the refund went through.
                refused_before = locked.payment is not None and \
                    (locked.payment.last_error or "").startswith(REFUND_DECLINED)
                locked.transition(OrderStatus.REFUNDED, actor=actor, at=now,
                                  reason="refunded at the provider",
                                  refund_status=RefundStatus.SUCCEEDED, refund_id=refund_id,
                                  **({"last_error": None} if refused_before else {}))
                await uow.orders.save(locked)
            await uow.commit()
    return locked


async def resume_refund(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                        order_id: int) -> Order | None:
    """Finish an admin's refund whose request has had no answer for STALE_REFUND_REQUEST
    (the process died, or the provider's answer was lost). The sweeper calls it."""
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id, for_update=True)
            now = clock.now()
            if order is None or order.status is not OrderStatus.PAID or order.payment is None \
                    or order.payment.refund_status is not RefundStatus.REQUESTED \
                    or order.payment.refund_requested_at is None \
                    or now - order.payment.refund_requested_at < STALE_REFUND_REQUEST:
                order = None  # answered, or still fresh: nothing to resume
            else:
                order.update_payment(actor=SYSTEM, at=now, refund_requested_at=now,
                                     reason="refund request resumed")
                await uow.orders.save(order)
                await uow.commit()
    if order is None:
        return None
    try:
        return await _refund_requested(uow, gateways.for_payment(order.payment), clock, order,
                                       SYSTEM)
    except PaymentFailed as failure:
        log.error("resuming the refund of order %s failed: %s", order_id, failure.message)
        return None


async def _forget_refund_request(uow: UnitOfWork, clock: Clock, order_id: int,
                                 actor: Actor, *, error: str) -> None:
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id, for_update=True)
            if order is not None and order.payment is not None and \
                    order.payment.refund_status is RefundStatus.REQUESTED:
                order.update_payment(actor=actor, at=clock.now(), refund_status=None,
                                     refund_requested_at=None, last_error=error,
                                     reason="refund failed at the provider")
                await uow.orders.save(order)
                await uow.commit()

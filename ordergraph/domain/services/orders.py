"""Order use cases that people trigger: cancel and fulfil (payments live in payments.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from ordergraph.domain.errors import InvalidTransition, NotFound, PaymentFailed
from ordergraph.domain.model import Actor, Order, OrderStatus, RefundStatus, User
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, Gateways, UnitOfWork
from ordergraph.domain.services.payment_opening import close_unrecorded_intent
from ordergraph.domain.services.payments import settle_payment
from ordergraph.domain.services.provider_deadline import DEFAULT_PROVIDER_DEADLINE, per_request
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)


async def _locked_visible_order(uow: UnitOfWork, order_id: int, viewer: User) -> Order:
    order = await uow.orders.get(order_id, for_update=True)
    if order is None or not order.visible_to(viewer):
        raise NotFound(f"Order {order_id} not found.", field="id")
    return order


async def cancel_order(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                       order_id: int, viewer: User,
                       provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE) -> Order:
    """CREATED/PAYMENT_PENDING -> CANCELLED by its owner or an admin; the stock goes back.

    The state machine makes a second cancel INVALID_TRANSITION, so stock is released once.
    Closing the intent afterwards waits at most `provider_deadline`; the order is cancelled
    either way.
    """
    actor = Actor.user(viewer.id)
    gateways = per_request(gateways, provider_deadline)

    async for attempt in retrying(uow):
        async with attempt:
            order = await _locked_visible_order(uow, order_id, viewer)
            now = clock.now()
            order.transition(OrderStatus.CANCELLED, actor=actor, at=now,
                             reason="cancelled by admin" if viewer.is_admin and
                             viewer.id != order.customer_id else "cancelled by customer")
            await release_reservation(uow, order, actor=actor, at=now)
            await uow.orders.save(order)
            await uow.commit()
    # After commit, outside the transaction: close the intent so it cannot be paid any more.
    if order.payment is None or not order.payment.intent_id:
        # The default provider's (no payment recorded, so none named).
        await close_unrecorded_intent(uow=uow, gateway=gateways, clock=clock, order=order)
        return order
    try:
        intent = await gateways.for_payment(order.payment).cancel_intent(
            order.payment.intent_id, idempotency_key=f"order-{order.id}-cancel")
    except PaymentFailed as failure:
        # Should it succeed later, its webhook (or syncPayment) refunds it (see payments).
        log.warning("order %s cancelled; its intent could not be: %s", order.id,
                    failure.message)
        return order
    update = PaymentUpdate.from_intent(intent)
    if update.signal is PaymentSignal.SUCCEEDED:
        # Paid just before the cancel: the money goes straight back.
        settlement = await settle_payment(uow=uow, gateways=gateways, clock=clock, update=update)
        return settlement.order or order
    return order


async def fulfil_order(*, uow: UnitOfWork, clock: Clock, order_id: int, viewer: User) -> Order:
    """PAID -> FULFILLED (admins)."""
    actor = Actor.user(viewer.id)

    async for attempt in retrying(uow):
        async with attempt:
            order = await _locked_visible_order(uow, order_id, viewer)
            refund = order.payment.refund_status if order.payment else None
            if refund in (RefundStatus.REQUESTED, RefundStatus.REQUIRED):
                # A refund under way wins: its money may already be gone, so the goods stay.
                raise InvalidTransition(from_status=order.status.value,
                                        to_status=OrderStatus.FULFILLED.value,
                                        why="a refund of this order is under way")
            order.transition(OrderStatus.FULFILLED, actor=actor, at=clock.now())
            await uow.orders.save(order)
            await uow.commit()
    return order

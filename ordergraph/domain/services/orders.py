"""Order use cases that people trigger: cancel and fulfil (payments live in payments.py)."""

from __future__ import annotations

import logging

from ordergraph.domain.errors import NotFound, PaymentFailed
from ordergraph.domain.model import Actor, Order, OrderStatus, User
from ordergraph.domain.payments import PaymentUpdate
from ordergraph.domain.ports import Clock, PaymentGateway, UnitOfWork
from ordergraph.domain.services.payments import settle_payment
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.transaction import in_transaction

log = logging.getLogger(__name__)


async def _locked_visible_order(uow: UnitOfWork, order_id: int, viewer: User) -> Order:
    order = await uow.orders.get(order_id, for_update=True)
    if order is None or not order.visible_to(viewer):
        raise NotFound(f"Order {order_id} not found.", field="id")
    return order


async def cancel_order(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *,
                       order_id: int, viewer: User) -> Order:
    """CREATED/PAYMENT_PENDING -> CANCELLED by its owner or an admin; the stock goes back.

    The state machine makes a second cancel INVALID_TRANSITION, so stock is released once.
    """
    actor = Actor.user(viewer.id)

    async def cancel() -> Order:
        order = await _locked_visible_order(uow, order_id, viewer)
        now = clock.now()
        order.transition(OrderStatus.CANCELLED, actor=actor, at=now,
                         reason="cancelled by admin" if viewer.is_admin and
                         viewer.id != order.customer_id else "cancelled by customer")
        await release_reservation(uow, order, actor=actor, at=now)
        await uow.orders.save(order)
        return order

    order = await in_transaction(uow, cancel)
    # After commit, outside the transaction: close the intent so it cannot be paid any more.
    if order.payment is not None and order.payment.intent_id:
        try:
            intent = await gateway.cancel_intent(order.payment.intent_id,
                                                 idempotency_key=f"order-{order.id}-cancel")
        except PaymentFailed as failure:
            # Should it succeed later, its webhook refunds it (see payments).
            log.warning("order %s cancelled; its intent could not be: %s", order.id,
                        failure.message)
            return order
        if intent.status == "succeeded":
            # Paid just before the cancel: the money goes straight back.
            settlement = await settle_payment(uow, gateway, clock,
                                              PaymentUpdate.from_intent(intent))
            return settlement.order or order
    return order


async def fulfil_order(uow: UnitOfWork, clock: Clock, *, order_id: int, viewer: User) -> Order:
    """PAID -> FULFILLED (admins)."""
    actor = Actor.user(viewer.id)

    async def fulfil() -> Order:
        order = await _locked_visible_order(uow, order_id, viewer)
        order.transition(OrderStatus.FULFILLED, actor=actor, at=clock.now())
        await uow.orders.save(order)
        return order

    return await in_transaction(uow, fulfil)

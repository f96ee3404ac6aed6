"""Payments: the one finalizer, and the use cases that feed it.

Webhooks, `payOrder`'s immediate answer, `syncPayment` and the sweeper all report what the
provider says through `settle_payment`, which applies it under the order's row lock
(`apply_payment_status`) and then, outside any transaction, sends back money we must not keep.
They can race each other: the lock and the state machine let exactly one of them move the order.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ordergraph.domain.errors import InvalidTransition, NotFound, PaymentFailed, ValidationFailed
from ordergraph.domain.model import (
    PAYMENT_PROVIDER,
    Actor,
    Order,
    OrderStatus,
    Payment,
    RefundStatus,
    User,
)
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, PaymentGateway, UnitOfWork
from ordergraph.domain.services.reservations import (
    release_reservation,
    restock_order,
    sell_reservation,
)
from ordergraph.domain.services.transaction import in_transaction

log = logging.getLogger(__name__)

# A refund an admin asked for that has shown no result for this long may be asked again
# (the first request died between our record and the provider's answer).
STALE_REFUND_REQUEST = timedelta(minutes=5)


class Outcome(enum.Enum):
    APPLIED = "applied"                # the order moved (or recorded news)
    UNCHANGED = "unchanged"            # nothing new for this order
    DUPLICATE = "duplicate"            # this provider event was processed before
    UNKNOWN_INTENT = "unknown_intent"  # no order of ours has this intent
    MISMATCH = "mismatch"              # amount or currency differ from the order: refused
    REFUND_REQUIRED = "refund_required"  # paid, but we will not ship: money goes back


@dataclass(frozen=True, slots=True)
class Settlement:
    outcome: Outcome
    order: Order | None = None
    refund_intent_id: str | None = None


async def settle_payment(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                         update: PaymentUpdate, *, actor: Actor = PAYMENT_PROVIDER,
                         reason: str | None = None) -> Settlement:
    """Apply the provider's news to its order; refund money we will not keep."""
    settlement = await in_transaction(
        uow, lambda: apply_payment_status(uow, clock, update, actor=actor, reason=reason))
    if settlement.outcome is Outcome.REFUND_REQUIRED and settlement.order is not None:
        order = await refund_unwanted_payment(uow, gateway, clock, order_id=settlement.order.id,
                                              intent_id=settlement.refund_intent_id)
        return Settlement(Outcome.REFUND_REQUIRED, order, settlement.refund_intent_id)
    return settlement


async def apply_payment_status(uow: UnitOfWork, clock: Clock, update: PaymentUpdate, *,
                               actor: Actor, reason: str | None = None) -> Settlement:
    """The finalizer. Runs inside a transaction; locks the order row first."""
    intent, now = update.intent, clock.now()
    if update.event_id is not None and not await uow.webhook_events.claim(
            update.event_id, event_type=update.event_type or update.signal.value, at=now):
        return Settlement(Outcome.DUPLICATE)

    order = await uow.orders.get_by_intent(intent.id, for_update=True)
    foreign_intent = False
    if order is None and intent.order_id is not None:
        # The intent was opened but never stored (a crash between checkout's transactions).
        order = await uow.orders.get(intent.order_id, for_update=True)
        foreign_intent = order is not None and order.payment is not None and \
            order.payment.intent_id not in (None, intent.id)
    if order is None:
        log.warning("payment news for unknown intent %s (%s)", intent.id, update.signal.value)
        return Settlement(Outcome.UNKNOWN_INTENT)

    if (intent.amount, intent.currency) != (order.total.amount, order.currency):
        log.error("intent %s says %s %s but order %s totals %s %s: refused", intent.id,
                  intent.amount, intent.currency, order.id, order.total.amount, order.currency)
        order.update_payment(
            actor=actor, at=now, last_error=f"amount mismatch: provider reported "
            f"{intent.amount} {intent.currency}",
            reason=f"refused {update.signal.value}: amount or currency differ from the order")
        await uow.orders.save(order)
        return Settlement(Outcome.MISMATCH, order)

    if foreign_intent:
        if update.signal is PaymentSignal.SUCCEEDED:
            log.error("order %s was paid through a second intent %s; refunding it",
                      order.id, intent.id)
            return Settlement(Outcome.REFUND_REQUIRED, order, refund_intent_id=intent.id)
        return Settlement(Outcome.UNCHANGED, order)

    if order.status is OrderStatus.CREATED and order.payment is None:
        order.open_payment(Payment(provider="stripe", intent_id=intent.id,
                                   client_secret=intent.client_secret, status=intent.status),
                           reserved_until=now, actor=actor, at=now)

    outcome = await _apply(uow, order, update, actor=actor, at=now, reason=reason)
    await uow.orders.save(order)
    return Settlement(outcome, order, refund_intent_id=intent.id
                      if outcome is Outcome.REFUND_REQUIRED else None)


async def _apply(uow: UnitOfWork, order: Order, update: PaymentUpdate, *, actor: Actor,
                 at: datetime, reason: str | None) -> Outcome:
    signal, intent, status = update.signal, update.intent, order.status
    payment_news = {"status": intent.status, "last_error": intent.last_error}

    if signal is PaymentSignal.SUCCEEDED:
        if status is OrderStatus.PAYMENT_PENDING:
            await sell_reservation(uow, order, actor=actor, at=at)
            order.transition(OrderStatus.PAID, actor=actor, at=at,
                             reason=reason or "payment succeeded", **payment_news)
            return Outcome.APPLIED
        if status in (OrderStatus.CANCELLED, OrderStatus.FAILED):
            payment = order.payment
            if payment is not None and payment.refund_status in (RefundStatus.REQUIRED,
                                                                 RefundStatus.SUCCEEDED):
                return Outcome.UNCHANGED
            order.update_payment(
                actor=actor, at=at, status=intent.status, refund_status=RefundStatus.REQUIRED,
                reason=f"payment succeeded after the order was {status.value}: refunding it")
            return Outcome.REFUND_REQUIRED
        return Outcome.UNCHANGED  # PAID, FULFILLED, REFUNDED: already settled

    if signal in (PaymentSignal.FAILED, PaymentSignal.CANCELED):
        target = OrderStatus.FAILED if signal is PaymentSignal.FAILED else OrderStatus.CANCELLED
        if order.holds_reservation:
            await release_reservation(uow, order, actor=actor, at=at)
            order.transition(target, actor=actor, at=at,
                             reason=reason or f"payment {signal.value}", **payment_news)
            return Outcome.APPLIED
        if status in (OrderStatus.PAID, OrderStatus.FULFILLED):
            # A failure after success changes nothing; the audit log keeps the news.
            order.update_payment(actor=actor, at=at, last_error=intent.last_error,
                                 reason=f"ignored {signal.value} after the order was "
                                        f"{status.value}")
            return Outcome.APPLIED
        return Outcome.UNCHANGED

    if signal is PaymentSignal.REFUNDED:
        if status is OrderStatus.PAID:
            await restock_order(uow, order, actor=actor, at=at)
            order.transition(OrderStatus.REFUNDED, actor=actor, at=at,
                             reason=reason or "refunded at the provider",
                             refund_status=RefundStatus.SUCCEEDED)
            return Outcome.APPLIED
        return Outcome.UNCHANGED  # already REFUNDED (we asked for it), or nothing to refund

    # PROCESSING, ACTION_REQUIRED, PENDING: news without a transition.
    if order.holds_reservation:
        before = order.version
        order.update_payment(actor=actor, at=at, reason=f"provider status {intent.status}",
                             **payment_news)
        return Outcome.APPLIED if order.version != before else Outcome.UNCHANGED
    return Outcome.UNCHANGED


async def refund_unwanted_payment(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *,
                                  order_id: int, intent_id: str | None) -> Order | None:
    """Send back a payment for an order we will not ship; recorded, retried by the sweeper."""
    if intent_id is None:
        return None
    try:
        refund_id = await gateway.refund(
            intent_id, idempotency_key=f"order-{order_id}-refund-{intent_id}")
    except PaymentFailed as failure:
        log.error("refund of %s for order %s failed (%s); the sweeper will retry",
                  intent_id, order_id, failure.message)
        return None

    async def record() -> Order | None:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None:
            return None
        if order.payment is not None and order.payment.intent_id == intent_id:
            order.update_payment(actor=PAYMENT_PROVIDER, at=clock.now(),
                                 refund_status=RefundStatus.SUCCEEDED, refund_id=refund_id,
                                 reason="payment refunded automatically")
        else:
            order.update_payment(actor=PAYMENT_PROVIDER, at=clock.now(),
                                 last_error=f"second payment {intent_id} refunded "
                                            f"({refund_id})",
                                 reason="payment refunded automatically")
        await uow.orders.save(order)
        return order

    return await in_transaction(uow, record)


# ---- use cases ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayResult:
    order: Order
    requires_action: bool
    client_secret: str | None


async def pay_order(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *, order_id: int,
                    viewer: User, payment_method_id: str) -> PayResult:
    """The owner pays a pending order with a payment method; the server confirms it.

    A decline fails the order (its stock goes back) and raises PAYMENT_DECLINED; 3-D Secure
    returns requires_action with the client secret for Stripe.js.
    """
    payment_method_id = payment_method_id.strip()
    if not 1 <= len(payment_method_id) <= 255:
        raise ValidationFailed("paymentMethodId is required.", field="paymentMethodId")
    order = await _pending_order(uow, order_id, viewer, owner_only=True)
    assert order.payment is not None and order.payment.intent_id is not None
    intent_id = order.payment.intent_id
    try:
        intent = await gateway.confirm_intent(
            intent_id, payment_method_id=payment_method_id,
            idempotency_key=f"order-{order.id}-pay-{payment_method_id}")
    except PaymentFailed as failure:
        if failure.code == PaymentFailed.DECLINED:
            declined = await gateway.retrieve_intent(intent_id)
            await settle_payment(uow, gateway, clock,
                                 PaymentUpdate(declined, PaymentSignal.FAILED),
                                 reason=f"card declined ({failure.decline_code})")
        raise
    settlement = await settle_payment(uow, gateway, clock, PaymentUpdate.from_intent(intent))
    order = settlement.order or order
    requires_action = intent.status == "requires_action"
    return PayResult(order=order, requires_action=requires_action,
                     client_secret=intent.client_secret if requires_action else None)


async def sync_payment(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *,
                       order_id: int, viewer: User) -> Order:
    """Ask the provider for the intent's status now and apply it (a missed webhook)."""
    order = await _visible_order(uow, order_id, viewer)
    if order.payment is None or order.payment.intent_id is None:
        return order
    intent = await gateway.retrieve_intent(order.payment.intent_id)
    settlement = await settle_payment(uow, gateway, clock, PaymentUpdate.from_intent(intent),
                                      reason="synchronised with the provider")
    return settlement.order or await _visible_order(uow, order_id, viewer)


async def refund_order(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *,
                       order_id: int, viewer: User) -> Order:
    """Admins: PAID -> REFUNDED through the provider, once, even when asked twice at once.

    The request is recorded under the row lock before the provider is called, so a second or
    racing call sees it and returns the order as it stands instead of refunding again.
    """
    actor = Actor.user(viewer.id)

    async def request() -> tuple[Order, bool]:
        order = await uow.orders.get(order_id, for_update=True)
        if order is None or not order.visible_to(viewer):
            raise NotFound(f"Order {order_id} not found.", field="id")
        payment, now = order.payment, clock.now()
        if order.status is not OrderStatus.PAID or payment is None or payment.intent_id is None:
            raise InvalidTransition(from_status=order.status.value,
                                    to_status=OrderStatus.REFUNDED.value)
        if payment.refund_status is RefundStatus.REQUESTED and payment.refund_requested_at \
                and now - payment.refund_requested_at < STALE_REFUND_REQUEST:
            return order, False  # someone is refunding it right now
        order.update_payment(actor=actor, at=now, refund_status=RefundStatus.REQUESTED,
                             refund_requested_at=now, reason="refund requested")
        await uow.orders.save(order)
        return order, True

    order, ours = await in_transaction(uow, request)
    if not ours:
        return order
    assert order.payment is not None and order.payment.intent_id is not None
    intent_id = order.payment.intent_id
    try:
        refund_id = await gateway.refund(intent_id, idempotency_key=f"order-{order.id}-refund")
    except PaymentFailed:
        await in_transaction(uow, lambda: _forget_refund_request(uow, clock, order.id, actor))
        raise

    async def record() -> Order:
        locked = await uow.orders.get(order.id, for_update=True)
        assert locked is not None
        if locked.status is OrderStatus.PAID:
            now = clock.now()
            await restock_order(uow, locked, actor=actor, at=now)
            locked.transition(OrderStatus.REFUNDED, actor=actor, at=now,
                              reason="refunded at the provider",
                              refund_status=RefundStatus.SUCCEEDED, refund_id=refund_id)
            await uow.orders.save(locked)
        return locked

    return await in_transaction(uow, record)


async def _forget_refund_request(uow: UnitOfWork, clock: Clock, order_id: int,
                                 actor: Actor) -> None:
    order = await uow.orders.get(order_id, for_update=True)
    if order is not None and order.payment is not None and \
            order.payment.refund_status is RefundStatus.REQUESTED:
        order.update_payment(actor=actor, at=clock.now(), refund_status=None,
                             refund_requested_at=None, reason="refund failed at the provider")
        await uow.orders.save(order)


async def _visible_order(uow: UnitOfWork, order_id: int, viewer: User) -> Order:
    async def load() -> Order | None:
        return await uow.orders.get(order_id)

    order = await in_transaction(uow, load)
    if order is None or not order.visible_to(viewer):
        raise NotFound(f"Order {order_id} not found.", field="id")
    return order


async def _pending_order(uow: UnitOfWork, order_id: int, viewer: User, *,
                         owner_only: bool) -> Order:
    order = await _visible_order(uow, order_id, viewer)
    if owner_only and order.customer_id != viewer.id:
        raise NotFound(f"Order {order_id} not found.", field="id")
    if order.status is not OrderStatus.PAYMENT_PENDING:
        raise InvalidTransition(from_status=order.status.value,
                                to_status=OrderStatus.PAID.value)
    return order

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
from datetime import datetime

from ordergraph.domain.errors import (
    IntentNotFound,
    InvalidTransition,
    NotFound,
    PaymentFailed,
    ValidationFailed,
)
from ordergraph.domain.model import (
    PAYMENT_PROVIDER,
    SYSTEM,
    Actor,
    Money,
    Order,
    OrderStatus,
    OwedRefund,
    Payment,
    RefundStatus,
    User,
)
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, Gateways, PaymentIntent, UnitOfWork
from ordergraph.domain.services.refunds import refund_owed
from ordergraph.domain.services.reservations import (
    release_reservation,
    restock_order,
    sell_reservation,
)
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)

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


async def settle_payment(uow: UnitOfWork, gateways: Gateways, clock: Clock,
                         update: PaymentUpdate, *, actor: Actor = PAYMENT_PROVIDER,
                         reason: str | None = None) -> Settlement:
    """Apply the provider's news to its order; refund money we will not keep."""
    async for attempt in retrying(uow):
        async with attempt:
            settlement = await apply_payment_status(uow, clock, update, actor=actor,
                                                    reason=reason)
            await uow.commit()
    if settlement.refund_intent_id is not None:
        # The debt is on record (same transaction as the news): if this attempt fails,
        # the sweeper retries it.
        order = await refund_owed(uow, gateways, clock, intent_id=settlement.refund_intent_id)
        return Settlement(settlement.outcome, order or settlement.order,
                          settlement.refund_intent_id)
    return settlement


async def apply_payment_status(uow: UnitOfWork, clock: Clock, update: PaymentUpdate, *,
                               actor: Actor, reason: str | None = None) -> Settlement:
    """The finalizer. Runs inside a transaction; locks the order row first."""
    intent, now = update.intent, clock.now()
    if update.event_id is not None and not await uow.webhook_events.claim(
            update.event_id, event_type=update.event_type or update.signal.value, at=now):
        return Settlement(Outcome.DUPLICATE)

    order = await uow.orders.get_by_intent(intent.id, for_update=True)
    if order is None and intent.order_id is not None:
        # An intent of ours (the gateway only reads order_id from our own intents) that the
        # order does not name: opened before a crash, or a second payment for one order.
        order = await uow.orders.get(intent.order_id, for_update=True)
    if order is None:
        log.warning("payment news for unknown intent %s (%s)", intent.id, update.signal.value)
        return Settlement(Outcome.UNKNOWN_INTENT)

    if order.status is OrderStatus.CREATED and order.payment is None:
        # Checkout opened this intent but died before recording it: adopt it.
        order.open_payment(Payment(provider=intent.provider, intent_id=intent.id,
                                   client_secret=intent.client_secret, status=intent.status),
                           reserved_until=now, actor=actor, at=now)

    if not _is_orders_intent(order, intent.id):
        outcome = await _apply_second_intent(uow, order, update, actor=actor, at=now)
    elif (intent.amount, intent.currency) != (order.total.amount, order.currency):
        outcome = await _apply_mismatch(uow, order, update, actor=actor, at=now)
    else:
        outcome = await _apply(uow, order, update, actor=actor, at=now, reason=reason)
    await uow.orders.save(order)
    return Settlement(outcome, order, refund_intent_id=intent.id
                      if outcome in _REFUNDING and update.signal is PaymentSignal.SUCCEEDED
                      else None)


_REFUNDING = (Outcome.REFUND_REQUIRED, Outcome.MISMATCH)


def _is_orders_intent(order: Order, intent_id: str) -> bool:
    return order.payment is None or order.payment.intent_id in (None, intent_id)


async def _apply_second_intent(uow: UnitOfWork, order: Order, update: PaymentUpdate, *,
                               actor: Actor, at: datetime) -> Outcome:
    """News of an intent of ours that is not the order's: money taken twice goes back."""
    if update.signal is not PaymentSignal.SUCCEEDED:
        return Outcome.UNCHANGED
    intent = update.intent
    if not await _owe_refund(uow, order, intent, at=at,
                             reason=f"second payment {intent.id} for the order"):
        return Outcome.UNCHANGED  # known, and owed or refunded already
    log.error("order %s was paid through a second intent %s; refunding it", order.id, intent.id)
    order.update_payment(actor=actor, at=at,
                         last_error=f"second payment {intent.id} received: refund owed",
                         reason="a second payment arrived for this order: refunding it")
    return Outcome.REFUND_REQUIRED


async def _apply_mismatch(uow: UnitOfWork, order: Order, update: PaymentUpdate, *,
                          actor: Actor, at: datetime) -> Outcome:
    """The provider's amount or currency differ from the order: never PAID. A capture goes
    back, and the order closes with its stock released, so nothing waits on it forever."""
    intent = update.intent
    found = f"{intent.amount} {intent.currency}"
    log.error("intent %s says %s but order %s totals %s %s: refused", intent.id, found,
              order.id, order.total.amount, order.currency)
    error = f"amount mismatch: provider reported {found}"
    if update.signal in (PaymentSignal.FAILED, PaymentSignal.CANCELED):
        # No money moved, and this intent can no longer pay the order: it ends as it would
        # (the stock goes back), with the disagreement on record. Refusing it would hold the
        # stock for ever, the sweeper cancelling the same intent on every pass.
        await _apply(uow, order, update, actor=actor, at=at,
                     reason=f"payment {update.signal.value} (its amount or currency differ "
                            "from the order)")
        return Outcome.MISMATCH
    if update.signal is not PaymentSignal.SUCCEEDED:
        order.update_payment(actor=actor, at=at, last_error=error, provider=intent.provider,
                             reason=f"refused {update.signal.value}: amount or currency "
                                    "differ from the order")
        return Outcome.MISMATCH
    await _owe_refund(uow, order, intent, at=at, reason=f"captured {found}, not the order's "
                      f"{order.total.amount} {order.currency}")
    if order.holds_reservation:
        await release_reservation(uow, order, actor=actor, at=at)
        order.transition(OrderStatus.FAILED, actor=actor, at=at,
                         reason="the payment captured did not match the order: refunding it",
                         status=intent.status, last_error=error,
                         refund_status=RefundStatus.REQUIRED)
    return Outcome.MISMATCH


async def _owe_refund(uow: UnitOfWork, order: Order, intent: PaymentIntent, *, at: datetime,
                      reason: str) -> bool:
    """Record that the intent's money goes back (once per intent); False if known."""
    return await uow.owed_refunds.owe(
        OwedRefund(order_id=order.id, intent_id=intent.id,
                   amount=Money(intent.amount, intent.currency), reason=reason), at=at)


async def _apply(uow: UnitOfWork, order: Order, update: PaymentUpdate, *, actor: Actor,
                 at: datetime, reason: str | None) -> Outcome:
    signal, intent, status = update.signal, update.intent, order.status
    payment_news = {"status": intent.status, "last_error": intent.last_error,
                    "provider": intent.provider}  # the provider: for a first payment only

    if signal is PaymentSignal.SUCCEEDED:
        if status is OrderStatus.PAYMENT_PENDING:
            await sell_reservation(uow, order, actor=actor, at=at)
            order.transition(OrderStatus.PAID, actor=actor, at=at,
                             reason=reason or "payment succeeded", **payment_news)
            return Outcome.APPLIED
        if status in (OrderStatus.CANCELLED, OrderStatus.FAILED):
            if not await _owe_refund(uow, order, intent, at=at,
                                     reason=f"paid after the order was {status.value}"):
                return Outcome.UNCHANGED  # known, and owed or refunded already
            order.update_payment(
                actor=actor, at=at, intent_id=intent.id, status=intent.status,
                provider=intent.provider, refund_status=RefundStatus.REQUIRED,
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
        if status is OrderStatus.FULFILLED:
            # Refunded after it shipped (a return, from the provider's dashboard): the goods
            # are gone and the order stays FULFILLED; the refund is on record.
            order.update_payment(actor=actor, at=at, refund_status=RefundStatus.SUCCEEDED,
                                 reason=reason or "refunded at the provider after shipping")
            return Outcome.APPLIED
        return Outcome.UNCHANGED  # already REFUNDED (we asked for it), or nothing to refund

    # PROCESSING, ACTION_REQUIRED, PENDING: news without a transition.
    if order.holds_reservation:
        before = order.version
        order.update_payment(actor=actor, at=at, reason=f"provider status {intent.status}",
                             **payment_news)
        return Outcome.APPLIED if order.version != before else Outcome.UNCHANGED
    return Outcome.UNCHANGED


async def close_lost_payment(uow: UnitOfWork, clock: Clock, *, order_id: int,
                             intent_id: str) -> Order | None:
    """The provider no longer knows the order's intent: nobody can pay it, so the order is
    CANCELLED and its stock released (once; the error is logged once, with the order)."""
    order: Order | None = None
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id, for_update=True)
            if order is None or not order.holds_reservation or order.payment is None or \
                    order.payment.intent_id != intent_id:
                order = None  # paid, closed or moved on meanwhile: nothing to change
            else:
                now = clock.now()
                await release_reservation(uow, order, actor=SYSTEM, at=now)
                order.transition(OrderStatus.CANCELLED, actor=SYSTEM, at=now,
                                 reason=f"the payment provider does not know payment "
                                        f"{intent_id}",
                                 last_error="payment unknown to the provider")
                await uow.orders.save(order)
                await uow.commit()
    if order is not None:
        log.error("order %s cancelled: the payment provider does not know its intent %s "
                  "(deleted? another account's keys?)", order_id, intent_id)
    return order


# ---- use cases ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayResult:
    order: Order
    requires_action: bool
    client_secret: str | None


async def pay_order(uow: UnitOfWork, gateways: Gateways, clock: Clock, *, order_id: int,
                    viewer: User, payment_method_id: str) -> PayResult:
    """The owner pays a pending order with a payment method; the server confirms it.

    Whatever the confirmation answers, the intent's own status decides: a decline fails the
    order (its stock goes back) and raises PAYMENT_DECLINED; an intent that had already
    succeeded (Pay pressed twice, or after 3-D Secure) settles the order as PAID; 3-D Secure
    returns requires_action with the client secret for Stripe.js.
    """
    payment_method_id = payment_method_id.strip()
    if not 1 <= len(payment_method_id) <= 255:
        raise ValidationFailed("paymentMethodId is required.", field="paymentMethodId")
    order = await _visible_order(uow, order_id, viewer)
    if order.customer_id != viewer.id:
        raise NotFound(f"Order {order_id} not found.", field="id")
    if order.status is not OrderStatus.PAYMENT_PENDING:
        # Already PAID included: the answer says so (`from: PAID`), and nothing is charged.
        raise InvalidTransition(from_status=order.status.value,
                                to_status=OrderStatus.PAID.value)
    assert order.payment is not None and order.payment.intent_id is not None
    intent_id = order.payment.intent_id
    try:
        intent = await gateways.for_payment(order.payment).confirm_intent(
            intent_id, payment_method_id=payment_method_id,
            idempotency_key=f"order-{order.id}-pay-{payment_method_id}")
    except PaymentFailed as failure:
        return await _settle_refused_confirmation(uow, gateways, clock, order, failure)
    return await _pay_result(uow, gateways, clock, order, intent)


_PAID = (OrderStatus.PAID, OrderStatus.FULFILLED)


async def _settle_refused_confirmation(uow: UnitOfWork, gateways: Gateways, clock: Clock,
                                       order: Order, failure: PaymentFailed) -> PayResult:
    """The provider refused to confirm: read what the intent really is and settle by that."""
    assert order.payment is not None and order.payment.intent_id is not None
    try:
        intent = await gateways.for_payment(order.payment).retrieve_intent(
            order.payment.intent_id)
    except IntentNotFound as missing:
        await close_lost_payment(uow, clock, order_id=order.id, intent_id=missing.intent_id)
        raise
    except PaymentFailed:
        # We cannot tell what happened (the refusal may be "already paid"): never a decline
        # then, but an error worth retrying, which will read the intent again.
        raise PaymentFailed.provider_error() from failure
    update = PaymentUpdate.from_intent(intent)
    if update.signal in (PaymentSignal.SUCCEEDED, PaymentSignal.ACTION_REQUIRED):
        return await _pay_result(uow, gateways, clock, order, intent)
    declined = update.signal is PaymentSignal.FAILED
    settlement = await settle_payment(
        uow, gateways, clock, update,
        reason=f"card declined ({failure.decline_code})" if declined else None)
    order = settlement.order or order
    if order.status in _PAID:
        return PayResult(order=order, requires_action=False, client_secret=None)
    if not declined and order.status is not OrderStatus.PAYMENT_PENDING:
        # e.g. the intent was cancelled (the order expired meanwhile): no decline to report.
        raise InvalidTransition(from_status=order.status.value,
                                to_status=OrderStatus.PAID.value)
    raise failure


async def _pay_result(uow: UnitOfWork, gateways: Gateways, clock: Clock, order: Order,
                      intent: PaymentIntent) -> PayResult:
    settlement = await settle_payment(uow, gateways, clock, PaymentUpdate.from_intent(intent))
    order = settlement.order or order
    if order.status not in (*_PAID, OrderStatus.PAYMENT_PENDING):
        # Cancelled or expired while the payment went through: the money is on its way back.
        raise InvalidTransition(from_status=order.status.value,
                                to_status=OrderStatus.PAID.value)
    requires_action = order.status is OrderStatus.PAYMENT_PENDING and \
        PaymentUpdate.from_intent(intent).signal is PaymentSignal.ACTION_REQUIRED
    return PayResult(order=order, requires_action=requires_action,
                     client_secret=intent.client_secret if requires_action else None)


async def sync_payment(uow: UnitOfWork, gateways: Gateways, clock: Clock, *,
                       order_id: int, viewer: User) -> Order:
    """Ask the provider for the intent's status now and apply it (a missed webhook)."""
    order = await _visible_order(uow, order_id, viewer)
    if order.payment is None or order.payment.intent_id is None:
        return order
    try:
        intent = await gateways.for_payment(order.payment).retrieve_intent(
            order.payment.intent_id)
    except IntentNotFound as missing:
        closed = await close_lost_payment(uow, clock, order_id=order.id,
                                          intent_id=missing.intent_id)
        return closed or await _visible_order(uow, order_id, viewer)
    settlement = await settle_payment(uow, gateways, clock, PaymentUpdate.from_intent(intent),
                                      reason="synchronised with the provider")
    return settlement.order or await _visible_order(uow, order_id, viewer)


async def _visible_order(uow: UnitOfWork, order_id: int, viewer: User) -> Order:
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id)
    if order is None or not order.visible_to(viewer):
        raise NotFound(f"Order {order_id} not found.", field="id")
    return order

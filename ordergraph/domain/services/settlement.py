"""The finalizer: the provider's news applied to its order, under the order's row lock.

`settle_payment` (payments.py) runs it in a transaction; it decides what the news means for
the order (PAID, FAILED, CANCELLED, REFUNDED, news only, or money owed back).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from ordergraph.domain.model import (
    Actor,
    Money,
    Order,
    OrderStatus,
    OwedRefund,
    Payment,
    RefundStatus,
)
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, PaymentIntent, UnitOfWork
from ordergraph.domain.services.reservations import (
    release_reservation,
    restock_order,
    sell_reservation,
)

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


async def apply_payment_status(*, uow: UnitOfWork, clock: Clock, update: PaymentUpdate,
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
    if update.signal is PaymentSignal.REFUNDED:
        # Captured (not the order's amount) and already refunded in full at the provider: no
        # money is held and nothing is owed, so the order closes like any mismatch, its stock
        # released; waiting would hold the stock for ever.
        if order.holds_reservation:
            await release_reservation(uow, order, actor=actor, at=at)
            order.transition(OrderStatus.FAILED, actor=actor, at=at,
                             reason="the payment did not match the order and was refunded "
                                    "in full at the provider",
                             status=intent.status, last_error=error,
                             refund_status=RefundStatus.SUCCEEDED)
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
        if status is OrderStatus.PAYMENT_PENDING:
            # Paid and refunded in full at the provider before we heard of the payment (its
            # webhook missed, the dashboard quick): the order is PAID, then REFUNDED, both on
            # its record, and its stock back on sale, never a PAID order without the money.
            await sell_reservation(uow, order, actor=actor, at=at)
            order.transition(OrderStatus.PAID, actor=actor, at=at,
                             reason="payment succeeded (heard after its refund)",
                             **payment_news)
            status = OrderStatus.PAID
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

    if signal is PaymentSignal.PARTIALLY_REFUNDED:
        if status not in (OrderStatus.PAID, OrderStatus.FULFILLED):
            return Outcome.UNCHANGED
        # Part of the money went back (the dashboard): the shop still holds the rest, so the
        # order stays as it is; the refund is on its record (README, Payments: "Refunds").
        # A refundOrder later refunds only what is left.
        refunded, captured = intent.amount_refunded or 0, (
            intent.amount if intent.amount_received is None else intent.amount_received)
        before = order.version
        order.update_payment(
            actor=actor, at=at,
            last_error=f"partially refunded at the provider: {refunded} of {captured} "
                       f"{intent.currency}",
            reason=f"partially refunded at the provider ({refunded} of {captured} "
                   f"{intent.currency}); the order stays {status.value}")
        return Outcome.APPLIED if order.version != before else Outcome.UNCHANGED

    # PROCESSING, ACTION_REQUIRED, PENDING: news without a transition.
    if order.holds_reservation:
        before = order.version
        order.update_payment(actor=actor, at=at, reason=f"provider status {intent.status}",
                             **payment_news)
        return Outcome.APPLIED if order.version != before else Outcome.UNCHANGED
    return Outcome.UNCHANGED

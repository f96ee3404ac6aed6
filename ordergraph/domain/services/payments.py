"""Payments: the one finalizer's entry point, and the use cases that feed it.

Webhooks, `payOrder`'s immediate answer, `syncPayment` and the sweeper all report what the
provider says through `settle_payment`, which applies it under the order's row lock
(`apply_payment_status`, settlement.py) and then, outside any transaction, sends back money we
must not keep. They can race each other: the lock and the state machine let exactly one of
them move the order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

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
    Order,
    OrderStatus,
    User,
)
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, Gateways, PaymentIntent, UnitOfWork
from ordergraph.domain.services.provider_deadline import DEFAULT_PROVIDER_DEADLINE, per_request
from ordergraph.domain.services.refunds import refund_owed
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.settlement import Settlement, apply_payment_status
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)


async def settle_payment(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                         update: PaymentUpdate, actor: Actor = PAYMENT_PROVIDER,
                         reason: str | None = None) -> Settlement:
    """Apply the provider's news to its order; refund money we will not keep."""
    async for attempt in retrying(uow):
        async with attempt:
            settlement = await apply_payment_status(uow=uow, clock=clock, update=update,
                                                    actor=actor, reason=reason)
            await uow.commit()
    if settlement.refund_intent_id is not None:
        # The debt is on record (same transaction as the news): if this attempt fails,
        # the sweeper retries it.
        order = await refund_owed(uow=uow, gateways=gateways, clock=clock,
                                  intent_id=settlement.refund_intent_id)
        return Settlement(settlement.outcome, order or settlement.order,
                          settlement.refund_intent_id)
    return settlement


async def close_lost_payment(*, uow: UnitOfWork, clock: Clock, order_id: int,
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


async def pay_order(*, uow: UnitOfWork, gateways: Gateways, clock: Clock, order_id: int,
                    viewer: User, payment_method_id: str,
                    provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE) -> PayResult:
    """The owner pays a pending order with a payment method; the server confirms it.

    Whatever the confirmation answers, the intent's own status decides: a decline fails the
    order (its stock goes back) and raises PAYMENT_DECLINED; an intent that had already
    succeeded (Pay pressed twice, or after 3-D Secure) settles the order as PAID; 3-D Secure
    returns requires_action with the client secret for Stripe.js. A provider that does not
    answer within `provider_deadline` raises PAYMENT_PROVIDER_ERROR with the order still
    PAYMENT_PENDING: the confirmation may have gone through, and the webhook, syncPayment,
    paying again (the same idempotency key) or the expiry settle it by the intent's status.
    """
    gateways = per_request(gateways, provider_deadline)
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
        await close_lost_payment(uow=uow, clock=clock, order_id=order.id,
                                 intent_id=missing.intent_id)
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
        uow=uow, gateways=gateways, clock=clock, update=update,
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
    settlement = await settle_payment(uow=uow, gateways=gateways, clock=clock,
                                      update=PaymentUpdate.from_intent(intent))
    order = settlement.order or order
    if order.status not in (*_PAID, OrderStatus.PAYMENT_PENDING):
        # Cancelled or expired while the payment went through: the money is on its way back.
        raise InvalidTransition(from_status=order.status.value,
                                to_status=OrderStatus.PAID.value)
    requires_action = order.status is OrderStatus.PAYMENT_PENDING and \
        PaymentUpdate.from_intent(intent).signal is PaymentSignal.ACTION_REQUIRED
    return PayResult(order=order, requires_action=requires_action,
                     client_secret=intent.client_secret if requires_action else None)


async def sync_payment(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                       order_id: int, viewer: User,
                       provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE) -> Order:
    """Ask the provider for the intent's status now and apply it (a missed webhook); a
    provider that does not answer within `provider_deadline` raises PAYMENT_PROVIDER_ERROR
    and changes nothing."""
    gateways = per_request(gateways, provider_deadline)
    order = await _visible_order(uow, order_id, viewer)
    if order.payment is None or order.payment.intent_id is None:
        return order
    try:
        intent = await gateways.for_payment(order.payment).retrieve_intent(
            order.payment.intent_id)
    except IntentNotFound as missing:
        closed = await close_lost_payment(uow=uow, clock=clock, order_id=order.id,
                                          intent_id=missing.intent_id)
        return closed or await _visible_order(uow, order_id, viewer)
    settlement = await settle_payment(uow=uow, gateways=gateways, clock=clock,
                                      update=PaymentUpdate.from_intent(intent),
                                      reason="synchronised with the provider")
    return settlement.order or await _visible_order(uow, order_id, viewer)


async def _visible_order(uow: UnitOfWork, order_id: int, viewer: User) -> Order:
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id)
    if order is None or not order.visible_to(viewer):
        raise NotFound(f"Order {order_id} not found.", field="id")
    return order

"""The sweeper: expires unpaid reservations, retries refunds owed, finishes stalled refunds.

Runs in the app every SWEEP_INTERVAL and as `ordergraph sweep`. Several instances may run it
at once: candidates are listed in a short transaction with SKIP LOCKED (rows another
sweeper holds at that moment are passed over; the locks end with that transaction), each
order is then moved in a transaction of its own under its row lock, re-checked there, so it
changes once however many sweepers listed it; owed refunds are claimed one by one. An order
or refund that keeps failing is backed off, so it never stands in front of the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from ordergraph.domain.errors import IntentNotFound, PaymentFailed
from ordergraph.domain.model import SYSTEM, Order, OrderStatus
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, Gateways, UnitOfWork
from ordergraph.domain.services.payment_opening import close_unrecorded_intent
from ordergraph.domain.services.payments import close_lost_payment, settle_payment
from ordergraph.domain.services.provider_deadline import (
    DEFAULT_PROVIDER_DEADLINE,
    BoundedGateways,
    per_pass,
)
from ordergraph.domain.services.refunds import STALE_REFUND_REQUEST, refund_owed, resume_refund
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)

BATCH = 100
# A pass lists due expiries BATCH at a time, again while a full batch changed something, up to
# this many rounds: a backlog (a flash sale's abandoned carts, a sweeper that was down) goes
# back on sale in one pass, not BATCH per SWEEP_INTERVAL. Past it the pass ends with
# `more_due` and the app's sweeper runs the next one at once.
MAX_EXPIRY_ROUNDS = 10
# An expiry the provider would not let us finish is tried again after 30 s, 1 min, 2 min...
FIRST_EXPIRY_RETRY = timedelta(seconds=30)
MAX_EXPIRY_RETRY = timedelta(minutes=30)


@dataclass
class SweepReport:
    expired: int = 0            # PAYMENT_PENDING past reserved_until -> CANCELLED
    paid_at_expiry: int = 0     # the provider said it succeeded after all -> PAID
    abandoned: int = 0          # CREATED past its deadline (checkout never finished) -> CANCELLED
    refunds_retried: int = 0    # refunds owed (or stalled) that went through this time
    errors: list[str] = field(default_factory=list)
    more_due: bool = False      # expiries were still due when the pass stopped listing them

    @property
    def changed(self) -> int:
        return self.expired + self.paid_at_expiry + self.abandoned + self.refunds_retried


async def sweep(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                batch: int | None = None,
                provider_deadline: timedelta = DEFAULT_PROVIDER_DEADLINE) -> SweepReport:
    """One pass: expiries (BATCH per round, unless `batch`), then refunds owed, then stalled
    refunds."""
    batch = BATCH if batch is None else batch
    # Each provider call within the deadline; once one hangs the pass stops asking, and what
    # it had not reached waits for a later pass as it is (no backoff for an attempt never
    # made).
    bounded = per_pass(gateways, provider_deadline)
    report = SweepReport()
    for step in (_expire_reservations, _retry_owed_refunds, _resume_stalled_refunds):
        await step(uow, bounded, clock, report, batch)
        if bounded.gave_up:
            report.errors.append("the payment provider gave no answer within "
                                 f"{provider_deadline.total_seconds():g}s: the rest of this "
                                 "pass waits for the next")
            break
    return report


# What an expired order's intent can say, and the reason on the order's record (a payment
# refunded in full before we heard of it: the settlement's own reasons, README "Payments").
_SETTLED_AT_EXPIRY: dict[PaymentSignal, str | None] = {
    PaymentSignal.CANCELED: "reservation expired",
    PaymentSignal.SUCCEEDED: "paid before the reservation expired",
    PaymentSignal.REFUNDED: None,
}


async def _expire_reservations(uow: UnitOfWork, gateways: BoundedGateways, clock: Clock,
                               report: SweepReport, batch: int) -> None:
    for _ in range(MAX_EXPIRY_ROUNDS):
        changed = report.changed
        listed = await _expire_batch(uow, gateways, clock, report, batch)
        # A short batch was all there was; a batch that changed nothing (every order backed
        # off, or the provider gone) is not worth listing again now.
        if listed < batch or report.changed == changed or gateways.gave_up:
            return
    report.more_due = True


async def _expire_batch(uow: UnitOfWork, gateways: BoundedGateways, clock: Clock,
                        report: SweepReport, batch: int) -> int:
    """Expire up to `batch` due orders; the number listed."""
    async for attempt in retrying(uow):
        async with attempt:
            expired = await uow.orders.lock_expired(now=clock.now(), limit=batch)
            await uow.commit()
    candidates = [(o.id, o.payment, o.payment.intent_id if o.payment else None)
                  for o in expired]
    for order_id, payment, intent_id in candidates:
        if gateways.gave_up:  # the provider is not answering: the rest waits
            break
        if intent_id is None:
            await _expire_unopened(uow, gateways, clock, report, order_id)
            continue
        try:
            # Cancel at the provider first, outside any transaction: if it says the payment
            # already succeeded, the customer paid in time and the order becomes PAID.
            intent = await gateways.for_payment(payment).cancel_intent(
                intent_id, idempotency_key=f"order-{order_id}-expire")
        except IntentNotFound:
            # Asking again will not help, and nobody can pay it: it expires here and now.
            if await close_lost_payment(uow=uow, clock=clock, order_id=order_id,
                                        intent_id=intent_id) is not None:
                report.expired += 1
            continue
        except PaymentFailed as failure:
            report.errors.append(f"order {order_id}: {failure.message}")
            await _postpone(uow, clock, order_id)
            continue
        update = PaymentUpdate.from_intent(intent)
        if update.signal not in _SETTLED_AT_EXPIRY:
            await _postpone(uow, clock, order_id)  # e.g. processing: ask again later
            continue
        settlement = await settle_payment(
            uow=uow, gateways=gateways, clock=clock, update=update, actor=SYSTEM,
            reason=_SETTLED_AT_EXPIRY[update.signal])
        if settlement.order is not None and settlement.order.status is OrderStatus.PAID:
            report.paid_at_expiry += 1
        elif settlement.order is not None and settlement.order.status is OrderStatus.CANCELLED:
            report.expired += 1
        elif settlement.order is not None and settlement.order.holds_reservation:
            # Settled without closing (news the order cannot act on): ask again after the
            # backoff, not on every pass, and say so.
            log.warning("order %s expired but stays %s (its payment says %s): asking again "
                        "later", order_id, settlement.order.status.value, update.signal.value)
            await _postpone(uow, clock, order_id)
    return len(candidates)


async def _expire_unopened(uow: UnitOfWork, gateways: Gateways, clock: Clock,
                           report: SweepReport, order_id: int) -> None:
    """A CREATED order past its deadline: its checkout died before recording the payment."""
    order: Order | None
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id, for_update=True)
            now = clock.now()
            if order is None or order.status is not OrderStatus.CREATED or \
                    order.reserved_until is None or order.reserved_until > now:
                order = None  # its checkout finished (or someone closed it) meanwhile
            else:
                await release_reservation(uow, order, actor=SYSTEM, at=now)
                order.transition(OrderStatus.CANCELLED, actor=SYSTEM, at=now,
                                 reason="reservation expired before its payment was opened")
                await uow.orders.save(order)
                await uow.commit()
    if order is not None:
        report.abandoned += 1
        # The default provider's: the order recorded no payment.
        await close_unrecorded_intent(uow=uow, gateway=gateways, clock=clock, order=order)


async def _postpone(uow: UnitOfWork, clock: Clock, order_id: int) -> None:
    async for attempt in retrying(uow):
        async with attempt:
            order = await uow.orders.get(order_id)
            attempts = order.expiry_attempts if order is not None else 0
            delay = min(MAX_EXPIRY_RETRY, FIRST_EXPIRY_RETRY * 2 ** attempts)
            await uow.orders.postpone_expiry(order_id, until=clock.now() + delay)
            await uow.commit()


async def _retry_owed_refunds(uow: UnitOfWork, gateways: BoundedGateways, clock: Clock,
                              report: SweepReport, batch: int) -> None:
    async for attempt in retrying(uow):
        async with attempt:
            due = await uow.owed_refunds.due(now=clock.now(), limit=batch)
            await uow.commit()
    for intent_id in due:
        if gateways.gave_up:  # the provider is not answering: the rest waits
            return
        refunded = await refund_owed(uow=uow, gateways=gateways, clock=clock, intent_id=intent_id)
        if refunded is not None:
            report.refunds_retried += 1
        else:
            report.errors.append(f"refund of {intent_id}: still failing (backing off)")


async def _resume_stalled_refunds(uow: UnitOfWork, gateways: BoundedGateways, clock: Clock,
                                  report: SweepReport, batch: int) -> None:
    async for attempt in retrying(uow):
        async with attempt:
            stalled = await uow.orders.stale_refund_requests(
                before=clock.now() - STALE_REFUND_REQUEST, limit=batch)
            await uow.commit()
    for order in stalled:
        if gateways.gave_up:  # the provider is not answering: the rest waits
            return
        resumed = await resume_refund(uow=uow, gateways=gateways, clock=clock, order_id=order.id)
        if resumed is not None and resumed.status is OrderStatus.REFUNDED:
            report.refunds_retried += 1
        elif resumed is None:
            report.errors.append(f"order {order.id}: refund still without an answer")

"""The sweeper: expires unpaid reservations, cleans up half-made orders, retries refunds.

Runs in the app every SWEEP_INTERVAL and as `ordergraph sweep`. Several instances may run it
at once: candidates are taken with SKIP LOCKED, and the finalizer moves each order once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from ordergraph.domain.errors import PaymentFailed
from ordergraph.domain.model import SYSTEM, OrderStatus
from ordergraph.domain.payments import PaymentSignal, PaymentUpdate
from ordergraph.domain.ports import Clock, PaymentGateway, UnitOfWork
from ordergraph.domain.services.payments import refund_unwanted_payment, settle_payment
from ordergraph.domain.services.reservations import release_reservation
from ordergraph.domain.services.transaction import in_transaction

log = logging.getLogger(__name__)

# A checkout opens its payment within seconds; a CREATED order this old lost its second
# transaction (a crash, a deploy) and would hold its stock forever.
STALE_CREATED_AFTER = timedelta(minutes=5)
BATCH = 100


@dataclass
class SweepReport:
    expired: int = 0            # PAYMENT_PENDING past reserved_until -> CANCELLED
    paid_at_expiry: int = 0     # the provider said it succeeded after all -> PAID
    abandoned: int = 0          # CREATED orders whose payment was never opened -> CANCELLED
    refunds_retried: int = 0    # refunds owed that went through this time
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.expired + self.paid_at_expiry + self.abandoned + self.refunds_retried


async def sweep(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock, *,
                stale_created_after: timedelta = STALE_CREATED_AFTER,
                batch: int = BATCH) -> SweepReport:
    report = SweepReport()
    await _expire_reservations(uow, gateway, clock, report, batch)
    await _cancel_abandoned_checkouts(uow, clock, report, stale_created_after, batch)
    await _retry_refunds(uow, gateway, clock, report, batch)
    return report


async def _expire_reservations(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                               report: SweepReport, batch: int) -> None:
    async def candidates() -> list[tuple[int, str | None]]:
        expired = await uow.orders.lock_expired(now=clock.now(), limit=batch)
        return [(o.id, o.payment.intent_id if o.payment else None) for o in expired]

    for order_id, intent_id in await in_transaction(uow, candidates):
        if intent_id is None:
            continue
        try:
            # Cancel at the provider first, outside any transaction: if it says the payment
            # already succeeded, the customer paid in time and the order becomes PAID.
            intent = await gateway.cancel_intent(intent_id,
                                                 idempotency_key=f"order-{order_id}-expire")
        except PaymentFailed as failure:
            report.errors.append(f"order {order_id}: {failure.message}")
            continue
        update = PaymentUpdate.from_intent(intent)
        if update.signal not in (PaymentSignal.CANCELED, PaymentSignal.SUCCEEDED):
            continue  # e.g. processing: ask again next time
        settlement = await settle_payment(
            uow, gateway, clock, update, actor=SYSTEM,
            reason="reservation expired" if update.signal is PaymentSignal.CANCELED
            else "paid before the reservation expired")
        if settlement.order is not None and settlement.order.status is OrderStatus.PAID:
            report.paid_at_expiry += 1
        elif settlement.order is not None and settlement.order.status is OrderStatus.CANCELLED:
            report.expired += 1


async def _cancel_abandoned_checkouts(uow: UnitOfWork, clock: Clock, report: SweepReport,
                                      stale_after: timedelta, batch: int) -> None:
    async def cancel() -> int:
        now = clock.now()
        orders = await uow.orders.lock_stale_created(before=now - stale_after, limit=batch)
        for order in orders:
            await release_reservation(uow, order, actor=SYSTEM, at=now)
            order.transition(OrderStatus.CANCELLED, actor=SYSTEM, at=now,
                             reason="checkout did not complete")
            await uow.orders.save(order)
        return len(orders)

    report.abandoned += await in_transaction(uow, cancel)


async def _retry_refunds(uow: UnitOfWork, gateway: PaymentGateway, clock: Clock,
                         report: SweepReport, batch: int) -> None:
    async def due() -> list[tuple[int, str | None]]:
        orders = await uow.orders.refunds_required(limit=batch)
        return [(o.id, o.payment.intent_id if o.payment else None) for o in orders]

    for order_id, intent_id in await in_transaction(uow, due):
        if await refund_unwanted_payment(uow, gateway, clock, order_id=order_id,
                                         intent_id=intent_id) is not None:
            report.refunds_retried += 1
        else:
            report.errors.append(f"order {order_id}: refund still failing")

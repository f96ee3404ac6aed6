"""Background work of the app: the sweeper, every SWEEP_INTERVAL, and the mail sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from ordergraph.domain.errors import ServiceUnavailable
from ordergraph.domain.ports import Mailer
from ordergraph.domain.services.mail import deliver_mail
from ordergraph.domain.services.sweeper import sweep
from ordergraph.schema.context import Deps

log = logging.getLogger(__name__)


async def run_sweeper(deps: Deps, interval: timedelta) -> None:
    """Sweep now and then every `interval`, until cancelled; at once again after a pass that
    left expiries due (a backlog). A failed pass is logged, and the next one runs as usual."""
    while True:
        more_due = False
        try:
            report = await sweep(uow=deps.uow(), gateways=deps.gateway, clock=deps.clock,
                                 provider_deadline=deps.payment_provider_deadline)
        except ServiceUnavailable:
            # The outage itself is logged once (ordergraph.db.outage); the next pass retries.
            log.info("sweep skipped: database unavailable")
            deps.metrics.sweep(changed={}, failed=True)
        except Exception:
            log.exception("sweep failed")
            deps.metrics.sweep(changed={}, failed=True)
        else:
            if report.changed or report.errors:
                log.info("sweep: %d expired, %d paid at expiry, %d abandoned, %d refunds; "
                         "errors: %s", report.expired, report.paid_at_expiry, report.abandoned,
                         report.refunds_retried, report.errors or "none")
            deps.metrics.sweep(changed={
                "expired": report.expired, "paid_at_expiry": report.paid_at_expiry,
                "abandoned": report.abandoned, "refunds": report.refunds_retried},
                failed=bool(report.errors))
            more_due = report.more_due
        await asyncio.sleep(0 if more_due else interval.total_seconds())


# The outbox is polled this often (one indexed query when nothing is due), so an email
# leaves within about a second of the change that wrote it.
MAIL_POLL_SECONDS = 1.0


async def run_mail_sender(deps: Deps, mailer: Mailer,
                          poll_seconds: float = MAIL_POLL_SECONDS) -> None:
    """Deliver due email, then wait `poll_seconds`, until cancelled."""
    while True:
        try:
            report = await deliver_mail(uow=deps.uow(), mailer=mailer, clock=deps.clock)
        except ServiceUnavailable:
            log.info("mail delivery skipped: database unavailable")
        except Exception:
            log.exception("mail delivery failed")
        else:
            if report.sent or report.failed:
                log.info("mail: %d sent, %d failed (retried later)", report.sent,
                         report.failed)
        await asyncio.sleep(poll_seconds)


@contextlib.asynccontextmanager
async def background(deps: Deps, interval: timedelta, *, sweeper: bool = True,
                     mail: bool = True) -> AsyncIterator[list[asyncio.Task]]:
    tasks = []
    if sweeper:
        tasks.append(asyncio.create_task(run_sweeper(deps, interval), name="sweeper"))
    if mail and deps.mailer is not None:
        tasks.append(asyncio.create_task(run_mail_sender(deps, deps.mailer),
                                         name="mail-sender"))
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Background work of the app: the sweeper, every SWEEP_INTERVAL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from ordergraph.domain.errors import ServiceUnavailable
from ordergraph.domain.services.sweeper import sweep
from ordergraph.resolvers.context import Services

log = logging.getLogger(__name__)


async def run_sweeper(services: Services, interval: timedelta) -> None:
    """Sweep now and then every `interval`, until cancelled. A failed pass is logged, and the
    next one runs as usual."""
    while True:
        try:
            report = await sweep(services.uow(), services.gateway, services.clock)
        except ServiceUnavailable:
            # The outage itself is logged once (ordergraph.db.outage); the next pass retries.
            log.info("sweep skipped: database unavailable")
            services.metrics.sweep(changed={}, failed=True)
        except Exception:
            log.exception("sweep failed")
            services.metrics.sweep(changed={}, failed=True)
        else:
            if report.changed or report.errors:
                log.info("sweep: %d expired, %d paid at expiry, %d abandoned, %d refunds; "
                         "errors: %s", report.expired, report.paid_at_expiry, report.abandoned,
                         report.refunds_retried, report.errors or "none")
            services.metrics.sweep(changed={
                "expired": report.expired, "paid_at_expiry": report.paid_at_expiry,
                "abandoned": report.abandoned, "refunds": report.refunds_retried},
                failed=bool(report.errors))
        await asyncio.sleep(interval.total_seconds())


@contextlib.asynccontextmanager
async def background(services: Services, interval: timedelta) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(run_sweeper(services, interval), name="sweeper")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""Run a unit of work, again if the database asks us to (serialization failure, deadlock).

    async for attempt in retrying(uow):
        async with attempt:
            ...                  # reads and writes through uow only
            await uow.commit()

Each attempt is one transaction: a RetryableConflict (raised in the block or by the unit of
work as it exits) rolls it back, waits a jittered moment and runs the block again; any other
error leaves the loop. The block must do nothing outside the database (no network calls): a
retried attempt starts again from a rolled-back transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TypeVar

from ordergraph.domain.errors import TransactionConflict
from ordergraph.domain.ports import RetryableConflict, UnitOfWork

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
BASE_BACKOFF_SECONDS = 0.005
MAX_BACKOFF_SECONDS = 0.25


class Attempt:
    """One run of the block: enters the unit of work, and swallows a retryable conflict so
    that `retrying` can run the block again."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self.conflict: RetryableConflict | None = None

    async def __aenter__(self) -> UnitOfWork:
        await self._uow.__aenter__()
        return self._uow

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        try:
            await self._uow.__aexit__(exc_type, exc, tb)
        except RetryableConflict as conflict:
            self.conflict = conflict
            return True
        if isinstance(exc, RetryableConflict):
            self.conflict = exc
            return True
        return False


async def retrying(uow: UnitOfWork) -> AsyncIterator[Attempt]:
    """Attempts at one transaction, until one ends without a retryable conflict
    (TransactionConflict after MAX_ATTEMPTS)."""
    for number in range(1, MAX_ATTEMPTS + 1):
        attempt = Attempt(uow)
        yield attempt
        if attempt.conflict is None:
            return
        if number == MAX_ATTEMPTS:
            log.warning("transaction still conflicting after %d attempts: %s",
                        number, attempt.conflict)
            raise TransactionConflict() from attempt.conflict
        # Full jitter: contenders spread out instead of colliding again in lock-step.
        ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2**number)
        await asyncio.sleep(random.uniform(0, ceiling))

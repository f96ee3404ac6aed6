"""Run a unit of work, again if the database asks us to (serialization failure, deadlock)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ordergraph.domain.errors import TransactionConflict
from ordergraph.domain.ports import RetryableConflict, UnitOfWork

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
BASE_BACKOFF_SECONDS = 0.005
MAX_BACKOFF_SECONDS = 0.25

async def in_transaction(uow: UnitOfWork, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` inside `uow` and commit; retry the whole of it on a RetryableConflict.

    `work` must do nothing outside the database (no network calls, no events of its own):
    a retried attempt starts again from a rolled-back transaction.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with uow:
                result = await work()
                await uow.commit()
                return result
        except RetryableConflict as conflict:
            if attempt == MAX_ATTEMPTS:
                log.warning("transaction still conflicting after %d attempts: %s",
                            attempt, conflict)
                raise TransactionConflict() from conflict
            # Full jitter: contenders spread out instead of colliding again in lock-step.
            ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2**attempt)
            await asyncio.sleep(random.uniform(0, ceiling))
    raise AssertionError("unreachable")

"""`retrying(uow)`: the block runs again after a retryable conflict, and only then."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from ordergraph.domain.errors import TransactionConflict
from ordergraph.domain.ports import RetryableConflict
from ordergraph.domain.services import transaction
from ordergraph.domain.services.transaction import retrying


class FakeUow:
    def __init__(self, conflicts_on_exit: int) -> None:
        self.conflicts_on_exit = conflicts_on_exit
        self.entered = self.committed = 0

    async def __aenter__(self) -> FakeUow:
        self.entered += 1
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None and self.conflicts_on_exit:
            self.conflicts_on_exit -= 1
            raise RetryableConflict("serialization failure at commit")

    async def commit(self) -> None:
        self.committed += 1


async def test_a_conflict_runs_the_block_again_and_then_stops() -> None:
    uow: Any = FakeUow(conflicts_on_exit=2)
    runs = 0
    async for attempt in retrying(uow):
        async with attempt:
            runs += 1
            await uow.commit()
    assert (runs, uow.entered) == (3, 3)


async def test_a_conflict_raised_in_the_block_is_retried_other_errors_are_not() -> None:
    uow: Any = FakeUow(conflicts_on_exit=0)
    runs = 0
    async for attempt in retrying(uow):
        async with attempt:
            runs += 1
            if runs == 1:
                raise RetryableConflict("row changed concurrently")
    assert runs == 2
    with pytest.raises(ValueError, match="not a conflict"):
        async for attempt in retrying(uow):
            async with attempt:
                runs += 1
                raise ValueError("not a conflict")
    assert runs == 3


async def test_it_gives_up_as_a_transaction_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transaction, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(transaction, "BASE_BACKOFF_SECONDS", 0.0)
    uow: Any = FakeUow(conflicts_on_exit=10)
    runs = 0
    with pytest.raises(TransactionConflict):
        async for attempt in retrying(uow):
            async with attempt:
                runs += 1
    assert runs == 3

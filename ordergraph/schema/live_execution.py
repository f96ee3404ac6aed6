"""Execute a live event once for all the subscribers who asked the same question.

A change fanned out to a thousand subscribers would otherwise run the same GraphQL execution a
thousand times (~150 µs each on this machine: the whole p99 budget). Subscribers of one event
whose operation document, variables and audience are equal get one shared result.

The audience is whether the viewer is an admin: that is the only way a live event's fields
depend on who asks (`Stock.reserved`, who is named in an order's history). An order's
history also names the viewer themselves, which is still decided by the audience: the only
non-admin who receives an order's events is its owner. Keep it so: a field on OrderEvent or
StockEvent whose value depends on the viewer in another way must join the key in
`_audience`. (A subscription re-reads an admin viewer whose role changed before its next
event executes: resolvers/live_access.py.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

SHARED_RESULTS = "graphql_results"


class SharedLiveExecution(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        shared: dict[str, Any] | None = getattr(self.root_value, "shared_cache", None)
        if shared is None:  # not a live event (or a SNAPSHOT): execute as usual
            return super().execute_operation(serially)
        results: dict[Any, asyncio.Future[Any]] = shared.setdefault(SHARED_RESULTS, {})
        key = (id(self.operation), _frozen(self.variable_values), _audience(self.context_value))
        future = results.get(key)
        if future is None:
            outcome = super().execute_operation(serially)
            if not isinstance(outcome, Awaitable):
                future = asyncio.get_running_loop().create_future()
                future.set_result(outcome)
            else:
                future = asyncio.ensure_future(outcome)
            results[key] = future
        return _result_of(future)


async def _result_of(future: asyncio.Future[Any]) -> ExecutionResult:
    # Shielded: one subscriber leaving must not cancel the execution the others wait for.
    return await asyncio.shield(future)


def _frozen(variables: Any) -> str:
    return json.dumps(variables or {}, sort_keys=True, default=str)


def _audience(context: Any) -> bool:
    viewer = getattr(context, "_viewer", None)
    return bool(viewer is not None and viewer.is_admin)

"""Execute a live event once for all the subscribers who asked the same question, and
serialize its result once.

A change fanned out to a thousand subscribers would otherwise run the same GraphQL execution a
thousand times (~150 µs each on this machine: the whole p99 budget). Subscribers of one event
whose operation document, variables and audience are equal get one shared result. Its data is
marked (`SharedData`): the WebSocket encodes it to JSON once and writes the same bytes to every
subscriber of the group, only the operation id differing (web/graphql.py).

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
import logging
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from graphql import ExecutionResult, OperationType
from graphql.execution.executor import CollectedErrors
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

SHARED_RESULTS = "graphql_results"
SHARED_PAYLOADS = "graphql_payloads"
SHARED_WAITING = "graphql_waiting"
# A group's direct deliveries wait this long at most for the one subscriber who runs the
# group's execution the usual way (it may leave first); then they go the usual way too.
DIRECT_WAIT_SECONDS = 2.0
log = logging.getLogger(__name__)

# The graphql-transport-ws operation the current task serves: its socket (with an async
# send_text_quietly(text)) and its id (set by the WebSocket handler, web/graphql.py; unset
# for any other transport).
LIVE_OPERATION: ContextVar[tuple[Any, str] | None] = ContextVar("live_operation", default=None)


def encode(data: Any) -> str:
    """strawberry's own JSON encoding of a result (BaseView.encode_json)."""
    return json.dumps(data, separators=(",", ":"))


class SharedData(dict[str, Any]):
    """The data of a result shared by a group of subscribers, with its JSON once encoded.

    Only results without errors are shared this way: what every subscriber of the group is
    sent is then exactly the data, whoever they are."""

    __slots__ = ("_payload",)

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._payload: str | None = None

    def next_message(self, operation_id: str, encode: Callable[[Any], str | bytes]) -> str:
        """The graphql-transport-ws `next` message of this data for one operation id, as
        strawberry would send it (`{"id", "type", "payload": {"data"}}`), encoded once."""
        if self._payload is None:
            encoded = encode({"data": self})
            self._payload = encoded.decode() if isinstance(encoded, bytes) else encoded
        return f'{{"id":{json.dumps(operation_id)},"type":"next","payload":{self._payload}}}'


class SharedLiveExecution(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Once per subscription, not once per event (the per-event executors are copies).
        self.live_variables = _frozen(self.variable_values) \
            if self.operation.operation is OperationType.SUBSCRIPTION else None

    def build_per_event_executor(self, payload: Any) -> Any:
        """graphql-core's per-event copy, without `copy.copy` (its reduce protocol cost as
        much as the shared execution itself, once per subscriber and event)."""
        executor = object.__new__(type(self))
        executor.__dict__.update(self.__dict__)
        executor.root_value = payload
        executor.collected_errors = CollectedErrors()
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        shared: dict[str, Any] | None = getattr(self.root_value, "shared_cache", None)
        if shared is None:  # not a live event (or a SNAPSHOT): execute as usual
            return super().execute_operation(serially)
        results: dict[Any, asyncio.Future[Any]] = shared.setdefault(SHARED_RESULTS, {})
        variables = self.live_variables
        if variables is None:
            variables = _frozen(self.variable_values)
        key = (id(self.operation), variables, _audience(self.context_value))
        future = results.get(key)
        if future is None:
            outcome = super().execute_operation(serially)
            if not isinstance(outcome, Awaitable):
                future = asyncio.get_running_loop().create_future()
                future.set_result(_marked(outcome, shared, key))
            else:
                future = asyncio.ensure_future(_marked_when_done(outcome, shared, key))
            results[key] = future
        return _result_of(future)


async def _marked_when_done(outcome: Awaitable[Any], shared: dict[str, Any], key: Any) -> Any:
    try:
        return _marked(await outcome, shared, key)
    finally:
        _settle(shared, key)


def _marked(result: Any, shared: dict[str, Any], key: Any) -> Any:
    """Mark an error-free shared result, and leave it for the group's direct deliveries."""
    if isinstance(result, ExecutionResult) and not result.errors and \
            type(result.data) is dict:
        result.data = SharedData(result.data)
        shared.setdefault(SHARED_PAYLOADS, {})[key] = result.data
    _settle(shared, key)
    return result


def _settle(shared: dict[str, Any], key: Any) -> None:
    """Wake the group's direct deliveries waiting for its result (None: there is none)."""
    waiting = shared.get(SHARED_WAITING, {}).get(key)
    if waiting is not None and not waiting.done():
        waiting.set_result(shared.get(SHARED_PAYLOADS, {}).get(key))


class _DirectSends:
    """Direct deliveries of one turn of the loop, written by one task (web sockets' sends
    complete without waiting: one task for a batch costs far less than one per socket)."""

    def __init__(self) -> None:
        self._batch: list[tuple[Callable[[str], Awaitable[None]], str, Callable[[], None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0  # for tests and the curious

    def add(self, send: Callable[[str], Awaitable[None]], text: str,
            done: Callable[[], None]) -> None:
        if not self._batch:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._batch.append((send, text, done))

    async def _flush(self) -> None:
        batch, self._batch = self._batch, []
        for send, text, done in batch:
            try:
                await send(text)
                self.sent += 1
            except Exception:
                log.exception("a direct live send failed")
            finally:
                done()


_DIRECT = _DirectSends()


def direct_delivery(info: Any) -> _DirectTarget | None:
    """For a subscriber of the public audience over graphql-transport-ws: a function that
    writes an event's result straight to its socket when its group's result is already
    there (message cache -> the same bytes strawberry would send), skipping this
    subscriber's own pass through the GraphQL machinery. It answers False when it cannot
    (no shared result yet, errors, another transport); the caller decides when an event
    may be delivered this way at all (resolvers/live_stock.py)."""
    operation = LIVE_OPERATION.get()
    if operation is None or _audience(info.context):
        return None
    return _DirectTarget(operation[0], operation[1], (
        id(info.operation), sys.intern(_frozen(info.variable_values)), False))


class _DirectTarget:
    """One subscription's socket, operation id and group (slots: a crowd holds thousands)."""

    __slots__ = ("key", "operation_id", "socket")

    def __init__(self, socket: Any, operation_id: str, key: tuple[int, str, bool]) -> None:
        self.socket, self.operation_id, self.key = socket, operation_id, key

    def __call__(self, cache: dict[str, Any], done: Callable[..., None],
                 message: Any) -> bool:
        """Write the group's result when there is one; wait for it when someone of the group
        runs the execution; else False: this subscriber goes the usual way and runs it (and
        the rest of its group waits for that)."""
        data = cache.get(SHARED_PAYLOADS, {}).get(self.key)
        if data is not None:
            self._send(data, done)
            return True
        waiting = cache.setdefault(SHARED_WAITING, {})
        result = waiting.get(self.key)
        if result is None:  # the first of its group: executes it, the others wait for it
            loop = asyncio.get_running_loop()
            result = waiting[self.key] = loop.create_future()
            loop.call_later(DIRECT_WAIT_SECONDS, _give_up, result)
            return False
        if result.done():
            if result.result() is None:
                return False
            self._send(result.result(), done)
            return True

        def then(settled: asyncio.Future[Any]) -> None:
            shared = settled.result()
            if shared is None:
                done(message)  # no shared result after all: the usual way
            else:
                self._send(shared, done)

        result.add_done_callback(then)
        return True

    def _send(self, data: SharedData, done: Callable[..., None]) -> None:
        _DIRECT.add(self.socket.send_text_quietly, data.next_message(self.operation_id, encode),
                    done)


def _give_up(result: asyncio.Future[Any]) -> None:
    if not result.done():
        result.set_result(None)


async def _result_of(future: asyncio.Future[Any]) -> ExecutionResult:
    # Shielded: one subscriber leaving must not cancel the execution the others wait for.
    return await asyncio.shield(future)


def _frozen(variables: Any) -> str:
    values = getattr(variables, "coerced", variables)  # graphql-core's VariableValues
    return json.dumps(values or {}, sort_keys=True, default=str)


def _audience(context: Any) -> bool:
    viewer = getattr(context, "_viewer", None)
    return bool(viewer is not None and viewer.is_admin)

"""PostgreSQL: the checkout's hottest statements sent on psycopg's own connection, inside the
unit of work's transaction, without SQLAlchemy's per-statement execution (its execution
context, result set-up and greenlet hop cost ~0.1 ms of CPU per statement; a checkout runs
seven of them: bench/RESULTS.md, issue 12).

The statements are written here as psycopg takes them (`%(name)s` placeholders). A driver
error is handed to SQLAlchemy's own error handling, so callers see what any other statement
raises: DBAPIError with the driver's error as `orig` (retryable conflicts, unique and check
violations), and the engine's `handle_error` hook still turns a lost connection into
SERVICE_UNAVAILABLE and drops the pool (db/outage.py). With tracing on, each statement is a
span, as SQLAlchemy's are (`trace_statements`, adapters/tracing.py). SQLite keeps the
SQLAlchemy path.

A unit of work whose statements all went this way also begins and commits here: SQLAlchemy
then never begins a transaction of its own (it would only keep books, ~25 µs of CPU per
transaction with its greenlet hops: bench/RESULTS.md), and psycopg's implicit BEGIN opens the
one transaction on the server.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

Row = dict[str, Any]
T = TypeVar("T")
# A span around one statement, given its SQL (None: tracing is off).
StatementSpan = Callable[[str], AbstractContextManager[Any]]
_spans: weakref.WeakKeyDictionary[Engine, StatementSpan] = weakref.WeakKeyDictionary()


def trace_statements(engine: AsyncEngine, span: StatementSpan) -> None:
    """Open `span(sql)` around every driver statement on this engine's connections."""
    _spans[engine.sync_engine] = span


class Driver:
    """The psycopg connection under one unit of work's SQLAlchemy connection."""

    def __init__(self, conn: AsyncConnection, raw: psycopg.AsyncConnection[Any],
                 span: StatementSpan | None = None) -> None:
        self._conn = conn
        self._raw = raw
        self._span = span

    @classmethod
    async def under(cls, conn: AsyncConnection) -> Driver | None:
        """The driver for `conn` on PostgreSQL (psycopg); None elsewhere."""
        if conn.dialect.name != "postgresql":
            return None
        sync = conn.sync_connection
        if sync is not None and not sync.invalidated:
            # Just checked out: the pooled connection is there, no I/O (and no greenlet) needed.
            raw = sync.connection.driver_connection
        else:
            raw = (await conn.get_raw_connection()).driver_connection
        if not isinstance(raw, psycopg.AsyncConnection):
            return None
        return cls(conn, raw, _spans.get(conn.sync_engine))

    @property
    def in_transaction(self) -> bool:
        """Whether the server has a transaction open on this connection (a statement began
        one, or failed in one)."""
        return self._raw.info.transaction_status in (TransactionStatus.INTRANS,
                                                     TransactionStatus.INERROR)

    async def commit(self) -> None:
        """Commit what this connection's statements began (nothing, if none ran)."""
        try:
            await self._raw.commit()
        except psycopg.Error as error:
            await self._raise_as_sqlalchemy(error, "COMMIT", {})

    async def rollback(self) -> None:
        """Roll back what this connection's statements began. Nothing to do outside a
        transaction, or on a connection already lost (the pool drops it)."""
        if self._raw.closed or not self.in_transaction:
            return
        try:
            await self._raw.rollback()
        except psycopg.Error as error:
            await self._raise_as_sqlalchemy(error, "ROLLBACK", {})

    async def autocommit_rows(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        """`rows()` in autocommit: one statement on its own snapshot, with no BEGIN and
        ROLLBACK round trips. The connection goes back to the pool as it came (or is dropped
        from it, if it cannot be put back so)."""
        await self._raw.set_autocommit(True)
        try:
            return await self.rows(sql, params)
        finally:
            try:
                await self._raw.set_autocommit(False)
            except psycopg.Error:
                await self._conn.invalidate()

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        """The rows a statement answers, as dicts; datetimes in UTC (as UtcDateTime gives)."""
        return await self._traced(sql, self._rows(sql, params))

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement that answers no rows; the number of rows it changed."""
        return await self._traced(sql, self._execute(sql, params))

    async def _traced(self, sql: str, statement: Awaitable[T]) -> T:
        if self._span is None:
            return await statement
        with self._span(sql):
            return await statement

    async def _rows(self, sql: str, params: Mapping[str, Any]) -> list[Row]:
        try:
            async with self._raw.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(sql, params)
                found = await cursor.fetchall()
        except psycopg.Error as error:
            await self._raise_as_sqlalchemy(error, sql, params)
        for row in found:
            for column, value in row.items():
                if isinstance(value, datetime):
                    row[column] = value.astimezone(UTC)
        return found

    async def _execute(self, sql: str, params: Mapping[str, Any]) -> int:
        try:
            async with self._raw.cursor() as cursor:
                await cursor.execute(sql, params)
                return cursor.rowcount
        except psycopg.Error as error:
            await self._raise_as_sqlalchemy(error, sql, params)

    async def _raise_as_sqlalchemy(self, error: psycopg.Error, sql: str,
                                   params: Mapping[str, Any]) -> Any:
        # SQLAlchemy's handling of a failed statement (wrapping, handle_error hooks, dropping
        # a dead connection and its pool), run as if SQLAlchemy had sent the statement.
        handle = self._conn.sync_connection._handle_dbapi_exception  # type: ignore[union-attr]
        await greenlet_spawn(handle, error, sql, params, None, None)
        raise error  # not reached: the handler raises

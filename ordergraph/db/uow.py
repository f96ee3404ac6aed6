"""The unit of work: one transaction, rolled back unless committed; its events are published
after the commit, once the connection is back in the pool."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ordergraph.db.driver import Driver
from ordergraph.db.inventory_repository import SqlInventoryRepository
from ordergraph.db.order_repository import SqlOrderRepository
from ordergraph.db.outbox import SqlOutboxRepository, SqlPasswordResetRepository, queue_mail
from ordergraph.db.repositories import (
    SqlAddressBook,
    SqlOwedRefundRepository,
    SqlProductRepository,
    SqlUserRepository,
    SqlWebhookEventRepository,
)
from ordergraph.db.tables import audit_log, stock_movements
from ordergraph.domain.events import DomainEvent, StockChanged
from ordergraph.domain.mail import mail_for
from ordergraph.domain.ports import EventPublisher, RetryableConflict

log = logging.getLogger(__name__)

# Nobody reads these rows' ids: no RETURNING.
_INSERT_AUDIT = sa.insert(audit_log).inline()
_INSERT_MOVEMENTS = sa.insert(stock_movements).inline()

# The audit log's and the stock ledger's columns, with their PostgreSQL types.
_AUDIT_TYPES = {"at": "TIMESTAMPTZ", "actor_kind": "TEXT", "actor_id": "BIGINT", "action": "TEXT",
                "entity_type": "TEXT", "entity_id": "TEXT", "before": "JSONB", "after": "JSONB"}
_MOVEMENT_TYPES = {"product_id": "BIGINT", "delta_available": "INTEGER",
                   "delta_reserved": "INTEGER", "reason": "TEXT", "order_id": "BIGINT",
                   "actor_kind": "TEXT", "actor_id": "BIGINT", "note": "TEXT", "at": "TIMESTAMPTZ"}


def _insert_from_json(table: sa.Table, types: dict[str, str], parameter: str) -> str:
    columns = ", ".join(types)
    # jsonb_to_recordset reads a JSON null as SQL NULL; SQLAlchemy's JSON type writes None
    # as JSON null, and so do we.
    values = ", ".join(f"coalesce({column}, 'null'::jsonb)" if kind == "JSONB" else column
                       for column, kind in types.items())
    record = ", ".join(f"{column} {kind}" for column, kind in types.items())
    # Only our own table, column and type names: the rows are one bound JSON document.
    return (f"INSERT INTO {table.name} ({columns}) SELECT {values} "  # noqa: S608
            f"FROM jsonb_to_recordset(CAST(%({parameter})s AS jsonb)) AS entry({record})")


# PostgreSQL (on the driver, driver.py): a transaction's audit rows and stock movements in one
# statement (the audit rows' INSERT as a CTE), one round trip. The rows of each table are one
# JSON array, so the statement's text and its two parameters are the same for any number of
# rows: psycopg caches its conversion (it does not for a statement of over 50 parameters,
# which a 3-product cart's VALUES lists had: 59) and the server keeps one prepared statement
# for every cart size. A JSON text is what psycopg converts fastest: one array per column
# (17 of them) cost ~4 % of a checkout's CPU in psycopg's array dumper (bench/RESULTS.md).
# Empty arrays insert nothing.
_AUDIT_AND_MOVEMENTS = (
    f"WITH audit_rows AS ({_insert_from_json(audit_log, _AUDIT_TYPES, 'audit')}) "
    f"{_insert_from_json(stock_movements, _MOVEMENT_TYPES, 'movements')}")


def _json_value(value: object) -> str:
    """What the standard JSON encoder cannot write: our rows' timestamps (all UTC)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_rows(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


# SQLSTATEs after which running the transaction again can succeed.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_retryable(error: BaseException) -> bool:
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite gave up waiting for the write lock (after its busy timeout).
    return sqlstate is None and "database is locked" in str(error.orig)


class SqlAlchemyUnitOfWork:
    """`async with uow: ...; await uow.commit()`; leaving the block otherwise rolls back.

    A unit of work may be entered again after it exits: each entry is a new transaction.
    """

    def __init__(self, engine: AsyncEngine, publisher: EventPublisher, *,
                 on_conflict: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._publisher = publisher
        self._on_conflict = on_conflict  # counts the retries (metrics)
        self._conn: AsyncConnection | None = None
        self._driver: Driver | None = None
        self._seen: list[Any] = []
        self._committed = False
        self._published: list[DomainEvent] = []

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        try:
            self._driver = driver = await Driver.under(self._conn)
            if driver is None:
                await self._conn.begin()
            # On PostgreSQL no begin(): the first statement begins the transaction on the
            # server, and SQLAlchemy keeps books only if one of its own runs (`_end`).
        except BaseException:
            await self._conn.close()
            raise
        self._seen, self._published = [], []
        self._committed = False
        track = self._seen.append
        self.users = SqlUserRepository(self._conn, track, driver=driver)
        self.products = SqlProductRepository(self._conn, track, driver=driver)
        self.inventory = SqlInventoryRepository(self._conn, track, driver=driver)
        self.orders = SqlOrderRepository(self._conn, track, driver=driver)
        self.owed_refunds = SqlOwedRefundRepository(self._conn, track)
        self.webhook_events = SqlWebhookEventRepository(self._conn, track)
        self.addresses = SqlAddressBook(self._conn, track)
        self.outbox = SqlOutboxRepository(self._conn)
        self.password_resets = SqlPasswordResetRepository(self._conn)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        conn, driver, self._conn, self._driver = self._conn, self._driver, None, None
        assert conn is not None
        committed, self._committed = self._committed, False
        published, self._published = self._published, []
        try:
            if not committed:
                await self._end(conn, driver, commit=False)
        finally:
            await conn.close()
            self._seen = []
        # The connection is back in the pool: only now are the committed events handed to
        # the publisher, so a slow broadcast never holds a database connection.
        await self._publish(published)
        if exc is not None and (isinstance(exc, RetryableConflict) or is_retryable(exc)):
            if self._on_conflict is not None:
                self._on_conflict()
            if not isinstance(exc, RetryableConflict):
                raise RetryableConflict(str(exc)) from exc

    async def commit(self) -> None:
        """Write the audit rows, stock movements and outbox email of the events raised and
        commit; the events are published once the block exits and the connection is
        released."""
        assert self._conn is not None, "commit() outside `async with`"
        events = self._collect_events()
        await self._record(events)
        await self._end(self._conn, self._driver, commit=True)
        self._committed = True
        self._published = events

    @staticmethod
    async def _end(conn: AsyncConnection, driver: Driver | None, *, commit: bool) -> None:
        """Commit or roll back the transaction, where it was begun: by SQLAlchemy if any of
        its statements ran (it then holds the transaction psycopg's statements joined), else
        on psycopg's connection (db/driver.py)."""
        if driver is None or conn.in_transaction():
            await (conn.commit() if commit else conn.rollback())
        else:
            await (driver.commit() if commit else driver.rollback())

    def _collect_events(self) -> list[DomainEvent]:
        events: dict[str, DomainEvent] = {}
        for aggregate in self._seen:
            for event in aggregate.events:
                events[event.event_id] = event
            aggregate.events.clear()
        return sorted(events.values(), key=lambda event: event.sequence)

    async def _record(self, events: Sequence[DomainEvent]) -> None:
        assert self._conn is not None
        # Email only for what this transaction commits, and once per change.
        drafts = [draft for event in events if (draft := mail_for(event)) is not None]
        if drafts:
            await queue_mail(self._conn, drafts, at=max(event.at for event in events))
        audit_rows = [
            {"at": entry.at, "actor_kind": entry.actor.kind.value, "actor_id": entry.actor.user_id,
             "action": entry.action, "entity_type": entry.entity_type,
             "entity_id": entry.entity_id, "before": entry.before, "after": entry.after}
            for event in events for entry in event.audit_entries()
        ]
        movements = [
            {"product_id": event.product_id, "delta_available": event.delta_available,
             "delta_reserved": event.delta_reserved, "reason": event.reason,
             "order_id": event.order_id, "actor_kind": event.actor.kind.value,
             "actor_id": event.actor.user_id, "note": event.note, "at": event.at}
            for event in events if isinstance(event, StockChanged)
        ]
        if self._driver is not None and (audit_rows or movements):
            # Both in one statement: one round trip fewer for every change of stock. SQLite
            # has no INSERT inside WITH.
            await self._driver.execute(_AUDIT_AND_MOVEMENTS, {
                "audit": _json_rows(audit_rows), "movements": _json_rows(movements)})
            return
        if audit_rows:
            await self._conn.execute(_INSERT_AUDIT, audit_rows)
        if movements:
            await self._conn.execute(_INSERT_MOVEMENTS, movements)

    async def _publish(self, events: Sequence[DomainEvent]) -> None:
        if not events:
            return
        try:
            await self._publisher.publish(events)
        except Exception:
            # The change is committed; subscribers reconnect and refetch. Never undo work
            # because a notification failed.
            log.exception("could not publish %d events after commit", len(events))


class NullPublisher:
    """An EventPublisher for commands that run without subscribers (CLI, migrations)."""

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        return None

"""Database outages: a lost connection is a retryable SERVICE_UNAVAILABLE, not a bug.

The engine's `handle_error` hook turns a refused, dropped or closed connection into the
domain's `ServiceUnavailable` at its source, so every caller (GraphQL, the webhook, the
sweeper) sees one stable error. Conflicts (40001, 40P01) and constraint violations are left
alone: the unit of work retries the first, use cases map the second.

`OutageLog` keeps the log readable while the database is away: one warning when the outage
starts and one line when it ends, instead of a traceback per request (each request still
gets its own access-log line).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine

from ordergraph.domain.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# admin_shutdown (a fast stop, pg_terminate_backend), crash_shutdown, cannot_connect_now
# (starting up or shutting down). Class 08 is "connection exception".
SHUTDOWN_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
# A connection that sat this long in the pool is pinged before use (see `_ping_if_idle`).
IDLE_PING_SECONDS = 5.0


def is_connection_failure(error: BaseException) -> bool:
    """True for a refused, dropped or closed connection to PostgreSQL.

    psycopg raises OperationalError or InterfaceError without a SQLSTATE when the client
    never had or lost the socket; the server says goodbye with class 08 or 57P0x. Everything
    else with a SQLSTATE (serialization failures are OperationalErrors too) is not an outage.
    """
    original = getattr(error, "orig", None) or error  # a SQLAlchemy wrapper, or the driver's
    if not isinstance(original, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    sqlstate = original.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in SHUTDOWN_SQLSTATES


class OutageLog:
    """Whether the database is away, logged once per outage (not once per request)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started_at: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.started_at is not None

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.started_at is None:
            self.started_at = self._clock()
            log.warning("database unavailable (%s); answering SERVICE_UNAVAILABLE until it "
                        "is back", _first_line(error))

    def reconnected(self) -> None:
        if self.started_at is None:
            return
        log.info("database is back after %.1f s; %d database calls failed meanwhile",
                 self._clock() - self.started_at, self.failures)
        self.started_at, self.failures = None, 0


def watch_outages(engine: AsyncEngine, outages: OutageLog | None = None) -> OutageLog:
    """Install the hooks on a PostgreSQL engine; returns the outage state it updates."""
    outages = outages or OutageLog()
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "handle_error")
    def _translate(context: ExceptionContext) -> None:
        if not is_connection_failure(context.original_exception):
            return
        # The driver may not have noticed yet (a FATAL from a server shutting down): make
        # SQLAlchemy drop this connection and every other one opened before now.
        context.is_disconnect = True
        if context.is_pre_ping:
            return  # the pool handles a failed ping by reconnecting; do not interfere
        outages.failed(context.original_exception)
        raise ServiceUnavailable() from context.sqlalchemy_exception

    @event.listens_for(sync_engine, "connect")
    def _connected(_dbapi_connection: Any, _record: Any) -> None:
        outages.reconnected()

    _ping_if_idle(engine)
    return outages


def _ping_if_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only if it sat idle for a while.

    Pre-ping on every checkout costs a round trip per transaction (README: performance), and
    under load SQLAlchemy already drops the whole pool at the first disconnect. What that
    leaves is a database restarted while this process was quiet: its idle connections are
    all dead, and without a ping the first request after it would fail. Busy connections
    are reused within milliseconds and are never pinged.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("checked_in_at", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            alive = sync_engine.dialect.do_ping(dbapi_connection)
            # The ping opened a transaction; the pool hands out connections outside one
            # (reads switch them to autocommit, which psycopg refuses mid-transaction).
            dbapi_connection.rollback()
        except Exception as error:
            alive = False
            log.debug("an idle pooled connection failed its ping: %s", _first_line(error))
        if not alive:
            # One idle connection is dead: so is every one opened before it. The pool drops
            # them all and reconnects this one (the error, if that fails too).
            raise InvalidatePoolError()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

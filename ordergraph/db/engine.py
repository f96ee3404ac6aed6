"""Engine factory: PostgreSQL (psycopg) in production, SQLite (aiosqlite) as the default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ordergraph.db.outage import watch_outages

ISOLATION_LEVELS = {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"}
CONNECT_TIMEOUT_SECONDS = 5
# SQLite waits this long for the write lock before giving up (and we retry).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, isolation_level: str = "READ COMMITTED", pool_size: int = 10,
                  echo: bool = False) -> AsyncEngine:
    """An async engine for `url`. On PostgreSQL, every transaction runs at `isolation_level`."""
    if is_sqlite(url):
        return _sqlite_engine(url, echo=echo)
    if isolation_level not in ISOLATION_LEVELS:
        raise ValueError(f"unknown isolation level {isolation_level!r}")
    engine = create_async_engine(
        url, echo=echo, isolation_level=isolation_level, pool_size=pool_size,
        max_overflow=pool_size, pool_timeout=30,
        # No pre-ping: it costs a round trip per checkout. A connection that died (a database
        # restart) fails once as SERVICE_UNAVAILABLE, SQLAlchemy then drops the whole pool;
        # connections idle for a while are pinged (db/outage.py).
        pool_recycle=3600,
        connect_args=_connect_timeout(url),
    )
    # Several rows of one table (a cart's lines, audit rows, stock movements) go as one
    # INSERT ... VALUES (...), (...) statement, not as psycopg's pipeline of one statement
    # per row: one statement to send and one result to parse (bench/RESULTS.md, issue 12).
    # A dialect attribute, not an engine argument; psycopg2's dialect sets it too.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    watch_outages(engine)
    return engine


def _connect_timeout(url: str) -> dict[str, Any]:
    """Give up connecting after CONNECT_TIMEOUT_SECONDS (unless the URL says otherwise):
    libpq waits forever on a server that accepts no connections (stalled, or behind a
    network partition), and every request would hang instead of answering
    SERVICE_UNAVAILABLE."""
    if "connect_timeout" in make_url(url).query:
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def _sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    """SQLite, made safe for concurrent writers (see STACK-NOTES.md).

    pysqlite's own transaction handling opens transactions lazily and loses updates under
    concurrency; we take the database's write lock at BEGIN (BEGIN IMMEDIATE) instead, so
    read-modify-write transactions serialise exactly like FOR UPDATE on PostgreSQL. Read-only
    connections (execution option `read_only`) begin DEFERRED and run alongside (WAL).
    """
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # stop pysqlite's own BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine

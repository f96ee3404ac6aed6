"""What every benchmark shares: the bench database, child processes, statistics, tables."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SQL = BENCH / "sql"

SERVER_URL = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "ordergraph_bench_"
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"
HOT_PRODUCT = 1  # every hot-product cart buys this one
CATALOG_SIZE = 1000  # uniform carts pick from products 1..1000
SELLOUT_PRODUCT = 1001  # the product the sell-out (oversell) runs fight over
USERS = 10_000
ADMIN_ID = USERS + 1
PLENTY = 100_000_000  # stock for throughput runs: never runs out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- the bench database -----------------------------------------------------------------


def dsn_for(database: str) -> str:
    return SERVER_URL.rsplit("/", 1)[0] + "/" + database


def sqlalchemy_url(database: str) -> str:
    return dsn_for(database).replace("postgresql://", "postgresql+psycopg://", 1)


def create_database(name: str | None = None) -> str:
    name = name or f"{DB_PREFIX}{uuid.uuid4().hex[:8]}"
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"bench databases are named {DB_PREFIX}*")
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    if not name.startswith(DB_PREFIX):  # never anybody else's
        raise ValueError(f"refusing to drop {name!r}")
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_exists(name: str) -> bool:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def execute(database: str, sql: str, params: Sequence[Any] | None = None) -> None:
    with psycopg.connect(dsn_for(database), autocommit=True) as conn:
        conn.execute(sql, params)  # type: ignore[arg-type]


def query(database: str, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn_for(database), autocommit=True) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]


def migrate(database: str) -> None:
    """As production would: `python -m ordergraph.cli migrate`."""
    completed = subprocess.run([sys.executable, "-m", "ordergraph.cli", "migrate"],
                               env={**os.environ, "DATABASE_URL": sqlalchemy_url(database)},
                               capture_output=True, text=True, cwd=ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"migrate failed: {completed.stderr[-2000:]}")


def seed(database: str) -> dict[str, int]:
    """Fill the tables to a realistic size (bench/sql/seed.sql), then ANALYZE them."""
    started = time.perf_counter()
    with psycopg.connect(dsn_for(database), autocommit=True) as conn:
        conn.execute((SQL / "seed.sql").read_text())  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE")
        sizes = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                 for table in ("users", "products", "orders", "order_items", "audit_log",
                               "stock_movements")}
    log(f"seeded {database} in {time.perf_counter() - started:.1f} s: {sizes}")
    return sizes


def reset_stock(database: str, available: int = PLENTY, *,
                sellout: int | None = None) -> None:
    """Every product back to `available` (the sell-out product to `sellout`), vacuumed."""
    with psycopg.connect(dsn_for(database), autocommit=True) as conn:
        conn.execute("UPDATE inventory SET available = %s, reserved = 0, updated_at = now() "
                     "WHERE product_id <> %s", (available, SELLOUT_PRODUCT))
        conn.execute("UPDATE inventory SET available = %s, reserved = 0, updated_at = now() "
                     "WHERE product_id = %s", (sellout if sellout is not None else available,
                                               SELLOUT_PRODUCT))
        conn.execute("VACUUM ANALYZE inventory")


def high_water(database: str) -> dict[str, int]:
    """The last ids, so a run's own rows can be told from the seed and earlier runs."""
    row = query(database, "SELECT (SELECT coalesce(max(id), 0) FROM orders), "
                          "(SELECT coalesce(max(id), 0) FROM stock_movements)")[0]
    return {"order_id": int(row[0]), "movement_id": int(row[1])}


def stock_audit(database: str, since: dict[str, int], initial: int,
                products: Sequence[int] | None = None) -> dict[str, int]:
    """Oversell check for one run, from the database itself.

    For each product touched: units in the run's live orders (not CANCELLED/FAILED) must not
    exceed the stock the run started with (sold <= stock), the stock must account for every
    one of them (initial - available == units held: no lost update), `available >= 0`, and
    the stock ledger must agree with the levels.
    """
    rows = query(database, """
        WITH sold AS (
            SELECT i.product_id, sum(i.quantity) AS units
            FROM order_items i JOIN orders o ON o.id = i.order_id
            WHERE o.id > %s AND o.status NOT IN ('CANCELLED', 'FAILED')
            GROUP BY i.product_id),
        ledger AS (
            SELECT product_id, sum(delta_available) AS d_available
            FROM stock_movements WHERE id > %s GROUP BY product_id)
        SELECT s.product_id, s.units, inv.available, inv.reserved,
               coalesce(l.d_available, 0)
        FROM sold s JOIN inventory inv ON inv.product_id = s.product_id
        LEFT JOIN ledger l ON l.product_id = s.product_id
        """, (since["order_id"], since["movement_id"]))
    result = {"products": 0, "units_sold": 0, "oversold_units": 0, "lost_updates": 0,
              "negative_available": 0, "ledger_mismatches": 0}
    for product_id, units, available, _reserved, d_available in rows:
        if products is not None and product_id not in products:
            continue
        units = int(units)
        result["products"] += 1
        result["units_sold"] += units
        result["oversold_units"] += max(0, units - initial)
        result["lost_updates"] += max(0, units - (initial - available))
        result["negative_available"] += int(available < 0)
        result["ledger_mismatches"] += int(initial + int(d_available) != available)
    result["oversell"] = result["oversold_units"] + result["lost_updates"] + \
        result["negative_available"]
    return result


def mint_tokens(user_ids: Sequence[int], secret: str = JWT_SECRET) -> dict[int, str]:
    """Access tokens for the seeded users, made beforehand (as if they had logged in)."""
    from datetime import timedelta

    from ordergraph.adapters.clock import SystemClock
    from ordergraph.adapters.tokens import JwtTokenIssuer

    issuer = JwtTokenIssuer(secret, lifetime=timedelta(hours=6), clock=SystemClock())
    return {user_id: issuer.issue(user_id).token for user_id in user_ids}


# ---- child processes ----------------------------------------------------------------------


def stock_change_spacing(subscribers: int) -> float:
    """Seconds between the stock changes of a fan-out point with `subscribers` watching (all
    in one process at worst): longer than the live hub holds a product's changes back for
    them (adapters/live_fanout.py: 0.25 s, or 0.5 ms per watcher with a crowd, at most
    2 s), so every change goes out on its own and its commit-to-receipt latency is
    measurable."""
    from ordergraph.adapters.live_fanout import stock_hold_seconds

    return max(0.3, stock_hold_seconds(subscribers) + 0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM the process group we started (never anyone else's), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- statistics and output -----------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-fraction * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(latencies_ms)
    return {"p50_ms": _round(percentile(ordered, 0.50)),
            "p95_ms": _round(percentile(ordered, 0.95)),
            "p99_ms": _round(percentile(ordered, 0.99)),
            "max_ms": _round(ordered[-1] if ordered else None)}


def median(values: Sequence[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *values: Any) -> None:
        self.rows.append(list(values))

    def render(self) -> str:
        cells = [[_cell(v) for v in row] for row in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells])
                  for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))
        out = [f"## {self.title}", line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(v.rjust(w) if i else v.ljust(w)
                          for i, (v, w) in enumerate(zip(row, widths, strict=True)))
                for row in cells]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"| {' | '.join(self.columns)} |", f"|{'---|' * len(self.columns)}"]
        out += [f"| {' | '.join(_cell(v) for v in row)} |" for row in self.rows]
        return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def code_fingerprint() -> str:
    """A digest of the app's sources as they are on disk now (the working tree may be
    changing under a long run; the servers import whatever is there when they start)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((ROOT / "ordergraph").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


@contextlib.contextmanager
def bench_database(keep: str | None = None) -> Iterator[str]:
    """A migrated, seeded, analysed database of our own, dropped afterwards.

    With `keep` (a name under ordergraph_bench_*), reuse that database if it is already
    seeded and leave it in place (faster iterations; drop it yourself).
    """
    if keep and database_exists(keep):
        log(f"reusing {keep}")
        yield keep
        return
    name = create_database(keep)
    try:
        migrate(name)
        seed(name)
        yield name
    finally:
        if not keep:
            drop_database(name)

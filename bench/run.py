"""The standard benchmark set: `python -m bench.run` (what `make bench` runs).

Creates a bench database (ordergraph_bench_*), migrates it as production would, seeds it to a
realistic size and ANALYZEs it, runs the suites side by side, prints the tables, writes
bench/results/bench-<date>.json, and drops the database. See bench/README.md.

    python -m bench.run                         # everything, once (< 5 minutes)
    python -m bench.run pgbench raw app         # some suites only
    python -m bench.run --repeat 3              # every point 3 times, medians reported
    python -m bench.run --keep-db ordergraph_bench_dev   # reuse/keep a seeded database
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from bench import catalog, checkout, fanout, pgbench, scale
from bench.common import (
    ROOT,
    Table,
    bench_database,
    code_fingerprint,
    log,
    median,
    write_results,
)
from bench.harness import app_env, app_server, bare_server, localstripe, run_json

SUITES = ("pgbench", "raw", "app", "stripe", "isolation", "oversell", "catalog", "fanout",
          "flashsale", "scale")
CARTS = ("hot", "uniform")


class Results:
    """Every measurement, by point; repeated points keep every run (medians reported)."""

    def __init__(self) -> None:
        self.points: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)

    def add(self, key: tuple[Any, ...], result: dict[str, Any]) -> None:
        self.points[key].append(result)

    def get(self, key: tuple[Any, ...], *path: str) -> float | None:
        values = []
        for run in self.points.get(key, []):
            value: Any = run
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                values.append(float(value))
        return median(values)

    def spread(self, key: tuple[Any, ...], *path: str) -> str:
        """min-max of a repeated measurement, as a percentage of its median."""
        values = []
        for run in self.points.get(key, []):
            value: Any = run
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                values.append(float(value))
        middle = median(values)
        if len(values) < 2 or not middle:
            return "-"
        return f"±{(max(values) - min(values)) / 2 / middle * 100:.0f}%"


def _step(name: str) -> Callable[..., Any]:
    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            log(f"- {name}")
            try:
                return function(*args, **kwargs)
            finally:
                log(f"  {name}: {time.monotonic() - started:.0f} s")
        return run
    return wrap


@_step("pgbench: the database's ceiling")
def run_pgbench(db: str, results: Results, opts: argparse.Namespace) -> None:
    for cart in CARTS:
        for clients in opts.clients:
            results.add(("pgbench", "lock_first", "READ COMMITTED", cart, clients),
                        pgbench.pgbench(db, cart=cart, clients=clients,
                                        duration=opts.duration))
    if opts.variants:
        for cart in CARTS:
            results.add(("pgbench", "update_last", "READ COMMITTED", cart, 32),
                        pgbench.pgbench(db, script="update_last", cart=cart, clients=32,
                                        duration=opts.duration))


@_step("raw psycopg: the driver's ceiling")
def run_raw(db: str, results: Results, opts: argparse.Namespace) -> None:
    def raw(variant: str, cart: str, clients: int) -> dict[str, Any]:
        return run_json([sys.executable, "-m", "bench.raw", "--database", db, "--cart", cart,
                         "--clients", str(clients), "--duration", str(opts.duration),
                         "--warmup", str(opts.warmup), "--variant", variant])

    for cart in CARTS:
        for clients in opts.clients:
            results.add(("raw", "app", cart, clients), raw("app", cart, clients))
        # Transaction 1 alone, lock first: the ceiling issue 12's table was measured against.
        results.add(("raw", "lock_first", cart, 32), raw("lock_first", cart, 32))
    if opts.variants:
        for cart in CARTS:
            results.add(("raw", "update_last", cart, 32), raw("update_last", cart, 32))


def _checkouts(server: Any, db: str, tokens: Any, results: Results, opts: argparse.Namespace,
               label: tuple[str, ...], clients: list[int]) -> None:
    for cart in CARTS:
        for count in clients:
            results.add((*label, cart, count), checkout.checkout_point(
                server, db, tokens, cart=cart, clients=count, duration=opts.duration,
                warmup=opts.warmup))


@_step("app: checkout over HTTP, null gateway, READ COMMITTED (+ catalog, oversell)")
def run_app(db: str, results: Results, opts: argparse.Namespace, suites: set[str]) -> None:
    tokens = checkout.tokens_file()
    with app_server(app_env(db), name="app-rc") as server:
        if "app" in suites:
            _checkouts(server, db, tokens, results, opts, ("app", "null", "READ COMMITTED"),
                       opts.clients)
        if "catalog" in suites:
            results.add(("catalog",), catalog.catalog_point(
                server, tokens, clients=32, duration=opts.duration, warmup=opts.warmup))
            results.add(("catalog", "repeat"), catalog.repeat_visit(server))
        if "oversell" in suites:
            results.add(("oversell", "app", "READ COMMITTED"),
                        checkout.sellout_point(server, db, tokens, naive=False))
            results.add(("oversell", "naive", "READ COMMITTED"),
                        checkout.sellout_point(server, db, tokens, naive=True))


@_step("catalog: the bare Starlette ceiling, and the app without its response cache")
def run_catalog_ceilings(db: str, results: Results, opts: argparse.Namespace) -> None:
    tokens = checkout.tokens_file()
    with bare_server(db) as bare:
        results.add(("catalog", "bare"), catalog.ceiling_point(
            bare, tokens, clients=32, duration=opts.duration, warmup=opts.warmup))
    with app_server(app_env(db, BENCH_RESPONSE_CACHE="off"), name="app-nocache") as server:
        results.add(("catalog", "uncached"), catalog.catalog_point(
            server, tokens, clients=32, duration=opts.duration, warmup=opts.warmup))


@_step("app: checkout with the localstripe emulator as the gateway")
def run_stripe(db: str, results: Results, opts: argparse.Namespace) -> None:
    tokens = checkout.tokens_file()
    with localstripe() as api_base, \
            app_server(app_env(db, BENCH_GATEWAY="stripe", STRIPE_API_BASE=api_base),
                       name="app-localstripe") as server:
        _checkouts(server, db, tokens, results, opts, ("app", "localstripe", "READ COMMITTED"),
                   [c for c in opts.clients if c > 1])


@_step("isolation: SERIALIZABLE side by side (app and pgbench)")
def run_isolation(db: str, results: Results, opts: argparse.Namespace,
                  suites: set[str]) -> None:
    tokens = checkout.tokens_file()
    contended = [c for c in opts.clients if c > 1]
    with app_server(app_env(db, DATABASE_ISOLATION_LEVEL="SERIALIZABLE"),
                    name="app-serializable") as server:
        _checkouts(server, db, tokens, results, opts, ("app", "null", "SERIALIZABLE"),
                   contended)
        if "oversell" in suites:
            results.add(("oversell", "app", "SERIALIZABLE"),
                        checkout.sellout_point(server, db, tokens, naive=False))
    for cart in CARTS:
        for clients in contended:
            results.add(("pgbench", "lock_first", "SERIALIZABLE", cart, clients),
                        pgbench.pgbench(db, cart=cart, clients=clients,
                                        duration=opts.duration, isolation="SERIALIZABLE"))


@_step("fan-out: one change to 1/100/1,000 WebSocket subscribers, and the bare ceiling")
def run_fanout(db: str, results: Results, opts: argparse.Namespace) -> None:
    for count in opts.subscribers:
        results.add(("fanout", count), fanout.fanout_point(db, count))
        results.add(("fanout-bare", count), fanout.bare_point(db, count))


@_step("flash sale: hot-product checkouts while 0/100/1,000 clients watch its stock")
def run_flashsale(db: str, results: Results, opts: argparse.Namespace) -> None:
    tokens = checkout.tokens_file()
    for watchers in (0, *[n for n in opts.subscribers if n > 1]):
        results.add(("flashsale", watchers), fanout.flashsale_point(
            db, tokens, watchers, duration=opts.duration, warmup=opts.warmup))


@_step("scale-out: 1 process, --workers 2, 2 instances on one (throwaway) Redis")
def run_scale(db: str, results: Results, opts: argparse.Namespace) -> None:
    tokens = checkout.tokens_file()
    subscribers = max(opts.subscribers)
    with scale.redis_server() as (redis_url, redis_pid):
        for kind in scale.DEPLOYMENTS:
            with scale.deployment(db, kind, redis_url, redis_pid) as found:
                for cart in CARTS:
                    results.add(("scale", kind, "checkout", cart), scale.checkout_point(
                        found, db, tokens, cart=cart, duration=opts.duration,
                        warmup=opts.warmup))
                results.add(("scale", kind, "fanout"),
                            scale.fanout_point(found, db, subscribers))


# ---- reporting ------------------------------------------------------------------------------


def _pct(part: float | None, whole: float | None) -> str | None:
    if part is None or not whole:
        return None
    return f"{part / whole * 100:.0f}%"


def tables(results: Results, opts: argparse.Namespace) -> list[Table]:
    out = []
    r = results
    throughput = Table("Checkout throughput (per second; medians) and the app's share of the "
                       "ceilings", ["cart", "clients", "pgbench", "raw psycopg",
                                    "raw tx1 only", "app (null gw)", "app/pgbench",
                                    "app/raw", "app/raw tx1", "app+localstripe",
                                    "noise (app)"])
    latency = Table("Checkout latency (ms) at READ COMMITTED, null gateway; retries; oversell",
                    ["cart", "clients", "pgbench p99", "raw p99", "app p50", "app p95",
                     "app p99", "retries/checkout", "server CPU ms/checkout", "oversell"])
    for cart in CARTS:
        for clients in opts.clients:
            pg = r.get(("pgbench", "lock_first", "READ COMMITTED", cart, clients), "throughput")
            raw = r.get(("raw", "app", cart, clients), "throughput")
            tx1 = r.get(("raw", "lock_first", cart, clients), "throughput")
            app_key = ("app", "null", "READ COMMITTED", cart, clients)
            app = r.get(app_key, "throughput")
            stripe = r.get(("app", "localstripe", "READ COMMITTED", cart, clients),
                           "throughput")
            throughput.add(cart, clients, pg, raw, tx1, app, _pct(app, pg), _pct(app, raw),
                           _pct(app, tx1), stripe, r.spread(app_key, "throughput"))
            latency.add(cart, clients,
                        r.get(("pgbench", "lock_first", "READ COMMITTED", cart, clients),
                              "latency", "p99_ms"),
                        r.get(("raw", "app", cart, clients), "latency", "p99_ms"),
                        r.get(app_key, "latency", "p50_ms"), r.get(app_key, "latency", "p95_ms"),
                        r.get(app_key, "latency", "p99_ms"),
                        r.get(app_key, "retries_per_checkout"),
                        r.get(app_key, "server_cpu_ms_per_checkout"),
                        r.get(app_key, "oversell", "oversell"))
    out += [throughput, latency]
    if any(k[0] == "pgbench" and k[1] == "update_last" for k in r.points):
        variant = Table("Lock-last variant at 32 clients (inserts first, conditional UPDATE "
                        "last)", ["cart", "pgbench lock-first", "pgbench update-last",
                                  "raw lock-first", "raw update-last"])
        for cart in CARTS:
            variant.add(cart, r.get(("pgbench", "lock_first", "READ COMMITTED", cart, 32),
                                    "throughput"),
                        r.get(("pgbench", "update_last", "READ COMMITTED", cart, 32),
                              "throughput"),
                        r.get(("raw", "lock_first", cart, 32), "throughput"),
                        r.get(("raw", "update_last", cart, 32), "throughput"))
        out.append(variant)
    isolation = Table("Isolation: READ COMMITTED + row locks vs SERIALIZABLE (null gateway)",
                      ["cart", "clients", "RC app/s", "RC p99", "SER app/s", "SER p99",
                       "SER retries/checkout", "SER failed", "pgbench SER/s",
                       "pgbench SER failed"])
    for cart in CARTS:
        for clients in [c for c in opts.clients if c > 1]:
            ser = ("app", "null", "SERIALIZABLE", cart, clients)
            if ser not in r.points:
                continue
            rc = ("app", "null", "READ COMMITTED", cart, clients)
            pg = ("pgbench", "lock_first", "SERIALIZABLE", cart, clients)
            runs = r.points[ser]
            failed = median([sum(v for k, v in run["outcomes"].items()
                                 if k != "CheckoutPayload") / max(1, sum(
                                     run["outcomes"].values())) * 100 for run in runs])
            pg_runs = r.points.get(pg, [])
            pg_failed = median([run["failed"] / max(1, run["failed"] + run["transactions"])
                                * 100 for run in pg_runs])
            isolation.add(cart, clients, r.get(rc, "throughput"),
                          r.get(rc, "latency", "p99_ms"), r.get(ser, "throughput"),
                          r.get(ser, "latency", "p99_ms"), r.get(ser, "retries_per_checkout"),
                          None if failed is None else f"{failed:.1f}%",
                          r.get(pg, "throughput"),
                          None if pg_failed is None else f"{pg_failed:.1f}%")
    if isolation.rows:
        out.append(isolation)
    oversell = Table("Oversell: 32 buyers race for 200 units of one product (3 s)",
                     ["checkout", "isolation", "units sold", "stock", "oversold units",
                      "lost updates", "ledger mismatches", "verdict"])
    for who, level in (("app", "READ COMMITTED"), ("app", "SERIALIZABLE"),
                       ("naive", "READ COMMITTED")):
        key = ("oversell", who, level)
        if key not in r.points:
            continue
        bad = r.get(key, "oversell", "oversell") or 0
        oversell.add("app (FOR UPDATE)" if who == "app" else "naive read-then-write control",
                     level, r.get(key, "oversell", "units_sold"), r.get(key, "stock"),
                     r.get(key, "oversell", "oversold_units"),
                     r.get(key, "oversell", "lost_updates"),
                     r.get(key, "oversell", "ledger_mismatches"),
                     ("OVERSOLD (expected)" if who == "naive" else "OVERSOLD") if bad
                     else ("no oversell (control FAILED to oversell)" if who == "naive"
                           else "exact"))
    if oversell.rows:
        out.append(oversell)
    fan = Table("Live fan-out: stockUpdated to N subscribers (commit -> socket read, ms)",
                ["subscribers", "delivered", "p50", "p99", "bare ws p99", "p99 / bare",
                 "first event p99", "KiB/subscriber", "KiB/connection",
                 "SQL per stock fan-out", "SQL per order fan-out", "order fan-out p99"])
    for count in opts.subscribers:
        key = ("fanout", count)
        if key not in r.points:
            continue
        delivered = r.get(key, "stock", "delivered_pct")
        p99, bare99 = r.get(key, "stock", "p99_ms"), r.get(("fanout-bare", count), "stock",
                                                           "p99_ms")
        fan.add(count, None if delivered is None else f"{delivered:.1f}%",
                r.get(key, "stock", "p50_ms"), p99, bare99,
                f"{p99 / bare99:.1f}x" if p99 and bare99 else None,
                r.get(key, "stock", "first_event", "p99_ms"),
                r.get(key, "kib_per_subscriber"), r.get(key, "kib_per_connection"),
                r.get(key, "statements_per_stock_fanout"),
                r.get(key, "statements_per_order_fanout"), r.get(key, "order", "p99_ms"))
    if fan.rows:
        out.append(fan)
    flash = Table("Flash sale: hot-product checkouts (8 clients) while N clients watch its "
                  "stock live", ["watchers", "checkouts/s", "p50", "p99", "vs no watchers",
                                 "stock events delivered", "deliveries", "subscriber errors",
                                 "server CPU ms/checkout", "GC stops > 50 ms",
                                 "longest GC stop (ms, at most)"])
    alone = r.get(("flashsale", 0), "throughput")
    for watchers in (0, *opts.subscribers):
        key = ("flashsale", watchers)
        if key not in r.points:
            continue
        tput = r.get(key, "throughput")
        flash.add(watchers, tput, r.get(key, "latency", "p50_ms"),
                  r.get(key, "latency", "p99_ms"), _pct(tput, alone),
                  r.get(key, "stock_events_received"), r.get(key, "deliveries"),
                  r.get(key, "subscriber_errors"), r.get(key, "server_cpu_ms_per_checkout"),
                  r.get(key, "gc_pauses", "over_50ms"),
                  r.get(key, "gc_pauses", "longest_ms_at_most"))
    if flash.rows:
        out.append(flash)
    if ("catalog",) in r.points:
        cat = Table("Catalog page (20 products with stock, anonymous, 32 clients)",
                    ["server", "req/s", "vs bare", "p50", "p99", "SQL statements/request",
                     "server CPU ms/request", "noise"])
        bare = r.get(("catalog", "bare"), "throughput")
        for label, key in (("app (response cache)", ("catalog",)),
                           ("app, no response cache", ("catalog", "uncached")),
                           ("bare Starlette + psycopg (ceiling)", ("catalog", "bare"))):
            if key not in r.points:
                continue
            tput = r.get(key, "throughput")
            cat.add(label, tput, _pct(tput, bare), r.get(key, "latency", "p50_ms"),
                    r.get(key, "latency", "p99_ms"), r.get(key, "statements_per_request"),
                    r.get(key, "server_cpu_ms_per_request"), r.spread(key, "throughput"))
        out.append(cat)
    out += scale_tables(results)
    out.append(targets(results))
    out.append(targets_12(results))
    return out


def _per_process(r: Results, key: tuple[Any, ...], *path: str) -> str | None:
    """A {pid: value} measurement as 'a + b' (largest first; medians by rank over runs)."""
    ranked: list[list[float]] = []
    for run in r.points.get(key, []):
        value: Any = run
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict):
            ranked.append(sorted((float(v) for v in value.values()), reverse=True))
    if not ranked:
        return None
    width = max(len(values) for values in ranked)
    medians = [median([values[i] for values in ranked if len(values) > i]) or 0.0
               for i in range(width)]
    return " + ".join(f"{m:g}" for m in medians)


def _lost(r: Results, key: tuple[Any, ...]) -> float | None:
    totals = [sum(run["lost"].values()) for run in r.points.get(key, [])]
    return max(totals) if totals else None


def scale_tables(r: Results) -> list[Table]:
    if not any(k[0] == "scale" for k in r.points):
        return []
    checkouts = Table("Scale-out: checkouts, 32 clients split over the processes (null "
                      "gateway, one Redis); CPU in cores", [
                          "deployment", "cart", "checkouts/s", "p99", "vs 1 process",
                          "app CPU per process", "app CPU ms/checkout", "PostgreSQL",
                          "load generator", "machine busy", "other work", "iowait",
                          "clients per process",
                          "oversell", "lost", "errors", "noise"])
    for cart in CARTS:
        alone = r.get(("scale", "1 process", "checkout", cart), "throughput")
        for kind in scale.DEPLOYMENTS:
            key = ("scale", kind, "checkout", cart)
            if key not in r.points:
                continue
            tput = r.get(key, "throughput")
            checkouts.add(kind, cart, tput, r.get(key, "latency", "p99_ms"),
                          f"{tput / alone:.2f}x" if tput and alone else None,
                          _per_process(r, key, "usage", "cpu_cores_per_process"),
                          r.get(key, "server_cpu_ms_per_checkout"),
                          r.get(key, "usage", "cpu_cores_postgres"),
                          r.get(key, "loadgen_cores"),
                          r.get(key, "usage", "machine_busy_cores"),
                          r.get(key, "other_cores"),
                          r.get(key, "usage", "machine_iowait_cores"),
                          _per_process(r, key, "connections_per_process"),
                          r.get(key, "oversell", "oversell"), _lost(r, key),
                          r.get(key, "errors"), r.spread(key, "throughput"))
    fan = Table("Scale-out: one stock change to N subscribers spread over the processes "
                "(published through the first; commit -> socket read, ms)", [
                    "deployment", "subscribers", "delivered", "per subscriber process",
                    "p50", "p99", "deliveries/s", "per process", "published / heard",
                    "errors", "app CPU per process", "subscribers per process"])
    for kind in scale.DEPLOYMENTS:
        key = ("scale", kind, "fanout")
        if key not in r.points:
            continue
        runs = r.points[key]
        processes = 1 if kind == "1 process" else 2
        rate = r.get(key, "deliveries_per_s")
        delivered = r.get(key, "delivered_pct")
        crowds = [median([run["delivered_pct_per_crowd"][i] or 0.0 for run in runs]) or 0.0
                  for i in range(2)]
        fan.add(kind, r.get(key, "subscribers"),
                None if delivered is None else f"{delivered:.1f}%",
                " / ".join(f"{c:.1f}%" for c in crowds), r.get(key, "p50_ms"),
                r.get(key, "p99_ms"), rate, None if rate is None else rate / processes,
                f"{r.get(key, 'events_published'):.0f} / "
                f"{r.get(key, 'events_received_unpublished'):.0f} unpublished",
                r.get(key, "subscriber_errors"),
                _per_process(r, key, "usage", "cpu_cores_per_process"),
                _per_process(r, key, "connections_per_process"))
    return [checkouts, fan]


def targets_12(r: Results) -> Table:
    table = Table("Targets (issue 12)", ["target", "measured", "goal", "verdict"])

    def check(name: str, shown: str | None, goal: str, ok: bool | None) -> None:
        table.add(name, shown, goal, "-" if ok is None else ("met" if ok else "MISSED"))

    alone, crowd = r.get(("flashsale", 0), "throughput"), r.get(("flashsale", 1000),
                                                                "throughput")
    share = crowd / alone * 100 if crowd and alone else None
    check("1. flash sale: checkouts with 1,000 watchers vs none", None if share is None else
          f"{share:.0f}% ({crowd:.0f} of {alone:.0f}/s)", ">= 80%",
          None if share is None else share >= 80)
    p0, p1 = r.get(("flashsale", 0), "latency", "p99_ms"), r.get(("flashsale", 1000),
                                                                "latency", "p99_ms")
    check("1. flash sale: p99 with 1,000 watchers vs none", None if not (p0 and p1) else
          f"{p1 / p0:.1f}x ({p1:.0f} vs {p0:.0f} ms)", "<= 2x",
          None if not (p0 and p1) else p1 <= 2 * p0)
    events = r.get(("flashsale", 1000), "stock_events_received")
    deliveries = r.get(("flashsale", 1000), "deliveries")
    errors = r.get(("flashsale", 1000), "subscriber_errors")
    check("1. flash sale: every watcher got every (coalesced) change, 0 errors",
          None if events is None else f"{deliveries:.0f} = {events:.0f} x 1,000, "
          f"{errors:.0f} errors", "all, 0",
          None if events is None else deliveries == events * 1000 and errors == 0)
    for cart, goal in (("uniform", 50), ("hot", 60)):
        app = r.get(("app", "null", "READ COMMITTED", cart, 32), "throughput")
        for ceiling, label in (("app", "raw psycopg, the whole checkout"),
                               ("lock_first", "raw psycopg, transaction 1 only")):
            raw = r.get(("raw", ceiling, cart, 32), "throughput")
            check(f"2. checkout, 32 clients, {cart}: app vs {label}",
                  None if not (app and raw) else f"{app / raw * 100:.0f}% ({app:.0f} of "
                  f"{raw:.0f}/s)", f">= {goal}%",
                  None if not (app and raw) else app * 100 >= raw * goal)
    a99 = r.get(("app", "null", "READ COMMITTED", "hot", 32), "latency", "p99_ms")
    r99 = r.get(("raw", "app", "hot", 32), "latency", "p99_ms")
    check("2. checkout, 32 clients, hot: app p99 vs raw p99", None if not (a99 and r99) else
          f"{a99 / r99:.1f}x ({a99:.0f} vs {r99:.0f} ms)", "<= 2x",
          None if not (a99 and r99) else a99 <= 2 * r99)
    cat, bare = r.get(("catalog",), "throughput"), r.get(("catalog", "bare"), "throughput")
    check("3. catalog page vs bare Starlette (same SQL, same JSON)",
          None if not (cat and bare) else f"{cat / bare * 100:.0f}% ({cat:.0f} of "
          f"{bare:.0f}/s)", ">= 50%", None if not (cat and bare) else cat >= bare / 2)
    repeat = r.get(("catalog", "repeat"), "repeat_status")
    check("3. catalog repeat visit with its ETag", None if repeat is None else
          f"{repeat:.0f}", "304", None if repeat is None else repeat == 304)
    f99, b99 = r.get(("fanout", 1000), "stock", "p99_ms"), r.get(("fanout-bare", 1000),
                                                                 "stock", "p99_ms")
    check("4. fan-out to 1,000: p99 vs bare WebSocket broadcast", None if not (f99 and b99)
          else f"{f99 / b99:.1f}x ({f99:.0f} vs {b99:.0f} ms)", "<= 2x",
          None if not (f99 and b99) else f99 <= 2 * b99)
    kib = r.get(("fanout", 1000), "kib_per_subscriber")
    check("4. KiB per idle subscription", None if kib is None else f"{kib:.1f}", "<= 64",
          None if kib is None else kib <= 64)
    delivered = r.get(("fanout", 1000), "stock", "delivered_pct")
    check("4. fan-out to 1,000: delivered", None if delivered is None else
          f"{delivered:.1f}%", "100%", None if delivered is None else delivered == 100)
    for cart in CARTS:
        one = r.get(("scale", "1 process", "checkout", cart), "throughput")
        gains = [f"{kind} {tput / one:.2f}x" for kind in scale.DEPLOYMENTS[1:]
                 if one and (tput := r.get(("scale", kind, "checkout", cart), "throughput"))]
        check(f"5. scale-out: {cart} checkouts, 2 processes vs 1", ", ".join(gains) or None,
              "measured", None)
    scale_keys = [k for k in r.points if k[0] == "scale"]
    if scale_keys:
        lost = sum(_lost(r, k) or 0 for k in scale_keys if k[2] == "checkout")
        oversold = sum(r.get(k, "oversell", "oversell") or 0 for k in scale_keys
                       if k[2] == "checkout")
        fanned = [r.get(k, "delivered_pct") for k in scale_keys if k[2] == "fanout"]
        check("5. scale-out: nothing lost (orders = answers, 0 oversell, every delivery)",
              f"{lost:.0f} lost, {oversold:.0f} oversold, delivered "
              + "/".join(f"{d:.1f}%" for d in fanned if d is not None), "0, 0, 100%",
              lost == 0 and oversold == 0 and all(d == 100 for d in fanned))
    return table


def targets(r: Results) -> Table:
    table = Table("Targets (issue 7)", ["target", "measured", "goal", "verdict"])

    def check(name: str, value: float | None, goal: str, ok: bool | None,
              shown: str | None = None) -> None:
        verdict = "-" if ok is None else ("met" if ok else "MISSED")
        table.add(name, shown if shown is not None else value, goal, verdict)

    raw = r.get(("raw", "app", "uniform", 32), "throughput")
    app = r.get(("app", "null", "READ COMMITTED", "uniform", 32), "throughput")
    share = app / raw * 100 if app and raw else None
    check("checkout, 32 clients, 1,000 products: share of raw ceiling", share, ">= 50%",
          None if share is None else share >= 50,
          None if share is None else f"{share:.0f}%")
    hot = r.get(("app", "null", "READ COMMITTED", "hot", 32), "throughput")
    check("checkout, 32 clients, hot product: checkouts/s", hot, ">= 400",
          None if hot is None else hot >= 400)
    hot99 = r.get(("app", "null", "READ COMMITTED", "hot", 32), "latency", "p99_ms")
    check("checkout, 32 clients, hot product: p99 ms", hot99, "<= 100",
          None if hot99 is None else hot99 <= 100)
    u99 = r.get(("app", "null", "READ COMMITTED", "uniform", 8), "latency", "p99_ms")
    check("checkout, 8 clients, 1,000 products: p99 ms", u99, "<= 30",
          None if u99 is None else u99 <= 30)
    app_oversell = [r.get(k, "oversell", "oversell") for k in r.points
                    if k[0] in ("app", "oversell") and k[1] != "naive"]
    known = [v for v in app_oversell if v is not None]
    check("oversell in every app run", sum(known) if known else None, "0",
          None if not known else sum(known) == 0)
    naive = r.get(("oversell", "naive", "READ COMMITTED"), "oversell", "oversell")
    check("naive control oversells (the check can fail)", naive, "> 0",
          None if naive is None else naive > 0)
    cat = r.get(("catalog",), "throughput")
    check("catalog page req/s (limits on)", cat, ">= 1,200", None if cat is None else cat >= 1200)
    f99 = r.get(("fanout", 1000), "stock", "p99_ms")
    check("fan-out to 1,000: p99 ms", f99, "<= 100", None if f99 is None else f99 <= 100)
    first = r.get(("fanout", 1000), "stock", "first_event", "delivered")
    delivered = r.get(("fanout", 1000), "stock", "delivered_pct")
    check("fan-out to 1,000: delivered (first event right after 1,000 subscribes)", delivered,
          "100%", None if delivered is None else delivered == 100 and first == 1000,
          None if delivered is None else f"{delivered:.1f}% (first: {first:.0f})")
    kib = r.get(("fanout", 1000), "kib_per_subscriber")
    check("KiB per idle subscription (connection + subscription)", kib, "<= 64",
          None if kib is None else kib <= 64)
    return table


def machine() -> dict[str, Any]:
    def output(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=10).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version
    packages = {name: version(name) for name in (
        "strawberry-graphql", "graphql-core", "starlette", "uvicorn", "sqlalchemy", "psycopg",
        "websockets", "broadcaster", "stripe", "localstripe", "uvloop", "httptools")}
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
            "cpus": output(["nproc"]), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "postgres": output(["psql", "--version"]),
            "pgbench": output(["pgbench", "--version"]),
            "load_average_at_start": output(["cat", "/proc/loadavg"]),
            "git": output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
            "ordergraph_changes": output(["git", "-C", str(ROOT), "status", "--porcelain",
                                          "--", "ordergraph"]).splitlines(),
            "ordergraph_fingerprint": code_fingerprint(),
            "packages": packages}


@contextlib.contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run",
                                     description="ordergraph's standard benchmark set")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every point N times, interleaved; report medians")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--clients", default="1,8,32", help="concurrencies (default 1,8,32)")
    parser.add_argument("--subscribers", default="1,100,1000")
    parser.add_argument("--no-variants", dest="variants", action="store_false",
                        help="skip the lock-last variant (pgbench and raw at 32 clients)")
    parser.add_argument("--keep-db", metavar="NAME",
                        help="reuse this ordergraph_bench_* database if present; keep it")
    opts = parser.parse_args(argv)
    unknown = set(opts.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    opts.clients = [int(c) for c in opts.clients.split(",")]
    opts.subscribers = [int(c) for c in opts.subscribers.split(",")]
    suites = set(opts.suites or SUITES)
    results = Results()
    info = machine()
    with _timer() as elapsed, bench_database(opts.keep_db) as db:
        for repetition in range(opts.repeat):
            if opts.repeat > 1:
                log(f"== repetition {repetition + 1} of {opts.repeat}")
            if "pgbench" in suites:
                run_pgbench(db, results, opts)
            if "raw" in suites:
                run_raw(db, results, opts)
            if suites & {"app", "catalog", "oversell"}:
                run_app(db, results, opts, suites)
            if "catalog" in suites:
                run_catalog_ceilings(db, results, opts)
            if "stripe" in suites:
                run_stripe(db, results, opts)
            if "isolation" in suites:
                run_isolation(db, results, opts, suites)
            if "fanout" in suites:
                run_fanout(db, results, opts)
            if "flashsale" in suites:
                run_flashsale(db, results, opts)
            if "scale" in suites:
                run_scale(db, results, opts)
        seconds = elapsed()
    changed = code_fingerprint() != info["ordergraph_fingerprint"]
    info["ordergraph_changed_during_run"] = changed
    rendered = tables(results, opts)
    print(f"\nordergraph benchmarks, {info['date']}, {info['cpus']} CPUs ({info['cpu']}), "
          f"{info['postgres']}, Python {info['python']}; {opts.repeat} repetition(s), "
          f"{opts.duration:g} s per point; {seconds:.0f} s in all\n")
    print(f"code: {info['git']}" + (f" + {len(info['ordergraph_changes'])} uncommitted "
                                     "change(s) in ordergraph/" if info["ordergraph_changes"]
                                     else "") + f", sources {info['ordergraph_fingerprint']}")
    if changed:
        print("WARNING: ordergraph/ changed during the run; servers started at different "
              "times measured different code. Run again (or from a clean worktree).")
    print()
    for table in rendered:
        print(table.render(), end="\n\n")
    path = write_results("bench", {
        "machine": info, "options": {k: v for k, v in vars(opts).items()},
        "seconds": round(seconds, 1),
        "points": [{"key": list(key), "runs": runs} for key, runs in results.points.items()],
        "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in rendered],
    })
    print(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

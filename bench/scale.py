"""Scale-out: one process, `--workers 2` and two instances on one Redis, side by side.

Issue 12, target 5. On one bench database and a throwaway `redis-server` of our own (a free
loopback port, so nobody else's Redis is touched), each deployment serves the app with
BROADCAST_URL=redis://... (bench/server.py, the uvicorn options of `ordergraph serve`):

- `1 process`: one uvicorn process, as `ordergraph serve`;
- `--workers 2`: one port, two uvicorn worker processes (`ordergraph serve --workers 2`);
- `2 instances`: two processes on two ports, the load split evenly across them.

For each, checkouts (32 clients, hot and uniform carts, null gateway, as the `app` suite)
and a fan-out (N subscribers spread over two subscriber processes, one per instance where
there are two; one stock change at a time published through the first address, so half the
crowd hears it only across Redis). What is measured: checkouts/s and p99, CPU per process
(and of the whole machine, PostgreSQL, Redis), the client connections each serving process
held, oversell audited from the database, orders and stock movements recorded against the
responses received, and events published against deliveries received.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    ADMIN_ID,
    HOT_PRODUCT,
    PLENTY,
    free_port,
    high_water,
    latency_summary,
    mint_tokens,
    query,
    reset_stock,
    stock_audit,
    stock_change_spacing,
    stop_process,
)
from bench.fanout import ADJUST, STOCK_UPDATED, WATCHER, Subscribers
from bench.harness import AppServer, app_env, app_server, run_json
from bench.loadgen import CATALOG

DEPLOYMENTS = ("1 process", "--workers 2", "2 instances")
CLIENTS = 32


# ---- a Redis of our own ---------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on a free loopback port (no persistence); its URL and pid."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("the scale suite needs redis-server on the PATH")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        stop_process(process)


def _redis_answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# ---- what /proc says ------------------------------------------------------------------------


def _stat(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.find("(") + 1:text.rfind(")")]
    return [name, *text.rsplit(")", 1)[1].split()]


def _cpu(fields: list[str]) -> float:
    return (int(fields[12]) + int(fields[13])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(groups: list[int], names: tuple[str, ...] = ("postgres",)
                   ) -> dict[str, dict[int, float]]:
    """CPU seconds so far: of every process in our servers' process groups (by group), and of
    every process named in `names` (PostgreSQL's backends: the whole machine's)."""
    out: dict[str, dict[int, float]] = {str(g): {} for g in groups}
    out.update({name: {} for name in names})
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields is None:
            continue
        group = int(fields[3])  # name, state, ppid, pgrp
        if group in groups:
            out[str(group)][int(entry.name)] = _cpu(fields)
        elif fields[0] in names:
            out[fields[0]][int(entry.name)] = _cpu(fields)
    return out


def machine_busy() -> tuple[float, float, float]:
    """(busy, iowait, total) jiffies of all CPUs since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = values[3], values[4]
    return float(sum(values[:8]) - idle - iowait), float(iowait), float(sum(values[:8]))


def client_connections(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections to `port` that each process holds (its accepted sockets)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                    inodes.add(parts[9])
    counts = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = str(fd.readlink())
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        count += 1
        counts[pid] = count
    return counts


def _children(parent: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (_stat(entry.name) or ["", "", ""])[2] == str(parent)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# ---- a deployment ---------------------------------------------------------------------------


@dataclass
class Deployment:
    kind: str
    servers: list[AppServer]
    stamps: Path
    redis_pid: int

    @property
    def addresses(self) -> list[str]:
        return [server.address for server in self.servers]

    def processes(self, server: AppServer) -> list[int]:
        """The processes of one server that serve requests: the server itself, or with
        `--workers` its uvicorn workers (the supervisor only watches them)."""
        if self.kind != "--workers 2":
            return [server.pid]
        return sorted(pid for pid in _children(server.pid)
                      if b"spawn_main" in _cmdline(pid))  # not multiprocessing's helpers

    def serving_pids(self) -> list[int]:
        return [pid for server in self.servers for pid in self.processes(server)]

    def connections(self) -> dict[int, int]:
        """Client connections held by each serving process, right now."""
        out: dict[int, int] = {}
        for server in self.servers:
            port = int(server.address.rsplit(":", 1)[1])
            out.update(client_connections(self.processes(server), port))
        return out

    def published(self) -> dict[str, float]:
        """When each event was first published, by whichever process published it."""
        stamps: dict[str, float] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.stamps.read_text().splitlines():
                event_id, _, at = line.partition(" ")
                if event_id and at:
                    stamps[event_id] = min(float(at), stamps.get(event_id, float("inf")))
        return stamps


@contextlib.contextmanager
def deployment(database: str, kind: str, redis_url: str, redis_pid: int,
               **env: str) -> Iterator[Deployment]:
    stamps = Path(tempfile.mkstemp(prefix="ordergraph-scale-stamps-")[1])
    environment = app_env(database, BROADCAST_URL=redis_url, BENCH_STAMPS=str(stamps), **env)
    try:
        with contextlib.ExitStack() as stack:
            if kind == "1 process":
                servers = [stack.enter_context(app_server(environment, name="scale-1"))]
            elif kind == "--workers 2":
                servers = [stack.enter_context(app_server(environment, name="scale-workers",
                                                          args=("--workers", "2")))]
            else:
                servers = [stack.enter_context(app_server(environment, name=f"scale-{n}"))
                           for n in ("a", "b")]
            found = Deployment(kind, servers, stamps, redis_pid)
            _wait_for_workers(found)
            yield found
    finally:
        stamps.unlink(missing_ok=True)


def _wait_for_workers(found: Deployment, timeout: float = 60) -> None:
    """`/readyz` answers once one worker is up: wait for every worker's own lifespan (each
    logs uvicorn's "Application startup complete." when it has started accepting)."""
    if found.kind != "--workers 2":
        return
    deadline = time.monotonic() + timeout
    for server in found.servers:
        while server.log_path.read_text(errors="replace").count(
                "Application startup complete.") < 2 or len(found.processes(server)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.1)


class Usage:
    """CPU of every process involved, and of the machine, between two readings."""

    def __init__(self, found: Deployment) -> None:
        self.found = found
        self.groups = [server.pid for server in found.servers] + [found.redis_pid]
        self.before = cpu_by_process(self.groups)
        self.busy_before = machine_busy()
        self.started = time.monotonic()

    def stop(self) -> dict[str, Any]:
        after = cpu_by_process(self.groups)
        busy, iowait, total = machine_busy()
        elapsed = time.monotonic() - self.started
        jiffies = max(1.0, total - self.busy_before[2]) / (os.cpu_count() or 1)

        def delta(key: str, pid: int) -> float:
            return after[key].get(pid, 0.0) - self.before[key].get(pid, 0.0)

        serving = self.found.serving_pids()
        per_process = {}
        for server in self.found.servers:
            for pid in after[str(server.pid)]:
                if pid in serving:
                    per_process[pid] = round(delta(str(server.pid), pid) / elapsed, 2)
        others = sum(delta(str(s.pid), pid) for s in self.found.servers
                     for pid in after[str(s.pid)] if pid not in serving)
        return {"seconds": round(elapsed, 2),
                "cpu_cores_per_process": per_process,
                "cpu_cores_app": round(sum(per_process.values()), 2),
                "cpu_cores_supervisor": round(others / elapsed, 2),
                "cpu_cores_postgres": round(sum(delta("postgres", pid)
                                                for pid in after["postgres"]) / elapsed, 2),
                "cpu_cores_redis": round(delta(str(self.found.redis_pid),
                                               self.found.redis_pid) / elapsed, 2),
                "machine_busy_cores": round((busy - self.busy_before[0]) / jiffies, 2),
                # Cores idle while waiting for the disk (commits' WAL flushes, checkpoints).
                "machine_iowait_cores": round((iowait - self.busy_before[1]) / jiffies, 2)}


# ---- checkouts ------------------------------------------------------------------------------


def _load(found: Deployment, tokens: Path, *, cart: str, duration: float,
          warmup: float) -> dict[str, Any]:
    spec = {"address": found.addresses[0], "addresses": found.addresses,
            "scenario": "checkout", "cart": cart, "clients": CLIENTS, "duration": duration,
            "warmup": warmup, "tokens_file": str(tokens), "seed": 1}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="loadgen-",
                                     delete=False) as spec_file:
        json.dump(spec, spec_file)
    try:
        return run_json([sys.executable, "-m", "bench.loadgen", spec_file.name],
                        timeout=duration + warmup + 120)
    finally:
        Path(spec_file.name).unlink(missing_ok=True)


def _in_background(function: Callable[[], dict[str, Any]]
                   ) -> tuple[Callable[[], dict[str, Any]], Callable[[], bool]]:
    """Run `function` in a thread; (join: its result, done: whether it finished)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = function()
        except Exception as error:  # handed to the caller on join
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> dict[str, Any]:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]
    return join, lambda: not thread.is_alive()


def recorded(database: str, since: dict[str, int]) -> dict[str, int]:
    """What the database holds of one point: orders, their lines and units, stock movements."""
    orders, lines, units, movements, reserved_units = query(database, """
        SELECT (SELECT count(*) FROM orders WHERE id > %(o)s),
               (SELECT count(*) FROM order_items WHERE order_id > %(o)s),
               (SELECT coalesce(sum(quantity), 0) FROM order_items WHERE order_id > %(o)s),
               (SELECT count(*) FROM stock_movements WHERE id > %(m)s),
               (SELECT coalesce(-sum(delta_available), 0) FROM stock_movements
                WHERE id > %(m)s)""", {"o": since["order_id"], "m": since["movement_id"]})[0]
    return {"orders": int(orders), "order_lines": int(lines), "units": int(units),
            "stock_movements": int(movements), "units_moved": int(reserved_units)}


def checkout_point(found: Deployment, database: str, tokens: Path, *, cart: str,
                   duration: float, warmup: float) -> dict[str, Any]:
    """32 clients split evenly over the deployment's addresses; audited afterwards."""
    reset_stock(database)
    since = high_water(database)
    usage = Usage(found)
    join, done = _in_background(lambda: _load(found, tokens, cart=cart, duration=duration,
                                              warmup=warmup))
    connections: dict[int, int] = {}
    while not done():  # which process holds which client, at the most connected moment
        now = found.connections()
        if sum(now.values()) > sum(connections.values()):
            connections = now
        time.sleep(0.25)
    result = join()
    result["usage"] = usage.stop()
    result["connections_per_process"] = connections
    db = recorded(database, since)
    answered = result["all_outcomes"].get("CheckoutPayload", 0)
    responses = sum(result["all_outcomes"].values())
    app_cpu = result["usage"]["cpu_cores_app"] * result["usage"]["seconds"]
    result.update({
        "cart": cart, "deployment": found.kind, "recorded": db,
        # Every response of the run, warm-up included, against all the app's CPU meanwhile.
        "server_cpu_ms_per_checkout": round(app_cpu / responses * 1000, 2) if responses
        else None,
        "loadgen_cores": round(result["loadgen_cpu_s"] / result["usage"]["seconds"], 2),
        # The machine's busy cores beyond everything of this point: other people's work.
        "other_cores": round(result["usage"]["machine_busy_cores"] - sum(
            result["usage"][k] for k in ("cpu_cores_app", "cpu_cores_supervisor",
                                         "cpu_cores_postgres", "cpu_cores_redis"))
            - result["loadgen_cpu_s"] / result["usage"]["seconds"], 2),
        "responses": responses, "orders_answered": answered,
        # An order without its answer, or an answer without its order: lost either way.
        "lost": {"orders_without_response": max(0, db["orders"] - answered),
                 "responses_without_order": max(0, answered - db["orders"]),
                 "units_not_moved": abs(db["units"] - db["units_moved"])},
        # Answered, but not with an order (e.g. SERVICE_UNAVAILABLE): not lost, but failed.
        "errors": responses - answered,
        "oversell": stock_audit(database, since, PLENTY),
    })
    return result


# ---- fan-out --------------------------------------------------------------------------------


def fanout_point(found: Deployment, database: str, subscribers: int, *, events: int = 15,
                 interval: float | None = None) -> dict[str, Any]:
    """`subscribers` over two subscriber processes (one per instance with two instances), one
    stock change at a time through the first address (spaced for one process holding them
    all: stock_change_spacing); every subscriber must get each one."""
    interval = stock_change_spacing(subscribers) if interval is None else interval
    reset_stock(database)
    tokens = mint_tokens([ADMIN_ID, WATCHER])
    admin, watcher = tokens[ADMIN_ID], tokens[WATCHER]
    first = found.servers[0]
    for server in found.servers:
        for _ in range(5):  # warm each instance (both workers get some of it, not all)
            server.graphql(CATALOG)
            server.graphql(ADJUST, {"productId": str(HOT_PRODUCT), "delta": 1}, admin)
    targets = [found.servers[n % len(found.servers)].address for n in range(2)]
    crowds = [Subscribers(address, deflate=True) for address in targets]
    try:
        shares = [subscribers // 2, subscribers - subscribers // 2]
        for crowd, share in zip(crowds, shares, strict=True):
            crowd.ask(f"CONNECT {share} {watcher}")
        for crowd in crowds:
            crowd.ask("SUBSCRIBE " + json.dumps({
                "query": STOCK_UPDATED, "variables": {"productIds": [str(HOT_PRODUCT)]}}))
        connections = found.connections()
        already = set(found.published())
        usage = Usage(found)
        for _ in range(events):
            first.graphql(ADJUST, {"productId": str(HOT_PRODUCT), "delta": 1}, admin)
            time.sleep(interval)
        time.sleep(max(1.0, subscribers / 500))
        cpu = usage.stop()
        reports = [crowd.ask("REPORT") for crowd in crowds]
    finally:
        for crowd in crowds:
            crowd.close()
    published = {k: v for k, v in found.published().items() if k not in already}
    return {"deployment": found.kind, "subscribers": subscribers,
            "connections_per_process": connections, "usage": cpu,
            **fanout_summary(published, reports, shares)}


def fanout_summary(published: dict[str, float], reports: list[dict[str, Any]],
                   shares: list[int]) -> dict[str, Any]:
    """Deliveries against what was published: per subscriber process and in all, latency from
    the publish stamp, and how fast each change drained to the whole crowd."""
    subscribers = sum(shares)
    latencies: list[float] = []
    drain_rates: list[float] = []
    per_crowd = [0 for _ in reports]
    for event_id, stamp in published.items():
        last = stamp
        delivered = 0
        for n, report in enumerate(reports):
            times = report["events"].get(event_id, [])
            per_crowd[n] += len(times)
            delivered += len(times)
            latencies += [(t - stamp) * 1000 for t in times]
            last = max([last, *times])
        if delivered and last > stamp:
            drain_rates.append(delivered / (last - stamp))
    heard = set().union(*(report["events"] for report in reports))
    expected = subscribers * len(published)
    received = sum(per_crowd)
    drain_rates.sort()
    return {
        "events_published": len(published),
        "events_received_unpublished": len(heard - set(published)),
        "deliveries_expected": expected, "deliveries_received": received,
        "delivered_pct": round(100 * received / expected, 2) if expected else None,
        "delivered_pct_per_crowd": [round(100 * got / (share * len(published)), 2)
                                    if published and share else None
                                    for got, share in zip(per_crowd, shares, strict=True)],
        "subscriber_errors": sum(report["error_count"] for report in reports),
        **latency_summary(latencies),
        # One change, its deliveries over the time until the last one arrived (median).
        "deliveries_per_s": round(drain_rates[len(drain_rates) // 2]) if drain_rates else None,
    }

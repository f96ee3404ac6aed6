"""Live fan-out: one change delivered to N WebSocket subscribers (1, 100, 1,000).

For each N, a fresh app (so its memory can be read) and a subscriber process
(bench/fanout_client.py): N graphql-transport-ws connections, each subscribing at once to the
web client's stockUpdated(productIds: [hot]) document. Then an admin changes that product's
stock a few times (adjustStock, one event per change, the first one right after the N
simultaneous subscribes). Latency is from the app publishing the event (right after its
commit; the bench server stamps it) to the subscriber's socket read, both on CLOCK_MONOTONIC.
Then every connection also subscribes to one order (orderUpdated with items' products and the
customer) and the order is cancelled: the SQL statements that fan-out costs, beyond what the
same cancellation costs with nobody listening, must stay constant (shared dataloaders).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.checkout import load
from bench.common import (
    ADMIN_ID,
    HOT_PRODUCT,
    ROOT,
    latency_summary,
    log,
    mint_tokens,
    reset_stock,
    rss_kib,
    stock_change_spacing,
    stop_process,
)
from bench.harness import AppServer, app_env, app_server, bare_server
from bench.loadgen import CATALOG, CHECKOUT
from ordergraph.adapters.metrics import GC_PAUSE_BUCKETS

# What the web client sends (ordergraph/web/static/js/queries.js: STOCK_UPDATED).
STOCK_UPDATED = """
subscription StockUpdated($productIds: [ID!]) {
  stockUpdated(productIds: $productIds) {
    eventId type at
    stock { productId available reserved updatedAt }
  }
}"""
ORDER_UPDATED = """
subscription OrderUpdated($id: ID!) {
  orderUpdated(id: $id) {
    eventId type
    order { id status version items { quantity product { sku name } } customer { email } }
  }
}"""
ADJUST = """
mutation Adjust($productId: ID!, $delta: Int!) {
  adjustStock(productId: $productId, delta: $delta, reason: "bench") {
    __typename ... on StockPayload { stock { available } }
  }
}"""
CANCEL = "mutation Cancel($id: ID!) { cancelOrder(id: $id) { __typename } }"
WATCHER = 4242  # the customer whose order everybody watches (and whose token they use)


class Subscribers:
    """The subscriber process, driven line by line."""

    def __init__(self, address: str, deflate: bool) -> None:
        command = [sys.executable, "-m", "bench.fanout_client", address]
        if not deflate:
            command.append("--no-deflate")
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, start_new_session=True)

    def ask(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline() or b"{}")
        if "error" in answer:
            raise RuntimeError(f"subscribers: {answer}")
        return answer

    def close(self) -> None:
        try:
            if self.process.poll() is None and self.process.stdin is not None:
                self.process.stdin.write(b"QUIT\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        stop_process(self.process)


def _latencies(receipts: dict[str, list[float]], published: dict[str, float],
               event_ids: list[str], subscribers: int) -> dict[str, Any]:
    all_ms: list[float] = []
    per_event = []
    for event_id in event_ids:
        stamp = published.get(event_id)
        times = receipts.get(event_id, [])
        if stamp is None:
            continue
        ms = [(t - stamp) * 1000 for t in times]
        all_ms += ms
        per_event.append({"delivered": len(times), **latency_summary(ms)})
    delivered = sum(e["delivered"] for e in per_event)
    expected = subscribers * len(per_event)
    return {"events": len(per_event), "delivered_pct": round(100 * delivered / expected, 2)
            if expected else None, **latency_summary(all_ms),
            "first_event": per_event[0] if per_event else None,
            "worst_event_p99_ms": max((e["p99_ms"] or 0) for e in per_event)
            if per_event else None}


def _warm_up(server: AppServer, admin: str) -> None:
    for _ in range(5):
        server.graphql(CATALOG)
        server.graphql(ADJUST, {"productId": str(HOT_PRODUCT), "delta": 1}, admin)


def fanout_point(database: str, subscribers: int, *, events: int = 15,
                 interval: float | None = None, deflate: bool = True,
                 profile: str | None = None) -> dict[str, Any]:
    # Changes apart by more than the hub holds them back (stock_change_spacing: 0.3 s, 0.55 s
    # for 1,000), so every change is delivered on its own and its latency is measurable.
    interval = stock_change_spacing(subscribers) if interval is None else interval
    reset_stock(database)
    tokens = mint_tokens([ADMIN_ID, WATCHER])
    admin, watcher = tokens[ADMIN_ID], tokens[WATCHER]
    with app_server(app_env(database, DATABASE_POOL_SIZE="20"),
                    name=f"fanout-{subscribers}", profile=profile) as server:
        _warm_up(server, admin)
        orders = []
        for n in range(2):
            result = server.graphql(CHECKOUT, {"input": {
                "items": [{"productId": str(2 + n), "quantity": 1}],
                "idempotencyKey": f"fanout-{subscribers}-{n}-{time.time()}"}}, watcher)
            orders.append(result["checkout"]["order"]["id"])
        watched, quiet = orders
        server.statements()  # start counting
        before = server.statements()
        server.graphql(ADJUST, {"productId": str(HOT_PRODUCT), "delta": 1}, admin)
        adjust_alone = server.statements() - before
        time.sleep(1.0)
        rss_start = rss_kib(server.pid)
        crowd = Subscribers(server.address, deflate)
        try:
            connected = crowd.ask(f"CONNECT {subscribers} {watcher}")
            time.sleep(1.0)
            rss_connected = rss_kib(server.pid)
            subscribed = crowd.ask("SUBSCRIBE " + json.dumps({
                "query": STOCK_UPDATED, "variables": {"productIds": [str(HOT_PRODUCT)]}}))
            rss_subscribed = rss_kib(server.pid)
            # The first change goes out right after the simultaneous subscribes.
            statements_before = server.statements()
            for _ in range(events):
                server.graphql(ADJUST, {"productId": str(HOT_PRODUCT), "delta": 1}, admin)
                time.sleep(interval)
            time.sleep(max(1.0, subscribers / 500))
            statements = server.statements() - statements_before
            stock = crowd.ask("REPORT")
            published = server.get_json("/_bench/published-all")
            stock_events = [event_id for event_id in published if event_id in stock["events"]]
            # Memory again once idle (the first reading can catch the first fan-out's garbage).
            time.sleep(0.5)
            rss_idle = rss_kib(server.pid)

            crowd.ask("SUBSCRIBE " + json.dumps({"query": ORDER_UPDATED,
                                                 "variables": {"id": watched}}))
            s0 = server.statements()
            server.graphql(CANCEL, {"id": quiet}, watcher)
            s1 = server.statements()
            server.graphql(CANCEL, {"id": watched}, watcher)
            time.sleep(max(1.0, subscribers / 500))
            s2 = server.statements()
            report = crowd.ask("REPORT")
            published = server.get_json("/_bench/published-all")
            order_events = [event_id for event_id in published
                            if event_id in report["events"] and event_id not in stock["events"]]
        finally:
            crowd.close()
    stock_latency = _latencies(stock["events"], published, stock_events, subscribers)
    order_latency = _latencies(report["events"], published, order_events, subscribers)
    per_subscriber = max(rss_subscribed, rss_idle) - rss_start
    return {
        "subscribers": subscribers, "deflate": deflate,
        "deflate_negotiated": connected["deflate"],
        "connect_s": connected["seconds"], "subscribe_s": subscribed["seconds"],
        "stock": stock_latency, "order": order_latency,
        "rss_start_kib": rss_start,
        "kib_per_connection": round((rss_connected - rss_start) / subscribers, 1),
        "kib_per_subscriber": round(per_subscriber / subscribers, 1),
        "statements_per_stock_fanout": round(statements / events - adjust_alone, 2),
        "statements_per_order_fanout": (s2 - s1) - (s1 - s0),
        "errors": report["errors"][:5], "error_count": report["error_count"],
    }


def bare_point(database: str, subscribers: int, *, events: int = 15,
               interval: float | None = None, deflate: bool = True) -> dict[str, Any]:
    """The fan-out ceiling: the same crowd (bench/fanout_client.py), the same bytes per
    change, written to each connection by a bare Starlette WebSocket endpoint under the same
    uvicorn options (bench/bare.py), with no GraphQL and none of the app; its changes as far
    apart as the app's."""
    interval = stock_change_spacing(subscribers) if interval is None else interval
    with bare_server(database) as server:
        crowd = Subscribers(server.address, deflate)
        try:
            connected = crowd.ask(f"CONNECT {subscribers} bare")
            crowd.ask("SUBSCRIBE " + json.dumps({"query": STOCK_UPDATED, "variables": {}}))
            for _ in range(events):
                server.post_json("/_bench/broadcast", {})
                time.sleep(interval)
            time.sleep(max(1.0, subscribers / 500))
            report = crowd.ask("REPORT")
            published = server.get_json("/_bench/published-all")
        finally:
            crowd.close()
    stock = _latencies(report["events"], published, list(published), subscribers)
    return {"subscribers": subscribers, "deflate_negotiated": connected["deflate"],
            "stock": stock, "error_count": report["error_count"]}


def flashsale_point(database: str, tokens: Path, watchers: int, *, clients: int = 8,
                    duration: float = 3.0, warmup: float = 1.0,
                    profile: str | None = None) -> dict[str, Any]:
    """A flash sale: hot-product checkouts while `watchers` clients watch its stock live.

    Every checkout changes the hot product's stock, so every checkout is also a fan-out to
    all watchers, on the same event loop as the checkouts.
    """
    reset_stock(database)
    admin = mint_tokens([ADMIN_ID])[ADMIN_ID]
    watcher = mint_tokens([WATCHER])[WATCHER]
    with app_server(app_env(database), name=f"flashsale-{watchers}",
                    profile=profile) as server:
        _warm_up(server, admin)
        crowd = Subscribers(server.address, deflate=True) if watchers else None
        try:
            if crowd is not None:
                crowd.ask(f"CONNECT {watchers} {watcher}")
                crowd.ask("SUBSCRIBE " + json.dumps({
                    "query": STOCK_UPDATED, "variables": {"productIds": [str(HOT_PRODUCT)]}}))
            collector_before = server.metrics()
            result = load(server, tokens, scenario="checkout", cart="hot", clients=clients,
                          duration=duration, warmup=warmup)
            collector_after = server.metrics()
            collector = gc_pauses(collector_before, collector_after)
            cpu = collector_after.get("process_cpu_seconds_total", 0.0) - \
                collector_before.get("process_cpu_seconds_total", 0.0)
            time.sleep(max(1.0, watchers / 500))
            report = crowd.ask("REPORT") if crowd is not None else {"events": {},
                                                                    "error_count": 0}
        finally:
            if crowd is not None:
                crowd.close()
    deliveries = sum(len(times) for times in report["events"].values())
    return {"watchers": watchers, "clients": clients, "throughput": result["throughput"],
            "latency": result["latency"], "outcomes": result["outcomes"],
            "stock_events_received": len(report["events"]), "deliveries": deliveries,
            "subscriber_errors": report["error_count"], "gc_pauses": collector,
            # The app's CPU per measured checkout, fan-out included: its CPU over warm-up and
            # load, the warm-up's share taken off as if it ran at the same rate.
            "server_cpu_ms_per_checkout": round(
                cpu * duration / (duration + warmup) * 1000 /
                max(1, sum(result["outcomes"].values())), 2)}


def gc_pauses(before: dict[str, float], after: dict[str, float]) -> dict[str, Any] | None:
    """The app's cyclic collections between two scrapes (ordergraph_gc_pause_seconds): how
    many stopped it for over 50 ms, the bucket the longest fell in, and their total time
    (None: an app without the metric)."""
    if not any(key.startswith("ordergraph_gc_pause_seconds") for key in after):
        return None

    def grown(series: str, **labels: str) -> float:
        def one(generation: int) -> str:
            text = ",".join([f'generation="{generation}"',
                             *(f'{k}="{v}"' for k, v in labels.items())])
            return f"ordergraph_gc_pause_seconds_{series}{{{text}}}"
        return sum(after.get(one(g), 0.0) - before.get(one(g), 0.0) for g in range(3))

    total = grown("count")
    if not total:
        return {"collections": 0, "over_50ms": 0, "longest_ms_at_most": None, "seconds": 0.0}
    # prometheus-client writes a bucket's bound as Go does: 1.0, 0.05, 0.0025.
    longest = next((bound for bound in GC_PAUSE_BUCKETS
                    if grown("bucket", le=str(float(bound))) >= total), None)
    return {"collections": int(total),
            "over_50ms": int(total - grown("bucket", le="0.05")),
            "longest_ms_at_most": None if longest is None else longest * 1000,
            "seconds": round(grown("sum"), 3)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="fan-out on an existing bench database")
    parser.add_argument("--database", required=True)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--no-deflate", action="store_true")
    args = parser.parse_args()
    for count in args.subscribers:
        log(json.dumps(fanout_point(args.database, count, deflate=not args.no_deflate)))


if __name__ == "__main__":
    main()

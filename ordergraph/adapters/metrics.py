"""Prometheus metrics (prometheus-client), served as text on GET /metrics.

One registry per process. With several uvicorn workers each worker reports its own numbers;
run one worker per container (and more containers) to scrape them all.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hmac
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from http.server import ThreadingHTTPServer
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    MetricsHandler,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ordergraph.domain.errors import IntentNotFound, PaymentFailed

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY = CollectorRegistry(auto_describe=True)
# process_* (CPU, memory, open files), python_gc_* and python_info, as prometheus-client's
# default registry has them (ours is our own, so they are added here).
ProcessCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRAPHQL_REQUESTS = Counter(
    "ordergraph_graphql_requests_total", "GraphQL operations by operation name (anonymous, "
    "invalid, or other past 200 names) and outcome: ok, or the first error's code.",
    ["operation", "outcome"], registry=REGISTRY)
GRAPHQL_LATENCY = Histogram(
    "ordergraph_graphql_request_duration_seconds",
    "GraphQL operation latency by operation name.", ["operation"], registry=REGISTRY,
    buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter(
    "ordergraph_http_requests_total", "HTTP requests by route and status.",
    ["route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "ordergraph_http_request_duration_seconds",
    "HTTP request latency by route (/graphql, /webhooks/stripe, /readyz, ..., static), "
    "until the response is sent.", ["route"], registry=REGISTRY, buckets=LATENCY_BUCKETS)
STRIPE_LATENCY = Histogram(
    "ordergraph_stripe_request_duration_seconds",
    "Time a payment gateway method takes, by method (create_intent, retrieve_intent, "
    "confirm_intent, cancel_intent, refund), failed ones too: every provider request it makes "
    "(confirm_intent makes two, refund looks for an existing refund first) and the SDK's "
    "retries included.", ["method"], registry=REGISTRY, buckets=LATENCY_BUCKETS)
STRIPE_ERRORS = Counter(
    "ordergraph_stripe_errors_total",
    "Payment provider calls that failed, by method and kind: declined (the card), not_found "
    "(an unknown intent), provider_error (the provider failed or did not answer), cancelled "
    "(the call was cancelled before it answered: our deadline ran out, or the task was "
    "stopped).", ["method", "kind"], registry=REGISTRY)
DB_POOL_IN_USE = Gauge(
    "ordergraph_db_pool_connections_in_use", "Database connections checked out of the pool.",
    registry=REGISTRY)
DB_POOL_SIZE = Gauge(
    "ordergraph_db_pool_size", "Connections the pool keeps (its size: DATABASE_POOL_SIZE for "
    "the server).", registry=REGISTRY)
DB_POOL_MAX = Gauge(
    "ordergraph_db_pool_max_connections", "Connections the pool may open at most (its size "
    "plus overflow); a request waits once all are in use.", registry=REGISTRY)
BUILD_INFO = Gauge(
    "ordergraph_build_info", "Always 1; the labels say which release runs.",
    ["version", "commit"], registry=REGISTRY)
CHECKOUTS = Counter(
    "ordergraph_checkouts_total", "Checkout mutations by a signed-in customer, by result: ok, "
    "or the error's code (INSUFFICIENT_STOCK, VALIDATION_FAILED, PAYMENT_PROVIDER_ERROR, ...).",
    ["result"], registry=REGISTRY)
RETRIES = Counter(
    "ordergraph_transaction_retries_total",
    "Transactions (units of work) that ended in a retryable conflict: a serialization failure, "
    "a deadlock, or a unique key a concurrent transaction took first; retrying() runs them "
    "again, up to its limit.", registry=REGISTRY)
WEBHOOKS = Counter(
    "ordergraph_webhook_events_total", "Stripe webhook deliveries by event type (the types "
    "we read; other for the rest and for a bad signature) and outcome: refused (bad "
    "signature), ignored, error, or what the settlement did (applied, duplicate, ...).",
    ["type", "outcome"], registry=REGISTRY)
SWEEPS = Counter(
    "ordergraph_sweeper_runs_total", "Sweeper passes by result: ok, or error (the pass "
    "failed, or some of its work did).", ["result"], registry=REGISTRY)
SWEPT = Counter(
    "ordergraph_sweeper_changes_total", "What the sweeper got done, by kind: orders expired, "
    "paid_at_expiry (paid after all) and abandoned (checkout never finished), and refunds "
    "(owed or stalled refunds that went through).", ["kind"], registry=REGISTRY)
SUBSCRIPTIONS = Gauge(
    "ordergraph_live_subscriptions", "Open GraphQL subscriptions in this process.",
    registry=REGISTRY)

LIVE_HUB_UP = Gauge(
    "ordergraph_live_hub_up", "1 while the live hub listens to the broadcast (Redis), 0 while "
    "it reconnects.", registry=REGISTRY)
LIVE_HUB_OUTAGES = Counter(
    "ordergraph_live_hub_outages_total", "Times the live hub lost its broadcast connection.",
    registry=REGISTRY)
LIVE_HUB_RECONNECTS = Counter(
    "ordergraph_live_hub_reconnects_total", "Times the live hub connected again after an "
    "outage.", registry=REGISTRY)
LIVE_PUBLISH_DROPPED = Counter(
    "ordergraph_live_publish_dropped_total", "Live events not published: the broadcast was "
    "down, the publish failed or timed out, or came just after one that did (subscribers are "
    "resynced instead).", registry=REGISTRY)
LIVE_RESYNCS = Counter(
    "ordergraph_live_resyncs_total", "Times this process told its live subscribers to re-read "
    "(after an outage of its own or another instance's).", registry=REGISTRY)
RATE_LIMIT_FALLBACKS = Counter(
    "ordergraph_rate_limit_fallbacks_total", "Throttling steps (attempt, uncount, reset) done "
    "in this process because Redis was unreachable.", ["step"], registry=REGISTRY)

GC_PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
GC_PAUSE = Histogram(
    "ordergraph_gc_pause_seconds", "How long each cyclic garbage collection stopped this "
    "process (and its event loop), by generation (2: a full collection).", ["generation"],
    registry=REGISTRY, buckets=GC_PAUSE_BUCKETS)

_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MAX_OPERATION_NAMES = 200
_operation_names: set[str] = set()


def operation_label(name: str | None) -> str:
    """Client-chosen names, bounded: label cardinality must not grow without limit."""
    if not name:
        return "anonymous"
    if not _OPERATION_NAME.match(name):
        return "invalid"
    if name not in _operation_names:
        if len(_operation_names) >= _MAX_OPERATION_NAMES:
            return "other"
        _operation_names.add(name)
    return name


class PrometheusMetrics:
    def __init__(self, *, webhook_types: Iterable[str] = ()) -> None:
        # The provider's event names we label by (wiring passes them); others are "other".
        self._webhook_types = frozenset(webhook_types)

    def checkout(self, outcome: str) -> None:
        CHECKOUTS.labels(outcome).inc()

    def transaction_retried(self) -> None:
        """A unit of work met a serialization failure or deadlock (it is run again)."""
        RETRIES.inc()

    def webhook(self, event_type: str, outcome: str) -> None:
        WEBHOOKS.labels(event_type if event_type in self._webhook_types else "other",
                        outcome).inc()

    def sweep(self, *, changed: dict[str, int], failed: bool) -> None:
        SWEEPS.labels("error" if failed else "ok").inc()
        for kind, count in changed.items():
            if count:
                SWEPT.labels(kind).inc(count)

    def graphql(self, operation: str | None, outcome: str, seconds: float) -> None:
        label = operation_label(operation)
        GRAPHQL_REQUESTS.labels(label, outcome).inc()
        GRAPHQL_LATENCY.labels(label).observe(seconds)

    def http(self, route: str, status: int, seconds: float | None = None) -> None:
        HTTP_REQUESTS.labels(route, str(status)).inc()
        if seconds is not None:
            HTTP_LATENCY.labels(route).observe(seconds)

    def watch_subscriptions(self, count: Callable[[], float]) -> None:
        SUBSCRIPTIONS.set_function(count)

    def watch_pool(self, pool: Any) -> None:
        """The engine's pool (a QueuePool): read at each scrape."""
        DB_POOL_IN_USE.set_function(lambda: float(_pool_number(pool, "checkedout")))
        DB_POOL_SIZE.set_function(lambda: float(_pool_number(pool, "size")))
        DB_POOL_MAX.set_function(lambda: float(_pool_number(pool, "size") +
                                               max(getattr(pool, "_max_overflow", 0), 0)))

    def build(self, *, version: str, commit: str) -> None:
        BUILD_INFO.clear()
        BUILD_INFO.labels(version, commit).set(1)


def _pool_number(pool: Any, name: str) -> int:
    method = getattr(pool, name, None)
    return int(method()) if callable(method) else 0


def stripe_call(method: str) -> Callable[[Callable[P, Awaitable[T]]],
                                         Callable[P, Awaitable[T]]]:
    """Time a gateway method and count its failures by kind."""

    def decorate(call: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(call)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            except (Exception, asyncio.CancelledError) as error:
                STRIPE_ERRORS.labels(method, _failure_kind(error)).inc()
                raise
            finally:
                STRIPE_LATENCY.labels(method).observe(time.perf_counter() - started)

        return timed

    return decorate


def _failure_kind(error: BaseException) -> str:
    if isinstance(error, IntentNotFound):
        return "not_found"
    if isinstance(error, PaymentFailed) and error.code == "PAYMENT_DECLINED":
        return "declined"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return "provider_error"


def watch_collector_pauses() -> None:
    """Time every cyclic collection of this process into GC_PAUSE (once per process)."""
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


_GC_PAUSE_BY_GENERATION = [GC_PAUSE.labels(generation=str(g)) for g in range(3)]
_collection_started = [0.0]


def _time_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collection_started[0] = time.perf_counter()
    elif _collection_started[0]:
        _GC_PAUSE_BY_GENERATION[info["generation"]].observe(
            time.perf_counter() - _collection_started[0])


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def authorized(header: str | None, token: str | None) -> bool:
    """No METRICS_TOKEN: anyone may scrape; otherwise `Authorization: Bearer <token>`."""
    if not token:
        return True
    return hmac.compare_digest((header or "").encode(), f"Bearer {token}".encode())


def serve_metrics(host: str, port: int, token: str | None) -> Callable[[], None]:
    """/metrics on a port of its own (METRICS_PORT), in a thread; returns what stops it."""
    base: type[MetricsHandler] = MetricsHandler.factory(REGISTRY)

    class Handler(base):  # type: ignore[valid-type,misc]
        def do_GET(self) -> None:
            if not authorized(self.headers.get("authorization"), token):
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Bearer")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not news (the access log skips /metrics too)."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop

"""Prometheus metrics (prometheus-client), served as text on GET /metrics.

One registry per process. With several uvicorn workers each worker reports its own numbers;
run one worker per container (and more containers) to scrape them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ordergraph.domain.services import transaction

REGISTRY = CollectorRegistry(auto_describe=True)

GRAPHQL_REQUESTS = Counter(
    "ordergraph_graphql_requests_total", "GraphQL operations by operation name and outcome.",
    ["operation", "outcome"], registry=REGISTRY)
GRAPHQL_LATENCY = Histogram(
    "ordergraph_graphql_request_seconds", "GraphQL operation latency by operation name.",
    ["operation"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
HTTP_REQUESTS = Counter(
    "ordergraph_http_requests_total", "HTTP requests by route and status.",
    ["route", "status"], registry=REGISTRY)
CHECKOUTS = Counter(
    "ordergraph_checkouts_total", "Checkouts by result type (CheckoutPayload, "
    "InsufficientStockError, ...).", ["result"], registry=REGISTRY)
RETRIES = Counter(
    "ordergraph_transaction_retries_total",
    "Units of work run again after a serialization failure or deadlock.", registry=REGISTRY)
WEBHOOKS = Counter(
    "ordergraph_webhook_events_total", "Stripe webhook events by type and outcome.",
    ["type", "outcome"], registry=REGISTRY)
SWEEPS = Counter(
    "ordergraph_sweeper_runs_total", "Sweeper passes by result.", ["result"],
    registry=REGISTRY)
SWEPT = Counter(
    "ordergraph_sweeper_changes_total", "Orders the sweeper changed, by kind.", ["kind"],
    registry=REGISTRY)
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
    "ordergraph_live_publish_dropped_total", "Live messages not published because the "
    "broadcast was down (subscribers are resynced instead).", registry=REGISTRY)
LIVE_RESYNCS = Counter(
    "ordergraph_live_resyncs_total", "Times this process told its live subscribers to re-read "
    "(after an outage of its own or another instance's).", registry=REGISTRY)
RATE_LIMIT_FALLBACKS = Counter(
    "ordergraph_rate_limit_fallbacks_total", "Throttling steps (attempt, uncount, reset) done "
    "in this process because Redis was unreachable.", ["step"], registry=REGISTRY)

transaction.retry_listeners.append(lambda attempt: RETRIES.inc())

_WEBHOOK_TYPES = {"payment_intent.succeeded", "payment_intent.payment_failed",
                  "payment_intent.canceled", "payment_intent.processing", "charge.refunded"}
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
    def checkout(self, outcome: str) -> None:
        CHECKOUTS.labels(outcome).inc()

    def webhook(self, event_type: str, outcome: str) -> None:
        WEBHOOKS.labels(event_type if event_type in _WEBHOOK_TYPES else "other", outcome).inc()

    def sweep(self, *, changed: dict[str, int], failed: bool) -> None:
        SWEEPS.labels("error" if failed else "ok").inc()
        for kind, count in changed.items():
            if count:
                SWEPT.labels(kind).inc(count)

    def graphql(self, operation: str | None, outcome: str, seconds: float) -> None:
        label = operation_label(operation)
        GRAPHQL_REQUESTS.labels(label, outcome).inc()
        GRAPHQL_LATENCY.labels(label).observe(seconds)

    def http(self, route: str, status: int) -> None:
        HTTP_REQUESTS.labels(route, str(status)).inc()

    def watch_subscriptions(self, count: Callable[[], float]) -> None:
        SUBSCRIPTIONS.set_function(count)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

"""Catalog reads: the web client's first catalog page (20 products with stock), anonymous,
from the load generator process; req/s, latency, and SQL statements per request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.checkout import load
from bench.common import cpu_seconds
from bench.harness import AppServer

REQUESTS = "ordergraph_graphql_requests_total"


def catalog_point(server: AppServer, tokens: Path, *, clients: int = 32, duration: float = 4,
                  warmup: float = 1) -> dict[str, Any]:
    server.statements()  # start counting
    before, statements_before = server.metrics(), server.statements()
    cpu_before, started = cpu_seconds(server.pid), time.monotonic()
    result = load(server, tokens, scenario="catalog", cart="hot", clients=clients,
                  duration=duration, warmup=warmup)
    cpu_after, elapsed = cpu_seconds(server.pid), time.monotonic() - started
    served = server.metrics().get(REQUESTS, 0) - before.get(REQUESTS, 0)
    statements = server.statements() - statements_before
    result.update({
        "statements_per_request": round(statements / served, 2) if served else None,
        "server_cpu_ms_per_request": round((cpu_after - cpu_before) / served * 1000, 2)
        if served else None,
        "server_cpu_share": round((cpu_after - cpu_before) / elapsed, 2),
    })
    return result

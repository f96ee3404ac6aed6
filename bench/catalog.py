"""Catalog reads: the web client's first catalog page (20 products with stock), anonymous,
from the load generator process; req/s, latency, and SQL statements per request."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.checkout import load
from bench.common import cpu_seconds
from bench.harness import AppServer
from bench.loadgen import CATALOG

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


def ceiling_point(server: AppServer, tokens: Path, *, clients: int = 32, duration: float = 4,
                  warmup: float = 1) -> dict[str, Any]:
    """The bare Starlette catalog (bench/bare.py) under the same load."""
    return load(server, tokens, scenario="catalog", cart="hot", clients=clients,
                duration=duration, warmup=warmup)


def repeat_visit(server: AppServer) -> dict[str, Any]:
    """The catalog over GET, then again with the ETag it came with: 304, no body."""
    url = f"http://{server.address}/graphql?" + urllib.parse.urlencode(
        {"query": CATALOG, "variables": json.dumps({}), "operationName": "Products"})
    with urllib.request.urlopen(url, timeout=10) as first:
        etag, cache_control = first.headers.get("etag"), first.headers.get("cache-control")
        first.read()
    request = urllib.request.Request(url, headers={"If-None-Match": etag or ""})
    try:
        with urllib.request.urlopen(request, timeout=10) as again:  # noqa: S310
            status, body = again.status, again.read()
    except urllib.error.HTTPError as error:  # urllib raises on 304
        status, body = error.code, error.read()
    return {"etag": etag, "cache_control": cache_control, "repeat_status": status,
            "repeat_bytes": len(body)}

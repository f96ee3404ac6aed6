"""The HTTP load generator: a process of its own, closed loop, one keep-alive connection per
client. `python -m bench.loadgen SPEC.json` prints one JSON result on stdout.

It speaks just enough HTTP/1.1 (fixed requests, Content-Length responses) to cost the shared
2 cores as little as possible: about 30 us per request against httpx's ~300.

SPEC: {"address": "127.0.0.1:PORT", "scenario": "checkout" | "naive" | "catalog",
       "cart": "hot" | "uniform" | "sellout", "clients": 32, "warmup": 1.0, "duration": 4.0,
       "tokens_file": "PATH" (a JSON object: user id -> access token), "seed": 1,
       "addresses": ["127.0.0.1:PORT", ...] (optional: client i connects to addresses[i % n],
       to split the load over several instances; default [address])}
Each client walks its own slice of the users, so no two requests in flight share a user.
Besides the measured window's numbers, the result counts every response received
(`all_outcomes`, warm-up and tail included) and the measured requests per address, so a
benchmark can hold the responses against what the database recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import CATALOG_SIZE, HOT_PRODUCT, SELLOUT_PRODUCT, latency_summary

# What the web client sends (ordergraph/web/static/js/queries.js: CHECKOUT).
CHECKOUT = """
mutation Checkout($input: CheckoutInput!) {
  checkout(input: $input) {
    __typename
    ... on CheckoutPayload { clientSecret order { id number status total { amount currency } } }
    ... on UserError { code message field }
    ... on InsufficientStockError { productId requested available }
    ... on PaymentError { declineCode }
  }
}"""

# The web client's catalog page (queries.js: PRODUCTS / PRODUCT_CARD), first page of 20.
CATALOG = """
query Products($after: String, $search: String) {
  products(first: 20, after: $after, search: $search) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id sku name description active price { amount currency } stock { productId available }
    } }
  }
}"""


class HttpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: str) -> HttpConnection:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        start = lower.find(b"content-length:")
        if start < 0:
            raise RuntimeError(f"no content-length in {head!r}")
        end = lower.find(b"\r\n", start)
        length = int(lower[start + 15:end])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _http(address: str, path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body


class Scenario:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.address = spec["address"]
        self.kind = spec["scenario"]
        self.cart = spec.get("cart", "hot")
        tokens = spec.get("tokens", {})
        if "tokens_file" in spec:
            with open(spec["tokens_file"]) as tokens_file:
                tokens = json.load(tokens_file)
        self.users = sorted((int(uid), token) for uid, token in tokens.items())
        self.random = random.Random(spec.get("seed", 1))
        self.catalog_request = _http(self.address, "/graphql", json.dumps(
            {"query": CATALOG, "variables": {}, "operationName": "Products"}).encode(), None)

    def _items(self) -> list[tuple[int, int]]:
        if self.cart == "hot":
            return [(HOT_PRODUCT, 1)]
        if self.cart == "sellout":
            return [(SELLOUT_PRODUCT, 1)]
        count = self.random.randint(1, 3)
        return [(pid, 1) for pid in sorted(self.random.sample(range(1, CATALOG_SIZE + 1),
                                                              count))]

    def request(self, client: int, sequence: int, clients: int) -> bytes:
        if self.kind == "catalog":
            return self.catalog_request
        user_id, token = self.users[(client + sequence * clients) % len(self.users)]
        items = self._items()
        if self.kind == "naive":
            (product_id, quantity), = items
            return _http(self.address, "/_bench/naive-checkout", json.dumps(
                {"customer_id": user_id, "product_id": product_id,
                 "quantity": quantity}).encode(), None)
        body = json.dumps({"query": CHECKOUT, "operationName": "Checkout", "variables": {
            "input": {"items": [{"productId": str(pid), "quantity": qty} for pid, qty in items],
                      "idempotencyKey": uuid.uuid4().hex}}}).encode()
        return _http(self.address, "/graphql", body, token)

    def outcome(self, status: int, body: bytes) -> str:
        if status != 200:
            return f"HTTP {status}"
        data = json.loads(body)
        if data.get("errors"):
            return str((data["errors"][0].get("extensions") or {}).get("code") or "ERROR")
        if self.kind == "catalog":
            return "ok"
        if self.kind == "naive":
            return str(data["__typename"])
        result = data["data"]["checkout"]
        code = result.get("code")
        return f"{result['__typename']}:{code}" if code else str(result["__typename"])


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    scenario = Scenario(spec)
    clients = int(spec["clients"])
    warmup, duration = float(spec.get("warmup", 1.0)), float(spec["duration"])
    addresses = list(spec.get("addresses") or [scenario.address])
    connections = await asyncio.gather(*[HttpConnection.open(addresses[i % len(addresses)])
                                         for i in range(clients)])
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    all_outcomes: Counter[str] = Counter()
    per_address: Counter[str] = Counter()
    started = time.perf_counter()
    window_start, window_end = started + warmup, started + warmup + duration
    cpu_before = time.process_time()

    async def client(index: int) -> None:
        connection = connections[index]
        sequence = 0
        while True:
            data = scenario.request(index, sequence, clients)
            sequence += 1
            sent = time.perf_counter()
            if sent >= window_end:
                return
            status, body = await connection.request(data)
            done = time.perf_counter()
            outcome = scenario.outcome(status, body)
            all_outcomes[outcome] += 1
            if window_start <= sent and done <= window_end:
                latencies.append((done - sent) * 1000)
                outcomes[outcome] += 1
                per_address[addresses[index % len(addresses)]] += 1

    await asyncio.gather(*[client(i) for i in range(clients)])
    for connection in connections:
        connection.close()
    return {"clients": clients, "duration_s": duration, "requests": len(latencies),
            "throughput": round(len(latencies) / duration, 1),
            "latency": latency_summary(latencies), "outcomes": dict(outcomes),
            "all_outcomes": dict(all_outcomes), "per_address": dict(per_address),
            "loadgen_cpu_s": round(time.process_time() - cpu_before, 2)}


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        result = asyncio.run(run(spec))
    else:
        result = uvloop.run(run(spec))
    json.dump(result, sys.stdout)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

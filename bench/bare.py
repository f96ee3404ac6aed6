"""The ceilings the app is held against, with no GraphQL and none of the app: a bare Starlette
app under the same uvicorn options as bench/server.py (`python -m bench.bare --port N`).

- `POST /graphql` (any body): the catalog page. The statement the app's catalog runs (one
  `SELECT` of the page's products with their stock and a window count, db/readstore.py), on a
  plain psycopg connection (one per concurrent request, kept), and the same JSON the app
  answers for the web client's catalog document (bench/loadgen.py: CATALOG), built by hand.
- WebSocket `/graphql` (graphql-transport-ws, just enough): `connection_init` is acked, a
  `subscribe` answers one SNAPSHOT-typed `next` and joins the crowd.
- `POST /_bench/broadcast`: one stock change the way the app sends it (the same fields and
  sizes), encoded once, written to every connection in turn; stamped like the app's
  publishes (`GET /_bench/published-all`, CLOCK_MONOTONIC).
- `GET /readyz`.

BENCH_DSN: the database (libpq form).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

CATALOG_SQL = """
SELECT anon_1.* FROM (
  SELECT products.id, products.sku, products.name, products.description, products.price_cents,
         products.currency, products.active, products.created_at, products.updated_at,
         inventory.available, inventory.reserved, inventory.updated_at AS stock_updated_at,
         count(*) OVER () AS total_count
  FROM products JOIN inventory ON inventory.product_id = products.id
  WHERE products.active IS true) AS anon_1
ORDER BY anon_1.id LIMIT %(limit)s"""
PAGE = 20


def _cursor(product_id: int) -> str:
    return base64.urlsafe_b64encode(f"product:{product_id}".encode()).decode().rstrip("=")


class Pool:
    """Connections kept open, one per request in flight (as many as the load has clients)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.idle: list[psycopg.AsyncConnection[Any]] = []

    async def run(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        conn = self.idle.pop() if self.idle else \
            await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, params, prepare=True)
                return await cursor.fetchall()
        finally:
            self.idle.append(conn)


pool = Pool(os.environ.get("BENCH_DSN", "dbname=postgres"))
crowd: list[tuple[WebSocket, str]] = []
published: dict[str, float] = {}


async def catalog(request: Request) -> Response:
    await request.body()
    rows = await pool.run(CATALOG_SQL, {"limit": PAGE + 1})
    page = rows[:PAGE]
    edges = [{"node": {
        "id": str(row[0]), "sku": row[1], "name": row[2], "description": row[3],
        "active": row[6], "price": {"amount": row[4], "currency": row[5]},
        "stock": {"productId": str(row[0]), "available": row[9]}}} for row in page]
    body = {"data": {"products": {
        "totalCount": int(rows[0][12]) if rows else 0,
        "pageInfo": {"hasNextPage": len(rows) > PAGE,
                     "endCursor": _cursor(page[-1][0]) if page else None},
        "edges": edges}}}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


async def live(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="graphql-transport-ws")
    joined: list[tuple[WebSocket, str]] = []
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message["type"] == "connection_init":
                await websocket.send_text('{"type":"connection_ack"}')
            elif message["type"] == "subscribe":
                await websocket.send_text(_next(message["id"], "SNAPSHOT", "snapshot-0"))
                joined.append((websocket, message["id"]))
                crowd.append(joined[-1])
            elif message["type"] == "ping":
                await websocket.send_text('{"type":"pong"}')
    except WebSocketDisconnect:
        pass
    finally:
        for member in joined:
            crowd.remove(member)


def _next(operation_id: str, kind: str, event_id: str) -> str:
    """A stockUpdated result as the app sends it (the web client's document)."""
    now = datetime.now(UTC).isoformat()
    data = {"stockUpdated": {"eventId": event_id, "type": kind, "at": now, "stock": {
        "productId": "1", "available": 99999999, "reserved": None, "updatedAt": now}}}
    return json.dumps({"id": operation_id, "type": "next", "payload": {"data": data}},
                      separators=(",", ":"))


async def broadcast(request: Request) -> JSONResponse:
    event_id = f"bare-{time.monotonic_ns()}"
    published[event_id] = time.monotonic()
    texts: dict[str, str] = {}
    for websocket, operation_id in list(crowd):
        text = texts.get(operation_id)
        if text is None:
            text = texts[operation_id] = _next(operation_id, "STOCK_CHANGED", event_id)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await websocket.send_text(text)
    return JSONResponse({"event_id": event_id, "sent": len(crowd)})


async def published_all(request: Request) -> JSONResponse:
    return JSONResponse(published)


async def readyz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/graphql", catalog, methods=["POST"]),
    WebSocketRoute("/graphql", live),
    Route("/_bench/broadcast", broadcast, methods=["POST"]),
    Route("/_bench/published-all", published_all),
    Route("/readyz", readyz),
])


def main() -> None:
    import gc

    import uvicorn

    parser = argparse.ArgumentParser(description="the bare ceilings for the benchmarks")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    # The app's collector settings (web/app.py: GC_THRESHOLDS, tune_gc), kept equal by hand.
    gc.set_threshold(10_000, 5, 10_000)
    deflate = os.environ.get("BENCH_WS_DEFLATE", "off") == "on"
    uvicorn.run("bench.bare:app", host=args.host, port=args.port, workers=1, log_config=None,
                access_log=False, proxy_headers=True, timeout_graceful_shutdown=10,
                ws_per_message_deflate=deflate)


if __name__ == "__main__":
    main()

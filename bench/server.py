"""The app as production serves it, plus what a benchmark needs to look inside.

`python -m bench.server --port N` runs uvicorn exactly as `ordergraph serve` does (one worker,
uvloop/httptools, our JSON access log, no uvicorn access log), on `create_app(settings,
Overrides(...))` with settings from the environment. Bench-only knobs (environment):

- BENCH_GATEWAY=null (default): an in-process payment gateway that answers at once, to
  separate our cost from the emulator's; BENCH_GATEWAY=stripe: the real StripeGateway
  (point STRIPE_API_BASE at localstripe).
- BENCH_WS_DEFLATE=on: serve WebSockets with permessage-deflate (default: off, as
  `ordergraph serve` does).
- BENCH_RESPONSE_CACHE=off: no response cache for anonymous catalog reads (the app before
  it; for side-by-side numbers).
- BENCH_STAMPS=PATH: also append "EVENT_ID MONOTONIC_SECONDS" to PATH for every event
  published (one line per process and event), so that several processes (`--workers N`, or
  instances on one Redis) can be read together; /_bench/published-all answers for the one
  worker that took the request only.

`--workers N` serves with N uvicorn worker processes on one port, as `ordergraph serve
--workers N` does: uvicorn imports this module's factory in each worker.

Under /_bench/ (never part of the app) the benchmarks can:
- GET  /_bench/statements            SQL statements the app has executed so far (counting
                                     starts with the first call; executemany counts once)
- GET  /_bench/published?event=ID    when (CLOCK_MONOTONIC, seconds) the app published that
                                     event to the live hub, i.e. right after its commit
- POST /_bench/naive-checkout        the control: a read-then-write checkout WITHOUT row locks
                                     (body {"customer_id", "product_id", "quantity"}), to prove
                                     the oversell check can fail
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from ordergraph.adapters.logs import configure_logging
from ordergraph.domain.model import Money
from ordergraph.domain.ports import PaymentIntent, PaymentState
from ordergraph.resolvers.live_access import SubscriptionSlots
from ordergraph.settings import Settings
from ordergraph.web import app as app_module
from ordergraph.web.app import create_app
from ordergraph.wiring import Overrides


class NullGateway:
    """A PaymentGateway that opens, confirms and cancels intents instantly, in process."""

    provider = "null"

    async def create_intent(self, *, order_id: int, amount: Money, idempotency_key: str,
                            **details: object) -> PaymentIntent:
        return PaymentIntent(id=f"pi_null_{order_id}", status="requires_payment_method",
                             provider=self.provider, amount=amount.amount, currency=amount.currency,
                             client_secret=f"pi_null_{order_id}_secret_bench",
                             order_id=order_id)

    async def retrieve_intent(self, intent_id: str) -> PaymentIntent:
        return PaymentIntent(id=intent_id, status="requires_payment_method", amount=0,
                             currency="usd", provider=self.provider)

    async def confirm_intent(self, intent_id: str, *, payment_method_id: str,
                             idempotency_key: str) -> PaymentIntent:
        return PaymentIntent(id=intent_id, status="succeeded", state=PaymentState.SUCCEEDED,
                             provider=self.provider, amount=0, currency="usd")

    async def cancel_intent(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent:
        return PaymentIntent(id=intent_id, status="canceled", state=PaymentState.CANCELED,
                             provider=self.provider, amount=0, currency="usd")

    async def refund(self, intent_id: str, *, idempotency_key: str) -> str:
        return f"re_null_{intent_id}"


class Instruments:
    """Statement counter and publish stamps, attached after the app's lifespan started."""

    def __init__(self) -> None:
        self.statements = 0
        self.counting = False
        self.published: OrderedDict[str, float] = OrderedDict()
        self.app: Starlette | None = None
        stamps = os.environ.get("BENCH_STAMPS")
        # O_APPEND: each line is one write(2), whole, whichever process writes it.
        self.stamps = os.open(stamps, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) \
            if stamps else None

    def attach(self, app: Starlette) -> None:
        self.app = app
        if os.environ.get("BENCH_RESPONSE_CACHE", "on") == "off":
            app.state.response_cache = None  # the catalog as it was before the cache
        hub = app.state.hub
        publish = hub.publish

        async def stamped_publish(channel: str, message: str) -> None:
            now = time.monotonic()
            try:
                event_id = json.loads(message).get("event_id")
            except ValueError:
                event_id = None
            if event_id and event_id not in self.published:
                self.published[event_id] = now
                while len(self.published) > 100_000:
                    self.published.popitem(last=False)
                if self.stamps is not None:
                    os.write(self.stamps, f"{event_id} {now!r}\n".encode())
            await publish(channel, message)

        hub.publish = stamped_publish

    def start_counting(self) -> None:
        if not self.counting and self.app is not None:
            event.listen(self.app.state.engine.sync_engine, "before_cursor_execute",
                         self._count)
            self.counting = True

    def _count(self, *_args: Any) -> None:
        self.statements += 1


NAIVE_ORDER = sa.text("""
    INSERT INTO orders (customer_id, status, currency, total_cents, subtotal_cents, version,
                        created_at, updated_at)
    VALUES (:customer_id, 'CREATED', 'usd', :total, :total, 1, :now, :now) RETURNING id""")
NAIVE_ITEM = sa.text("""
    INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
    VALUES (:order_id, :product_id, :quantity, :price)""")
NAIVE_MOVEMENT = sa.text("""
    INSERT INTO stock_movements (product_id, delta_available, delta_reserved, reason, order_id,
                                 actor_kind, actor_id, at)
    VALUES (:product_id, -:quantity, :quantity, 'RESERVED', :order_id, 'USER', :customer_id,
            :now)""")


async def naive_checkout(app: Starlette, body: dict[str, Any]) -> dict[str, Any]:
    """The control: read the level, decide, write the level back. No FOR UPDATE, no
    relative update: two buyers who read the same level both succeed (READ COMMITTED)."""
    customer_id, product_id = int(body["customer_id"]), int(body["product_id"])
    quantity = int(body.get("quantity", 1))
    now = datetime.now(UTC)
    async with app.state.engine.connect() as conn:
        await conn.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            available, reserved, price = (await conn.execute(sa.text(
                "SELECT i.available, i.reserved, p.price_cents FROM inventory i "
                "JOIN products p ON p.id = i.product_id WHERE i.product_id = :pid"),
                {"pid": product_id})).one()
            if available < quantity:
                return {"__typename": "InsufficientStockError"}
            order_id = (await conn.execute(NAIVE_ORDER, {
                "customer_id": customer_id, "total": price * quantity, "now": now})).scalar()
            await conn.execute(NAIVE_ITEM, {"order_id": order_id, "product_id": product_id,
                                            "quantity": quantity, "price": price})
            await conn.execute(sa.text(
                "UPDATE inventory SET available = :available, reserved = :reserved, "
                "updated_at = :now WHERE product_id = :pid"),
                {"available": available - quantity, "reserved": reserved + quantity,
                 "now": now, "pid": product_id})
            await conn.execute(NAIVE_MOVEMENT, {"product_id": product_id, "quantity": quantity,
                                                "order_id": order_id,
                                                "customer_id": customer_id, "now": now})
    return {"__typename": "CheckoutPayload", "order": {"id": str(order_id)}}


class BenchApp:
    """The app, with /_bench/ routes in front of it (everything else passes straight on)."""

    def __init__(self, app: Starlette, instruments: Instruments) -> None:
        self.app = app
        self.instruments = instruments

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/_bench/"):
            await self._bench(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _bench(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        payload: Any
        if path == "/_bench/statements":
            self.instruments.start_counting()
            payload = {"statements": self.instruments.statements}
        elif path == "/_bench/published":
            query = dict(part.split("=", 1) for part in
                         scope.get("query_string", b"").decode().split("&") if "=" in part)
            payload = {"at": self.instruments.published.get(query.get("event", ""))}
        elif path == "/_bench/published-all":
            payload = dict(self.instruments.published)
        elif path == "/_bench/naive-checkout":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            payload = await naive_checkout(self.app, json.loads(body))
        else:
            payload = {"error": "unknown bench route"}
        data = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


def create() -> BenchApp:
    """The uvicorn factory: like `ordergraph.web.app:serve_app`, with the bench's overrides."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    gateway = NullGateway() if os.environ.get("BENCH_GATEWAY", "null") == "null" else None
    # The fan-out bench's subscribers all come from one address.
    app = create_app(settings, Overrides(gateway=gateway, run_sweeper=False,
                                         subscription_slots=SubscriptionSlots(per_address=10**6)))
    instruments = Instruments()
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        async with inner(started) as state:
            instruments.attach(started)
            yield state

    app.router.lifespan_context = lifespan
    # Whatever process-wide tuning the production factory applies, applied here too.
    tune = getattr(app_module, "tune_gc", None)
    if tune is not None:
        tune()
    return BenchApp(app, instruments)


def main() -> None:
    from ordergraph.web import serving

    parser = argparse.ArgumentParser(description="ordergraph served for the benchmarks")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (as `ordergraph serve --workers N`)")
    args = parser.parse_args()
    # The same uvicorn options as `ordergraph serve` (ordergraph/cli.py): keep them in step.
    # BENCH_WS_DEFLATE=on measures the app with per-message deflate.
    deflate = os.environ.get("BENCH_WS_DEFLATE", "off") == "on"
    serving.run("bench.server:create", workers=args.workers, host=args.host, port=args.port,
                log_config=None, access_log=False, proxy_headers=True,
                timeout_graceful_shutdown=10, ws_per_message_deflate=deflate)


if __name__ == "__main__":
    main()

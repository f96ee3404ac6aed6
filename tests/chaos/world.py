"""The world the chaos machine acts on, alive for the whole test.

One event loop in a thread of its own holds everything asynchronous: the app served by uvicorn
on loopback (``live_server``, so every operation is a real HTTP request), the fault proxy in
front of a private Stripe emulator, the webhook feed and the clients. Hypothesis' state
machine is synchronous: its rules hand coroutines to that loop with ``world.run(...)``.

Between examples the world is reset, not rebuilt: the test tables are truncated, the
emulator's store is flushed (``DELETE /_config/data``) and the proxy forgets its idempotency
keys. The app keeps running. It never hears from the emulator by itself: the emulator is this
suite's own and no webhook is registered with it; every event reaches the app through
``webhooks.EventFeed``, when the machine decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from datetime import timedelta
from typing import Any, TypeVar

import httpx

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe import gateway as stripe_gateway
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.domain.shipping import ShippingRates
from ordergraph.web.app import Overrides
from tests.chaos.faults import FaultProxy
from tests.chaos.invariant import Db
from tests.chaos.webhooks import EventFeed
from tests.support import Api, Customer, execute, live_server, rows, settings_for

T = TypeVar("T")

RESERVATION_TTL = timedelta(minutes=15)
# Shipping where it matters: $7 on a shipped order under $50 (one or two of the $10 product,
# one $25), free from $50 on (exactly $50 is two of the $25 one); none without an address.
SHIPPING = ShippingRates(flat_cents=700, free_over_cents=5000)
ADDRESSES: dict[str, dict[str, str | None]] = {
    "home": {"name": "Alice Chaos", "line1": "1 Rue de Rivoli", "line2": None, "city": "Paris",
             "postalCode": "75001", "region": None, "country": "FR"},
    "office": {"name": "Bob Chaos", "line1": "350 Fifth Avenue", "line2": "Floor 21",
               "city": "New York", "postalCode": "10118", "region": "NY", "country": "US"},
}
# The gateway's HTTP timeout while the app runs here, so that a "timeout" fault costs about
# a second instead of the production 15 s. The proxy holds a timed-out request a bit longer.
GATEWAY_TIMEOUT_SECONDS = 1.0
EMULATOR_KEY = "sk_test_chaos_observer"


def empty_tables(url: str) -> None:
    """Every table of the shop emptied, but ids keep counting up and this installation keeps
    its id: the app's idempotency keys (``order-<id>...``) then never repeat across examples,
    and the emulator, which remembers keys for its lifetime, never sees one reused."""
    keep = ("installation", "alembic_version")
    names = [name for (name,) in rows(url, "SELECT tablename FROM pg_tables WHERE "
                                           "schemaname = 'public'") if name not in keep]
    execute(url, f"TRUNCATE {', '.join(names)} CASCADE")


class PlainPasswords:
    """Passwords without argon2's cost: every example logs its users in again."""

    async def hash(self, password: str) -> str:
        return f"plain${password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        return password_hash == f"plain${password}"

    def needs_rehash(self, password_hash: str) -> bool:
        return False


class World:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chaos-world",
                                        daemon=True)
        self.emulator: LocalStripe | None = None
        self.proxy: FaultProxy
        self.api: Api
        self.clock = OffsetClock()
        self.stripe: httpx.AsyncClient  # the test's own view of the emulator (not faulted)
        self.customer_side: Customer
        self.feed: EventFeed
        self._server: contextlib.AbstractAsyncContextManager[Any] | None = None

    # ---- lifetime ---------------------------------------------------------------------

    def start(self) -> World:
        self.db = Db(self.database_url)
        self._thread.start()
        self.emulator = LocalStripe.start()
        self.run(self._start(), timeout=60)
        return self

    async def _start(self) -> None:
        assert self.emulator is not None
        self.proxy = FaultProxy(upstream=self.emulator.api_base,
                                hold_seconds=GATEWAY_TIMEOUT_SECONDS + 0.5)
        await self.proxy.start()
        settings = settings_for(self.database_url, stripe_api_base=self.proxy.api_base,
                                reservation_ttl=RESERVATION_TTL,
                                shipping_flat_cents=SHIPPING.flat_cents,
                                free_shipping_over_cents=SHIPPING.free_over_cents)
        overrides = Overrides(clock=self.clock, passwords=PlainPasswords(), run_sweeper=False)
        # The app builds its own gateway (whatever build_gateways makes of the settings) at
        # startup; only its HTTP timeout is shortened, for the startup only.
        saved = getattr(stripe_gateway, "REQUEST_TIMEOUT_SECONDS", None)
        stripe_gateway.REQUEST_TIMEOUT_SECONDS = GATEWAY_TIMEOUT_SECONDS  # type: ignore[attr-defined]
        try:
            self._server = live_server(settings, overrides)
            address, app = await self._server.__aenter__()
        finally:
            if saved is not None:
                stripe_gateway.REQUEST_TIMEOUT_SECONDS = saved  # type: ignore[attr-defined]
        client = httpx.AsyncClient(base_url=f"http://{address}", timeout=60)
        self.api = Api(app=app, client=client, settings=settings)
        self.stripe = httpx.AsyncClient(base_url=self.emulator.api_base, timeout=30,
                                        headers={"authorization": f"Bearer {EMULATOR_KEY}"})
        self.customer_side = Customer(self.emulator.api_base)
        self.feed = EventFeed(self.stripe, client, settings.stripe_webhook_secret or "")

    def stop(self) -> None:
        try:
            self.run(self._stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()
            if self.emulator is not None:
                self.emulator.stop()
            self.db.close()

    async def _stop(self) -> None:
        await self.api.client.aclose()
        await self.stripe.aclose()
        await self.customer_side.aclose()
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
        await self.proxy.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    # ---- between examples -------------------------------------------------------------

    def reset(self) -> None:
        empty_tables(self.database_url)
        self.run(self._reset())

    async def _reset(self) -> None:
        (await self.stripe.delete("/_config/data")).raise_for_status()
        self.proxy.reset()
        self.feed.reset()

    # ---- helpers the rules share ------------------------------------------------------

    @property
    def deps(self) -> Any:
        return self.api.deps

    async def sweep(self) -> Any:
        from ordergraph.domain.services.sweeper import sweep

        s = self.deps
        return await sweep(uow=s.uow(), gateways=s.gateway, clock=s.clock)

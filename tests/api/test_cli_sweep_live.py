"""`ordergraph sweep` (the cron entry point) publishes what it changes like the server does:
an expiry it makes reaches a live subscriber of a running instance (issue 11, item 1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from ordergraph.adapters.stripe.emulator import LocalStripe
from tests.support import Api, execute, live_server, settings_for
from tests.ws import GraphQLWebSocket

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379"
ORDER_UPDATED = """
subscription($id: ID!) { orderUpdated(id: $id) { type previousStatus order { id status } } }"""


async def test_a_cron_sweeps_expiry_reaches_live_subscribers(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    prefix = f"cli-sweep-{uuid.uuid4().hex[:8]}:"
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            broadcast_url=REDIS_URL, broadcast_prefix=prefix)
    async with live_server(settings) as (address, app), \
            httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
        api = Api(app=app, client=client, settings=settings)
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="cron", stock=3)
        customer = await api.register("cron@example.com")
        order = (await api.checkout(customer, [(product, 1)]))["order"]
        socket = await GraphQLWebSocket.open(address, token=customer)
        subscription = await socket.subscribe(ORDER_UPDATED, {"id": order["id"]})
        assert (await socket.next(subscription))["orderUpdated"]["type"] == "SNAPSHOT"
        execute(pg_url, "UPDATE orders SET reserved_until = now() - interval '1 minute'")

        swept = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "ordergraph.cli", "sweep"], cwd=ROOT, capture_output=True,
            text=True, timeout=60, env={
                **os.environ, "DATABASE_URL": pg_url, "BROADCAST_URL": REDIS_URL,
                "BROADCAST_PREFIX": prefix, "STRIPE_SECRET_KEY": "sk_test_cron",
                "STRIPE_API_BASE": stripe_emulator.api_base, "ORDERGRAPH_ENV": "test"})

        assert swept.returncode == 0, swept.stderr
        assert "1 expired" in swept.stdout
        event = (await socket.next(subscription, timeout=15))["orderUpdated"]
        assert (event["previousStatus"], event["order"]["status"]) == \
            ("PAYMENT_PENDING", "CANCELLED")
        await socket.close()

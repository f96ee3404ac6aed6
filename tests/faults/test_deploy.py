"""A deploy while the payment provider hangs (issue 15, item 4), with a real process.

`ordergraph serve` takes checkouts while every call to the provider hangs; SIGTERM arrives
with the checkouts in flight. Each checkout gives up at PAYMENT_PROVIDER_DEADLINE, inside the
graceful SHUTDOWN_TIMEOUT: the clients get a clean PAYMENT_PROVIDER_ERROR (not a 500 or a
reset), no order is left CREATED holding stock, and the process exits within the limit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ordergraph.adapters.stripe.emulator import free_port
from ordergraph.db import migrate
from tests.support import (
    CHECKOUT,
    CREATE_PRODUCT,
    LOGIN,
    REGISTER,
    rows,
    stock_invariant_violations,
)

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 2
SHUTDOWN_SECONDS = 6
CHECKOUTS = 4

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def hanging_provider() -> AsyncIterator[str]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in held:
        writer.close()
    server.close()


def serve(database_url: str, provider: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "ORDERGRAPH_ENV": "test",
           "JWT_SECRET": "deploy-test-secret-that-is-long-enough-0123456789",
           "STRIPE_SECRET_KEY": "sk_test_deploy", "STRIPE_WEBHOOK_SECRET": "whsec_deploy",
           "STRIPE_API_BASE": provider, "PAYMENT_PROVIDER_DEADLINE": f"{DEADLINE_SECONDS}s",
           "SHUTDOWN_TIMEOUT": f"{SHUTDOWN_SECONDS}s", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "ordergraph.cli", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, object],
              token: str | None = None) -> dict[str, object]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_a_deploy_under_a_hung_provider_ends_every_checkout_cleanly(
        fresh_pg_database: str, hanging_provider: str) -> None:
    migrate.upgrade(fresh_pg_database)
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ordergraph.cli", "create-admin", "boss@deploy.test",
         "--password-stdin"], input=b"deploy-admin-password\n", cwd=ROOT, check=True,
        env={**os.environ, "DATABASE_URL": fresh_pg_database}, capture_output=True)
    port = free_port()
    server = serve(fresh_pg_database, hanging_provider, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.1)
            login = await gql(client, LOGIN, {"email": "boss@deploy.test",
                                              "password": "deploy-admin-password"})
            boss = login["login"]["token"]  # type: ignore[index]
            created = await gql(client, CREATE_PRODUCT, {"input": {
                "sku": "deploy-mug", "name": "Mug", "priceCents": 900, "initialStock": 10}},
                token=boss)
            product = created["createProduct"]["product"]["id"]  # type: ignore[index]
            registered = await gql(client, REGISTER, {"input": {
                "email": "buyer@deploy.test", "password": "buyer-password"}})
            buyer = registered["register"]["token"]  # type: ignore[index]

            checkouts = [asyncio.create_task(gql(client, CHECKOUT, {"input": {
                "items": [{"productId": product, "quantity": 1}]}}, token=buyer))
                for _ in range(CHECKOUTS)]
            await asyncio.sleep(0.5)  # all of them are waiting on the provider now
            stopping = time.monotonic()
            server.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*checkouts)
            exit_code = await asyncio.to_thread(server.wait, SHUTDOWN_SECONDS + 5)
            stopped_after = time.monotonic() - stopping
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    assert [a["checkout"]["code"] for a in answers] == ["PAYMENT_PROVIDER_ERROR"] * CHECKOUTS
    assert exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    assert stopped_after < SHUTDOWN_SECONDS, stopped_after
    assert rows(fresh_pg_database, "SELECT DISTINCT status FROM orders") == [("CANCELLED",)]
    assert stock_invariant_violations(fresh_pg_database, {int(product): 10}) == []

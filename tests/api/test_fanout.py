"""Fan-out: many WebSocket clients, one change; and several app processes on one Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from ordergraph.adapters.clock import SystemClock
from ordergraph.adapters.passwords import Argon2PasswordHasher
from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.db.engine import create_engine
from ordergraph.db.uow import NullPublisher, SqlAlchemyUnitOfWork
from ordergraph.domain.model import SYSTEM, Role
from ordergraph.domain.services.auth import create_user
from ordergraph.resolvers.live_access import SubscriptionSlots
from ordergraph.settings import Settings
from ordergraph.web.app import Overrides
from tests.support import CANCEL, Api, live_server, settings_for, statements_sent
from tests.ws import GraphQLWebSocket

REDIS_URL = "redis://127.0.0.1:6379"
ORDER_UPDATED = """
subscription($id: ID!) { orderUpdated(id: $id) {
  type order { id status version items { quantity product { sku name } } customer { email } }
} }"""


@pytest.fixture(params=["memory://", REDIS_URL])
def broadcast_url(request: pytest.FixtureRequest) -> str:
    return request.param


async def count_statements(work: object) -> int:
    with statements_sent() as statements:
        await work  # type: ignore[misc]
    return len(statements)


@contextlib.asynccontextmanager
async def all_closed(sockets: list[GraphQLWebSocket]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        async with asyncio.timeout(15):
            await asyncio.gather(*[s.close() for s in sockets])


async def test_two_hundred_clients_subscribing_at_once_all_get_the_change(
        pg_url: str, stripe_emulator: LocalStripe, broadcast_url: str) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            broadcast_url=broadcast_url,
                            broadcast_prefix=f"test-{uuid.uuid4().hex[:8]}:",
                            database_pool_size=20)
    # Two hundred subscriptions from one address: more than the default cap allows.
    crowd = Overrides(run_sweeper=False, subscription_slots=SubscriptionSlots(per_address=400))
    async with live_server(settings, crowd) as (address, app), \
            httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as client:
        api = Api(app=app, client=client, settings=settings)
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="hot", stock=10)
        customer = await api.register("popular@example.com")
        quiet = (await api.checkout(customer, [(product, 1)]))["order"]
        watched = (await api.checkout(customer, [(product, 1)]))["order"]

        sockets = await asyncio.gather(*[GraphQLWebSocket.open(address, token=customer)
                                         for _ in range(200)])
        # A deadline of its own, well inside the suite's 120 s: a lost subscriber fails
        # here as a timeout, and the sockets are closed either way.
        async with all_closed(sockets), asyncio.timeout(75):
            subs = await asyncio.gather(*[s.subscribe(ORDER_UPDATED, {"id": watched["id"]})
                                          for s in sockets])
            snapshots = await asyncio.gather(*[s.next(sub, 30) for s, sub in zip(sockets, subs,
                                                                                strict=True)])
            assert {snap["orderUpdated"]["type"] for snap in snapshots} == {"SNAPSHOT"}

            # The same change with nobody listening, to know what the mutation itself costs.
            alone = await count_statements(
                api.gql(CANCEL, {"id": quiet["id"]}, token=customer))

            async def cancel_and_deliver() -> list[dict]:
                await api.gql(CANCEL, {"id": watched["id"]}, token=customer)
                return await asyncio.gather(*[s.next(sub, 30) for s, sub in zip(sockets, subs,
                                                                               strict=True)])

            received: list[dict] = []

            async def work() -> None:
                received.extend(await cancel_and_deliver())

            with_fanout = await count_statements(work())

            assert len(received) == 200
            assert {r["orderUpdated"]["type"] for r in received} == {"ORDER_CANCELLED"}
            assert {r["orderUpdated"]["order"]["items"][0]["product"]["sku"]
                    for r in received} == {"hot"}
            # Products and the customer for all 200 subscribers: a few shared queries, not 400.
            assert with_fanout - alone <= 3, (with_fanout, alone)


def start_instance(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordergraph.cli", "serve", "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


async def wait_healthy(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{base} did not start")


@pytest.fixture
async def two_instances(pg_url: str, stripe_emulator: LocalStripe
                        ) -> AsyncIterator[tuple[str, str]]:
    env = {"DATABASE_URL": pg_url, "BROADCAST_URL": REDIS_URL,
           "BROADCAST_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
           "STRIPE_API_BASE": stripe_emulator.api_base, "JWT_SECRET": "x" * 40,
           "STRIPE_WEBHOOK_SECRET": "whsec_two_instances", "SWEEP_INTERVAL": "1h"}
    ports = [free_port(), free_port()]
    processes = [start_instance(env, port) for port in ports]
    try:
        addresses = [f"127.0.0.1:{port}" for port in ports]
        await asyncio.gather(*[wait_healthy(f"http://{a}") for a in addresses])
        yield addresses[0], addresses[1]
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=20)


async def test_changes_through_one_instance_reach_subscribers_of_another(
        two_instances: tuple[str, str], pg_url: str) -> None:
    a, b = two_instances
    engine = create_engine(pg_url)
    await create_user(uow=SqlAlchemyUnitOfWork(engine, NullPublisher()),
                      passwords=Argon2PasswordHasher(), clock=SystemClock(),
                      email="ops@example.com", password="ops-password",
                      name=None, role=Role.ADMIN, actor=SYSTEM)
    await engine.dispose()
    async with httpx.AsyncClient(base_url=f"http://{b}", timeout=30) as client:
        api_b = Api(app=None, client=client, settings=Settings())  # type: ignore[arg-type]
        admin = await api_b.login("ops@example.com", "ops-password")
        product = await api_b.create_product(admin, sku="shared", stock=4)
        stock_socket, board = await GraphQLWebSocket.open(a), \
            await GraphQLWebSocket.open(a, token=admin)
        stock_sub = await stock_socket.subscribe(
            "subscription($ids: [ID!]) { stockUpdated(productIds: $ids) { type stock "
            "{ available } } }", {"ids": [product]})
        board_sub = await board.subscribe("subscription { orderEvents { type order "
                                          "{ customer { email } } } }")
        assert (await stock_socket.next(stock_sub))["stockUpdated"]["type"] == "SNAPSHOT"

        customer = await api_b.register("far-away@example.com")
        await api_b.checkout(customer, [(product, 3)])  # through B

        changed = (await stock_socket.next(stock_sub, 10))["stockUpdated"]
        assert (changed["type"], changed["stock"]["available"]) == ("STOCK_CHANGED", 1)
        created = (await board.next(board_sub, 10))["orderEvents"]
        assert created == {"type": "ORDER_CREATED",
                           "order": {"customer": {"email": "far-away@example.com"}}}
        await stock_socket.close()
        await board.close()

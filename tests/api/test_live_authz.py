"""Who may keep listening (issue 10): an admin demoted while subscribed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from ordergraph.adapters.live import STOCK_COALESCE_SECONDS
from ordergraph.adapters.localstripe import LocalStripe
from tests.api.test_live import ORDER_EVENTS, ORDER_UPDATED, STOCK_UPDATED, Live, serve
from tests.support import CANCEL, Api, live_server, settings_for
from tests.ws import GraphQLWebSocket, SubscriptionError

REDIS_URL = "redis://127.0.0.1:6379"
ME = "{ me { id } }"
SET_ROLE = """
mutation SetRole($userId: ID!, $role: Role!) {
  setUserRole(userId: $userId, role: $role) { __typename ... on UserPayload { user { role } } }
}"""


@pytest.fixture
async def live(pg_url: str, stripe_emulator: LocalStripe) -> AsyncIterator[Live]:
    async for running in serve(settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)):
        yield running


async def user_id(api: Api, token: str) -> str:
    return (await api.gql(ME, token=token))["me"]["id"]


async def set_role(api: Api, admin: str, user: str, role: str) -> None:
    result = await api.gql(SET_ROLE, {"userId": user, "role": role}, token=admin)
    assert result["setUserRole"]["user"]["role"] == role, result


async def next_event(socket: GraphQLWebSocket, sub: str, field: str) -> dict:
    return (await socket.next(sub))[field]


# ---- a demoted admin -----------------------------------------------------------------------

async def test_a_demoted_admin_stops_receiving_other_customers_orders(live: Live) -> None:
    api = live.api
    boss = await api.create_admin()
    deputy = await api.register("deputy@example.com")
    deputy_id = await user_id(api, deputy)
    await set_role(api, boss, deputy_id, "ADMIN")
    product = await api.create_product(boss, sku="board-item", stock=10)
    shopper = await api.register("shopper@example.com")
    watched = (await api.checkout(shopper, [(product, 1)]))["order"]
    # Past the hub's coalescing interval, so no held-back stock change arrives late.
    await asyncio.sleep(STOCK_COALESCE_SECONDS + 0.05)

    board = await live.socket(deputy)
    every_order = await board.subscribe(ORDER_EVENTS)
    one_order = await board.subscribe(ORDER_UPDATED, {"id": watched["id"]})
    stock = await board.subscribe(STOCK_UPDATED, {"ids": [product]})
    assert (await next_event(board, one_order, "orderUpdated"))["type"] == "SNAPSHOT"
    assert (await next_event(board, stock, "stockUpdated"))["stock"]["reserved"] == 1
    await asyncio.sleep(0.2)  # the subscriptions start listening
    await api.checkout(shopper, [(product, 1)])
    assert (await next_event(board, every_order, "orderEvents"))["type"] == "ORDER_CREATED"
    assert (await next_event(board, stock, "stockUpdated"))["stock"]["reserved"] == 2

    await set_role(api, boss, deputy_id, "CUSTOMER")
    await api.gql(CANCEL, {"id": watched["id"]}, token=shopper)

    # The board drained before the demotion may still hold the checkout's second event;
    # after it, the ex-admin gets an end, never the cancellation.
    for sub, field in [(every_order, "orderEvents"), (one_order, "orderUpdated")]:
        with pytest.raises(SubscriptionError) as ended:
            while True:
                event = await next_event(board, sub, field)
                assert event["order"]["status"] != "CANCELLED", (field, event)
        assert ended.value.code == "FORBIDDEN", field
    # The public feed stays open, without what only admins see.
    assert (await next_event(board, stock, "stockUpdated"))["stock"]["reserved"] is None
    await board.close()


async def test_a_demotion_on_one_instance_reaches_subscribers_on_another(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            broadcast_url=REDIS_URL,
                            broadcast_prefix=f"test-{uuid.uuid4().hex[:8]}:")
    async with live_server(settings) as (first, app), live_server(settings) as (second, _), \
            httpx.AsyncClient(base_url=f"http://{second}", timeout=30) as client:
        api = Api(app=app, client=client, settings=settings)  # HTTP to the second instance
        boss = await api.create_admin()
        deputy = await api.register("deputy@example.com")
        deputy_id = await user_id(api, deputy)
        await set_role(api, boss, deputy_id, "ADMIN")
        product = await api.create_product(boss, sku="far-away", stock=10)
        shopper = await api.register("shopper@example.com")

        board = await GraphQLWebSocket.open(first, token=deputy)  # live on the first one
        every_order = await board.subscribe(ORDER_EVENTS, {"status": "CREATED"})
        await asyncio.sleep(0.3)
        await api.checkout(shopper, [(product, 1)])
        assert (await next_event(board, every_order, "orderEvents"))["type"] == "ORDER_CREATED"

        await set_role(api, boss, deputy_id, "CUSTOMER")
        await api.checkout(shopper, [(product, 1)])
        with pytest.raises(SubscriptionError) as ended:
            await board.next(every_order)
        assert ended.value.code == "FORBIDDEN"
        await board.close()


async def test_a_promoted_customer_keeps_a_customers_view_until_resubscribing(
        live: Live) -> None:
    api = live.api
    boss = await api.create_admin()
    product = await api.create_product(boss, sku="promo", stock=10)
    rising, other = await api.customers(2)
    socket = await live.socket(rising)
    own = await socket.subscribe(ORDER_EVENTS, {"status": "CREATED"})
    await asyncio.sleep(0.2)
    await set_role(api, boss, await user_id(api, rising), "ADMIN")
    await api.checkout(other, [(product, 1)])
    await api.checkout(rising, [(product, 1)])
    mine = await next_event(socket, own, "orderEvents")
    assert mine["order"]["customer"]["email"] == "buyer0@example.com"
    await socket.close()

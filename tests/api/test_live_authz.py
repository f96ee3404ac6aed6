"""Who may keep listening (issue 10): a demoted admin, someone else's order, products taken
off sale, and how many subscriptions one connection or one address may hold."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from ordergraph.adapters.live_fanout import STOCK_COALESCE_SECONDS
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.resolvers.live_access import (
    MAX_SUBSCRIPTIONS_PER_ADDRESS,
    MAX_SUBSCRIPTIONS_PER_CONNECTION,
)
from tests.api.test_live import ORDER_EVENTS, ORDER_UPDATED, STOCK_UPDATED, Live, serve
from tests.support import ADJUST_STOCK, CANCEL, Api, live_server, settings_for
from tests.ws import GraphQLWebSocket, SubscriptionError

REDIS_URL = "redis://127.0.0.1:6379"
ME = "{ me { id } }"
SET_ROLE = """
mutation SetRole($userId: ID!, $role: Role!) {
  setUserRole(userId: $userId, role: $role) { __typename ... on UserPayload { user { role } } }
}"""
DEACTIVATE = """
mutation Deactivate($id: ID!) {
  updateProduct(id: $id, input: {active: false}) { __typename }
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


# ---- someone else's order is no different from a missing one --------------------------------

async def test_order_updated_answers_not_found_for_others_orders_and_missing_ones(
        live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="secret", stock=5)
    owner, other = await api.customers(2)
    order_id = (await api.checkout(owner, [(product, 1)]))["order"]["id"]
    missing_id = str(int(order_id) + 1000)

    socket = await live.socket(other)
    answers = []
    for target in (order_id, missing_id):
        with pytest.raises(SubscriptionError) as refused:
            await socket.next(await socket.subscribe(ORDER_UPDATED, {"id": target}))
        answers.append(refused.value.errors[0])
    assert [a["extensions"]["code"] for a in answers] == ["NOT_FOUND", "NOT_FOUND"]
    assert answers[0]["message"].replace(order_id, "ID") == \
        answers[1]["message"].replace(missing_id, "ID")
    await socket.close()


# ---- products taken off sale ----------------------------------------------------------------

async def test_the_public_stock_feed_hides_products_taken_off_sale(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    withdrawn = await api.create_product(admin, sku="withdrawn", stock=7)
    on_sale = await api.create_product(admin, sku="on-sale", stock=3)
    anonymous, staff = await live.socket(), await live.socket(admin)
    everything = await anonymous.subscribe(STOCK_UPDATED)
    both = await anonymous.subscribe(STOCK_UPDATED, {"ids": [withdrawn, on_sale]})
    staff_sub = await staff.subscribe(STOCK_UPDATED, {"ids": [withdrawn]})
    for sub in (everything, both):  # the snapshots, while both are on sale
        assert len([await anonymous.next(sub) for _ in range(2)]) == 2
    assert (await next_event(staff, staff_sub, "stockUpdated"))["type"] == "SNAPSHOT"

    await api.gql(DEACTIVATE, {"id": withdrawn}, token=admin)
    await api.gql(ADJUST_STOCK, {"productId": withdrawn, "delta": 5}, token=admin)
    await api.gql(ADJUST_STOCK, {"productId": on_sale, "delta": 1}, token=admin)

    for sub in (everything, both):  # the withdrawn product's change never reaches the public
        assert (await next_event(anonymous, sub, "stockUpdated"))["stock"] == \
            {"productId": on_sale, "available": 4, "reserved": None}
    assert (await next_event(staff, staff_sub, "stockUpdated"))["stock"]["available"] == 12

    # A new public subscription to it starts with nothing, like one to a product that never
    # existed; an admin's starts with its snapshot.
    late = await anonymous.subscribe(STOCK_UPDATED, {"ids": [withdrawn]})
    assert await anonymous.nothing_for(late, 0.5)
    late_staff = await staff.subscribe(STOCK_UPDATED, {"ids": [withdrawn]})
    assert (await next_event(staff, late_staff, "stockUpdated"))["stock"]["available"] == 12
    await anonymous.close()
    await staff.close()


# ---- how many subscriptions ------------------------------------------------------------------

async def test_one_connection_holds_a_bounded_number_of_subscriptions(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="popular", stock=5)
    socket = await live.socket()
    subs = [await socket.subscribe(STOCK_UPDATED, {"ids": [product]})
            for _ in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    for sub in subs:
        assert (await next_event(socket, sub, "stockUpdated"))["type"] == "SNAPSHOT"

    with pytest.raises(SubscriptionError) as refused:
        await socket.next(await socket.subscribe(STOCK_UPDATED, {"ids": [product]}))
    assert refused.value.code == "TOO_MANY_SUBSCRIPTIONS"

    await socket.complete(subs[0])  # ending one makes room for another
    for _ in range(50):
        retry = await socket.subscribe(STOCK_UPDATED, {"ids": [product]})
        try:
            assert (await next_event(socket, retry, "stockUpdated"))["type"] == "SNAPSHOT"
            break
        except SubscriptionError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the completed subscription's place was never freed")
    await socket.close()


async def test_one_address_holds_a_bounded_number_of_subscriptions(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="crowded", stock=5)
    sockets = []
    for _ in range(MAX_SUBSCRIPTIONS_PER_ADDRESS // MAX_SUBSCRIPTIONS_PER_CONNECTION):
        socket = await live.socket()
        sockets.append(socket)
        subs = [await socket.subscribe(STOCK_UPDATED, {"ids": [product]})
                for _ in range(MAX_SUBSCRIPTIONS_PER_CONNECTION)]
        for sub in subs:
            await socket.next(sub)

    one_more = await live.socket()
    with pytest.raises(SubscriptionError) as refused:
        await one_more.next(await one_more.subscribe(STOCK_UPDATED, {"ids": [product]}))
    assert refused.value.code == "TOO_MANY_SUBSCRIPTIONS"

    await sockets.pop().close()  # a closed connection gives its places back
    for _ in range(50):
        try:
            await one_more.next(await one_more.subscribe(STOCK_UPDATED, {"ids": [product]}))
            break
        except SubscriptionError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the closed connection's places were never freed")
    for socket in [*sockets, one_more]:
        await socket.close()


# ---- who is named in a live order's history ----------------------------------------------------

WITH_HISTORY = """
subscription($id: ID!) { orderUpdated(id: $id) {
  type order { status history { action actorRole actor { email } } }
} }"""


async def test_live_order_history_names_staff_only_to_admins(live: Live) -> None:
    api = live.api
    boss = await api.create_admin("boss@example.com")
    product = await api.create_product(boss, sku="live-history", stock=3)
    owner = await api.register("owner@example.com")
    order_id = (await api.checkout(owner, [(product, 1)]))["order"]["id"]
    owner_socket, boss_socket = await live.socket(owner), await live.socket(boss)
    owner_sub = await owner_socket.subscribe(WITH_HISTORY, {"id": order_id})
    boss_sub = await boss_socket.subscribe(WITH_HISTORY, {"id": order_id})
    await owner_socket.next(owner_sub)
    await boss_socket.next(boss_sub)  # SNAPSHOTs

    await api.gql(CANCEL, {"id": order_id}, token=boss)

    seen_by_owner = (await owner_socket.next(owner_sub))["orderUpdated"]
    seen_by_boss = (await boss_socket.next(boss_sub))["orderUpdated"]
    assert seen_by_owner["order"]["status"] == seen_by_boss["order"]["status"] == "CANCELLED"
    assert "boss@example.com" not in str(seen_by_owner)
    assert {"action": "ORDER_STATUS_CHANGED", "actorRole": "ADMIN", "actor": None} in \
        seen_by_owner["order"]["history"]
    assert {"action": "ORDER_STATUS_CHANGED", "actorRole": "ADMIN",
            "actor": {"email": "boss@example.com"}} in seen_by_boss["order"]["history"]
    await owner_socket.close()
    await boss_socket.close()

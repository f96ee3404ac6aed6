"""Live updates over a real WebSocket against the app served by uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.settings import Settings
from tests.support import (
    ADJUST_STOCK,
    CARD_OK,
    FULFILL,
    PAY,
    TEST_JWT_SECRET,
    Api,
    Customer,
    live_server,
    settings_for,
)
from tests.ws import GraphQLWebSocket, SubscriptionError

ORDER_UPDATED = """
subscription($id: ID!) { orderUpdated(id: $id) {
  eventId type previousStatus at
  order { id status version items { quantity product { sku } } total { formatted } }
} }"""
ORDER_EVENTS = """
subscription($status: OrderStatus) { orderEvents(status: $status) {
  eventId type previousStatus order { id status version customer { email } }
} }"""
STOCK_UPDATED = """
subscription($ids: [ID!]) { stockUpdated(productIds: $ids) {
  eventId type stock { productId available reserved }
} }"""


@dataclass
class Live:
    api: Api
    address: str

    async def socket(self, token: str | None = None, **kwargs: object) -> GraphQLWebSocket:
        return await GraphQLWebSocket.open(self.address, token=token, **kwargs)  # type: ignore[arg-type]


async def serve(settings: Settings) -> AsyncIterator[Live]:
    async with live_server(settings) as (address, app), \
            httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
        yield Live(api=Api(app=app, client=client, settings=settings), address=address)


@pytest.fixture
async def live(pg_url: str, stripe_emulator: LocalStripe) -> AsyncIterator[Live]:
    async for running in serve(settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)):
        yield running


async def test_owner_sees_a_snapshot_then_every_change(live: Live,
                                                       customer_side: Customer) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="lamp", price_cents=3000, stock=5)
    customer = await api.register("watcher@example.com")
    order = (await api.checkout(customer, [(product, 2)]))["order"]
    socket = await live.socket(customer)
    sub = await socket.subscribe(ORDER_UPDATED, {"id": order["id"]})

    snapshot = (await socket.next(sub))["orderUpdated"]
    assert snapshot["type"] == "SNAPSHOT"
    assert snapshot["order"]["status"] == "PAYMENT_PENDING"
    assert snapshot["order"]["version"] == order["version"]
    assert snapshot["order"]["items"] == [{"quantity": 2, "product": {"sku": "lamp"}}]

    method = await customer_side.card(CARD_OK)
    await api.gql(PAY, {"id": order["id"], "pm": method}, token=customer)
    paid = (await socket.next(sub))["orderUpdated"]
    assert (paid["type"], paid["previousStatus"], paid["order"]["status"]) == \
        ("ORDER_PAID", "PAYMENT_PENDING", "PAID")
    assert paid["order"]["version"] == snapshot["order"]["version"] + 1

    await api.gql(FULFILL, {"id": order["id"]}, token=admin)
    fulfilled = (await socket.next(sub))["orderUpdated"]
    assert (fulfilled["type"], fulfilled["previousStatus"]) == ("ORDER_FULFILLED", "PAID")
    assert fulfilled["order"]["version"] == paid["order"]["version"] + 1
    assert len({snapshot["eventId"], paid["eventId"], fulfilled["eventId"]}) == 3
    await socket.close()


async def test_others_and_anonymous_are_refused(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="private", stock=5)
    owner, other = await api.customers(2)
    order_id = (await api.checkout(owner, [(product, 1)]))["order"]["id"]

    intruder = await live.socket(other)
    with pytest.raises(SubscriptionError) as refused:
        await intruder.next(await intruder.subscribe(ORDER_UPDATED, {"id": order_id}))
    assert refused.value.code == "NOT_FOUND"  # as for a missing order: no oracle of ids

    anonymous = await live.socket()
    for query, variables in [(ORDER_EVENTS, {}), (ORDER_UPDATED, {"id": order_id})]:
        with pytest.raises(SubscriptionError) as refused:
            await anonymous.next(await anonymous.subscribe(query, variables))
        assert refused.value.code == "UNAUTHENTICATED"
    await intruder.close()
    await anonymous.close()


async def test_stock_feed_is_public_and_reserved_is_for_admins(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="mug", stock=5)
    customer = await api.register("buyer@example.com")
    anonymous, staff = await live.socket(), await live.socket(admin)
    public_sub = await anonymous.subscribe(STOCK_UPDATED, {"ids": [product]})
    staff_sub = await staff.subscribe(STOCK_UPDATED, {"ids": [product]})
    assert (await anonymous.next(public_sub))["stockUpdated"]["stock"] == \
        {"productId": product, "available": 5, "reserved": None}
    assert (await staff.next(staff_sub))["stockUpdated"]["type"] == "SNAPSHOT"

    await api.checkout(customer, [(product, 2)])

    public = (await anonymous.next(public_sub))["stockUpdated"]
    assert (public["type"], public["stock"]["available"], public["stock"]["reserved"]) == \
        ("STOCK_CHANGED", 3, None)
    assert (await staff.next(staff_sub))["stockUpdated"]["stock"]["reserved"] == 2
    await anonymous.close()
    await staff.close()


async def test_admin_board_sees_new_orders_and_customers_only_their_own(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="desk", stock=9)
    alice, bob = await api.customers(2)
    board, alice_socket = await live.socket(admin), await live.socket(alice)
    board_sub = await board.subscribe(ORDER_EVENTS)
    alice_sub = await alice_socket.subscribe(ORDER_EVENTS)
    pending_only = await board.subscribe(ORDER_EVENTS, {"status": "PAYMENT_PENDING"})
    await asyncio.sleep(0.2)  # the subscriptions start listening

    await api.checkout(bob, [(product, 1)])
    created = (await board.next(board_sub))["orderEvents"]
    pending = (await board.next(board_sub))["orderEvents"]
    assert (created["type"], created["order"]["status"]) == ("ORDER_CREATED", "CREATED")
    assert created["order"]["customer"]["email"] == "buyer1@example.com"
    assert (pending["type"], pending["previousStatus"]) == ("ORDER_PAYMENT_PENDING", "CREATED")
    assert (await board.next(pending_only))["orderEvents"]["type"] == "ORDER_PAYMENT_PENDING"
    assert await alice_socket.nothing_for(alice_sub, 0.5)

    await api.checkout(alice, [(product, 1)])
    assert (await alice_socket.next(alice_sub))["orderEvents"]["order"]["customer"]["email"] \
        == "buyer0@example.com"
    await board.close()
    await alice_socket.close()


async def test_a_rolled_back_checkout_publishes_nothing(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="rare", stock=1)
    customer = await api.register("greedy@example.com")
    stock_socket, board = await live.socket(), await live.socket(admin)
    stock_sub = await stock_socket.subscribe(STOCK_UPDATED, {"ids": [product]})
    board_sub = await board.subscribe(ORDER_EVENTS)
    await stock_socket.next(stock_sub)  # SNAPSHOT

    refused = await api.checkout(customer, [(product, 2)])
    assert refused["code"] == "INSUFFICIENT_STOCK"
    await api.gql(ADJUST_STOCK, {"productId": product, "delta": 4}, token=admin)

    first = (await stock_socket.next(stock_sub))["stockUpdated"]
    assert (first["type"], first["stock"]["available"]) == ("STOCK_CHANGED", 5)
    assert await board.nothing_for(board_sub, 0.3)
    await stock_socket.close()
    await board.close()


def token_for(user_id: str, *, expires_in: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now - 10, "exp": now + expires_in},
                      TEST_JWT_SECRET, algorithm="HS256")


async def test_connection_init_tokens(live: Live) -> None:
    api = live.api
    await api.register("socket@example.com")
    for bad in ("garbage", token_for("1", expires_in=-60)):
        connection = await connect(f"ws://{live.address}/graphql",
                                   subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        await connection.send(json.dumps({"type": "connection_init",
                                          "payload": {"authorization": f"Bearer {bad}"}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), 5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
    anonymous = await live.socket()  # no token: accepted (the stock feed is public)
    await anonymous.close()


async def test_the_subscription_ends_when_the_token_expires(live: Live) -> None:
    api = live.api
    token = await api.register("short-lived@example.com")
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    socket = await live.socket(token_for(user_id, expires_in=2))
    sub = await socket.subscribe(ORDER_EVENTS)
    with pytest.raises(SubscriptionError) as ended:
        await socket.next(sub, timeout=10)
    assert ended.value.code == "UNAUTHENTICATED"
    await socket.close()


async def test_disconnected_subscribers_leave_nothing_behind(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="gone", stock=3)
    hub = api.app.state.hub
    baseline_subscribers, baseline_tasks = hub.subscriber_count, len(asyncio.all_tasks())

    sockets = [await live.socket(admin) for _ in range(10)]
    for socket in sockets:
        await socket.subscribe(STOCK_UPDATED, {"ids": [product]})
        await socket.subscribe(ORDER_EVENTS)
    for _ in range(50):
        if hub.subscriber_count == baseline_subscribers + 20:
            break
        await asyncio.sleep(0.05)
    assert hub.subscriber_count == baseline_subscribers + 20
    for socket in sockets:
        await socket.close()
    for _ in range(100):
        if hub.subscriber_count == baseline_subscribers and \
                len(asyncio.all_tasks()) <= baseline_tasks:
            break
        await asyncio.sleep(0.05)
    assert hub.subscriber_count == baseline_subscribers
    assert len(asyncio.all_tasks()) <= baseline_tasks


async def test_browser_origins_are_checked(pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            cors_origins=("https://shop.example",))
    async for running in serve(settings):
        allowed = await running.socket(origin="https://shop.example")
        await allowed.close()
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            await running.socket(origin="https://evil.example")
        preflight = await running.api.client.options(
            "/graphql", headers={"origin": "https://evil.example",
                                 "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers


async def test_the_older_graphql_ws_protocol_is_accepted(live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="legacy", stock=2)
    async with connect(f"ws://{live.address}/graphql",
                       subprotocols=["graphql-ws"]) as connection:  # type: ignore[list-item]
        await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await connection.recv())["type"] == "connection_ack"
        await connection.send(json.dumps({"id": "1", "type": "start", "payload": {
            "query": STOCK_UPDATED, "variables": {"ids": [product]}}}))
        message = json.loads(await asyncio.wait_for(connection.recv(), 10))
        assert message["type"] == "data"
        assert message["payload"]["data"]["stockUpdated"]["type"] == "SNAPSHOT"

"""Live results shared by a group of subscribers (schema/live_execution.py): executed and
encoded once, written as the same bytes to each, never across audiences, and still masked
when an event's execution fails; the hub fans a crowd out in batches, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from ordergraph.adapters import live_fanout as live_hub
from ordergraph.adapters.localstripe import LocalStripe
from ordergraph.resolvers.context import RequestContext
from ordergraph.schema import live_execution
from tests.api.test_live import STOCK_UPDATED, Live, serve
from tests.support import ADJUST_STOCK, settings_for
from tests.ws import SubscriptionError


@pytest.fixture
async def live(pg_url: str, stripe_emulator: LocalStripe) -> AsyncIterator[Live]:
    async for running in serve(settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)):
        yield running


async def _raw_next(socket, operation_id: str) -> str:
    """The next message for the operation as the server wrote it (text, before decoding)."""
    while True:
        raw = await asyncio.wait_for(socket.connection.recv(), 10)
        if json.loads(raw).get("id") == operation_id:
            return raw


async def test_one_groups_subscribers_get_the_same_bytes_and_audiences_stay_apart(
        live: Live) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="lamp", stock=7)
    first, second, staff = await live.socket(), await live.socket(), await live.socket(admin)
    for socket in (first, second, staff):  # read raw frames here instead
        socket._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await socket._reader
    subs = []
    for socket in (first, second, staff):
        subs.append(await socket.subscribe(STOCK_UPDATED, {"ids": [product]}))
        assert json.loads(await _raw_next(socket, subs[-1]))["payload"]["data"][
            "stockUpdated"]["type"] == "SNAPSHOT"
    # One more subscription on the first socket, so the group's ids differ ("1" and "2").
    extra = await first.subscribe(STOCK_UPDATED, {"ids": [product]})
    await _raw_next(first, extra)

    await api.gql(ADJUST_STOCK, {"productId": product, "delta": -2, "reason": "count"},
                  token=admin)

    # Two operations on one connection: their messages may come in either order.
    on_first = sorted([await asyncio.wait_for(first.connection.recv(), 10) for _ in range(2)])
    public_a, public_c = on_first
    public_b = await _raw_next(second, subs[1])
    staff_raw = await _raw_next(staff, subs[2])
    event = json.loads(public_a)
    change = event["payload"]["data"]["stockUpdated"]
    assert (change["type"], change["stock"]["available"], change["stock"]["reserved"]) == \
        ("STOCK_CHANGED", 5, None)
    # Same audience, same document: the same bytes, only the operation id differs.
    assert public_a == public_b
    assert public_c == public_a.replace('{"id":"1"', '{"id":"2"', 1)
    assert event == {"id": "1", "type": "next", "payload": {"data": {"stockUpdated": change}}}
    # The admin's result is their own: reserved is theirs to see, never the public's.
    staff_change = json.loads(staff_raw)["payload"]["data"]["stockUpdated"]
    assert staff_change["eventId"] == change["eventId"]
    assert staff_change["stock"]["reserved"] == 0
    for socket in (first, second, staff):
        await socket.connection.close()


async def test_a_failing_live_event_is_masked_with_the_request_id(
        live: Live, monkeypatch) -> None:
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="mug", stock=5)
    anonymous = await live.socket()
    sub = await anonymous.subscribe(STOCK_UPDATED, {"ids": [product]})
    assert (await anonymous.next(sub))["stockUpdated"]["type"] == "SNAPSHOT"
    real = RequestContext.is_admin

    async def broken(self: RequestContext) -> bool:
        if self.token is None:  # the anonymous subscriber's event, not the admin's mutation
            raise RuntimeError("a bug in a live field")
        return await real(self)

    monkeypatch.setattr(RequestContext, "is_admin", broken)
    await api.gql(ADJUST_STOCK, {"productId": product, "delta": 1, "reason": "count"},
                  token=admin)
    with pytest.raises(SubscriptionError) as failed:
        await anonymous.next(sub)
    assert failed.value.code == "INTERNAL_SERVER_ERROR"
    assert failed.value.errors[0]["message"].startswith("Unexpected error. Request id: ")
    assert "a bug" not in json.dumps(failed.value.errors)
    await anonymous.close()


async def test_a_crowd_larger_than_a_batch_gets_every_change_in_order(live: Live,
                                                                      monkeypatch) -> None:
    monkeypatch.setattr(live_hub, "DELIVERY_BATCH", 3)
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="pen", stock=100)
    sockets = [await live.socket() for _ in range(10)]
    subs = [await socket.subscribe(STOCK_UPDATED, {"ids": [product]}) for socket in sockets]
    for socket, sub in zip(sockets, subs, strict=True):
        assert (await socket.next(sub))["stockUpdated"]["type"] == "SNAPSHOT"
    await asyncio.sleep(live_hub.STOCK_COALESCE_SECONDS + 0.05)  # past the creation's window
    levels = []
    for delta in (-1, -2, -3):
        levels.append((await api.gql(ADJUST_STOCK, {"productId": product, "delta": delta,
                                                     "reason": "count"}, token=admin)
                       )["adjustStock"]["stock"]["available"])
    for socket, sub in zip(sockets, subs, strict=True):
        seen = [(await socket.next(sub))["stockUpdated"]["stock"]["available"]]
        while seen[-1] != levels[-1]:  # coalesced: the first at once, then the latest
            seen.append((await socket.next(sub))["stockUpdated"]["stock"]["available"])
        assert seen == sorted(seen, reverse=True)
        assert seen[0] == levels[0]
        await socket.close()


UPDATE_PRODUCT = """
mutation Update($id: ID!, $input: UpdateProductInput!) {
  updateProduct(id: $id, input: $input) { __typename }
}"""


async def test_direct_deliveries_match_the_usual_way_and_respect_on_sale(
        live: Live, monkeypatch) -> None:
    """One subscriber per loop turn: all but the first few of the crowd are written to
    directly with their group's result; they get what the usual way would send, and
    nothing once the product is off sale."""
    monkeypatch.setattr(live_hub, "DELIVERY_BATCH", 1)
    monkeypatch.setattr(live_hub, "DELIVERY_PAUSE", 0.02)  # the first's result is in by then
    api = live.api
    admin = await api.create_admin()
    product = await api.create_product(admin, sku="cup", stock=50)
    customer = await api.register("fan@example.com")
    sockets = [await live.socket(customer if n % 2 else None) for n in range(8)]
    staff = await live.socket(admin)
    subs = [await socket.subscribe(STOCK_UPDATED, {"ids": [product]}) for socket in sockets]
    staff_sub = await staff.subscribe(STOCK_UPDATED, {"ids": [product]})
    for socket, sub in [*zip(sockets, subs, strict=True), (staff, staff_sub)]:
        assert (await socket.next(sub))["stockUpdated"]["type"] == "SNAPSHOT"
    await asyncio.sleep(live_hub.STOCK_COALESCE_SECONDS + 0.05)
    sent = live_execution._DIRECT.sent
    for delta in (-1, -1):
        await api.gql(ADJUST_STOCK, {"productId": product, "delta": delta,
                                     "reason": "count"}, token=admin)
        await asyncio.sleep(live_hub.STOCK_COALESCE_SECONDS + 0.25)  # each on its own
    received = [[(await socket.next(sub))["stockUpdated"] for _ in range(2)]
                for socket, sub in zip(sockets, subs, strict=True)]
    assert live_execution._DIRECT.sent > sent  # the direct way was taken
    assert all(events == received[0] for events in received)
    assert [e["stock"]["available"] for e in received[0]] == [49, 48]
    assert all(e["stock"]["reserved"] is None for e in received[0])
    staff_events = [(await staff.next(staff_sub))["stockUpdated"] for _ in range(2)]
    assert [e["stock"]["reserved"] for e in staff_events] == [0, 0]
    assert [e["eventId"] for e in staff_events] == [e["eventId"] for e in received[0]]

    await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"active": False}}, token=admin)
    await api.gql(ADJUST_STOCK, {"productId": product, "delta": -1, "reason": "count"},
                  token=admin)
    assert (await staff.next(staff_sub))["stockUpdated"]["stock"]["available"] == 47
    for socket, sub in zip(sockets, subs, strict=True):
        assert await socket.nothing_for(sub, 0.1)
    for socket in [*sockets, staff]:
        await socket.close()

"""broadcaster's two verified failures, and the fixes that keep subscribers from being lost.

The `upstream_*` tests are strict xfails: they pass only while broadcaster 0.3.1 is broken as
STACK-NOTES.md says. If an upgrade fixes it, they fail, and the workaround can go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from broadcaster import Broadcast

from ordergraph.adapters import live as live_module
from ordergraph.adapters import live_fanout
from ordergraph.adapters.broadcast import SubscribeFirstRedisBackend, create_broadcast
from ordergraph.adapters.live import LiveHub
from ordergraph.adapters.live_subscription import SubscriberOverflow
from ordergraph.domain.ports_api import LiveMessage

REDIS_URL = "redis://127.0.0.1:6379"


def channel() -> str:
    return f"test-{uuid.uuid4().hex}"


async def received(subscriber: object, timeout: float) -> bool:
    try:
        await asyncio.wait_for(subscriber.get(), timeout)  # type: ignore[attr-defined]
    except TimeoutError:
        return False
    return True


@pytest.mark.xfail(strict=True, reason="broadcaster 0.3.1 RedisBackend with redis-py >= 8 "
                                       "never delivers")
async def test_upstream_redis_backend_delivers() -> None:
    name = channel()
    async with Broadcast(REDIS_URL) as broadcast, broadcast.subscribe(name) as subscriber:
        await asyncio.sleep(0.2)
        await broadcast.publish(name, "hello")
        assert await received(subscriber, 2)


async def test_subscribe_first_redis_backend_delivers() -> None:
    name = channel()
    async with create_broadcast(REDIS_URL) as broadcast, \
            broadcast.subscribe(name) as subscriber:
        await asyncio.sleep(0.2)
        await broadcast.publish(name, "hello")
        assert await received(subscriber, 2)


async def many_first_subscribers_of_one_channel(broadcast: Broadcast, count: int) -> int:
    name, ready, go = channel(), asyncio.Event(), asyncio.Event()
    entered = 0

    async def subscriber() -> bool:
        nonlocal entered
        async with broadcast.subscribe(name) as events:
            entered += 1
            if entered == count:
                ready.set()
            await go.wait()
            return await received(events, 2)

    tasks = [asyncio.create_task(subscriber()) for _ in range(count)]
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.2)
    await broadcast.publish(name, "news")
    go.set()
    return sum(await asyncio.gather(*tasks, return_exceptions=False))


@pytest.mark.xfail(strict=True, reason="broadcaster 0.3.1 Broadcast.subscribe races on a new "
                                       "channel: most concurrent first subscribers are lost")
async def test_upstream_concurrent_first_subscribers_all_receive() -> None:
    async with Broadcast(backend=SubscribeFirstRedisBackend(REDIS_URL)) as broadcast:
        assert await many_first_subscribers_of_one_channel(broadcast, 200) == 200


@pytest.fixture(params=["memory://", REDIS_URL])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LiveHub, str]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    live = LiveHub(request.param, prefix=prefix, queue_size=16, stock_coalesce_seconds=0)
    await live.start()
    try:
        yield live, prefix
    finally:
        await live.stop()


async def test_hub_delivers_to_200_subscribers_that_arrive_at_once(hub) -> None:
    live, prefix = hub
    ready, count = asyncio.Event(), 200
    entered = 0

    async def subscriber() -> str:
        nonlocal entered
        async with live.subscribe("orders", lambda p: p["order"]["id"] == 7) as feed:
            entered += 1
            if entered == count:
                ready.set()
            async for message in feed:
                return message.payload["type"]
        return "nothing"

    tasks = [asyncio.create_task(subscriber()) for _ in range(count)]
    await asyncio.wait_for(ready.wait(), 10)
    await live.publish(f"{prefix}orders:all",
                            '{"type": "ORDER_PAID", "order": {"id": 8}}')
    await live.publish(f"{prefix}orders:all",
                            '{"type": "ORDER_PAID", "order": {"id": 7}}')
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert results == ["ORDER_PAID"] * count
    assert live.subscriber_count == 0


async def test_a_slow_subscriber_cannot_hold_up_the_others(hub) -> None:
    live, prefix = hub
    got: list[int] = []

    async def fast() -> None:
        async with live.subscribe("stock", lambda p: True) as feed:
            async for message in feed:
                got.append(message.payload["n"])
                if len(got) == 50:
                    return

    async with live.subscribe("stock", lambda p: True) as slow:
        reader = asyncio.create_task(fast())
        await asyncio.sleep(0.1)
        for n in range(50):
            await live.publish(f"{prefix}stock:all", f'{{"n": {n}}}')
            await asyncio.sleep(0.005)  # a steady stream, which a reading subscriber keeps up with
        await asyncio.wait_for(reader, 10)
        assert got == list(range(50))
        # The slow one (queue of 16) overflowed: told to start over, not silently skipped.
        with pytest.raises(SubscriberOverflow):
            async for _ in slow:
                pass


async def test_subscription_messages_share_one_cache_per_event(hub) -> None:
    live, prefix = hub
    seen: list[LiveMessage] = []

    async def one() -> None:
        async with live.subscribe("stock", lambda p: True) as feed:
            async for message in feed:
                seen.append(message)
                return

    tasks = [asyncio.create_task(one()) for _ in range(3)]
    await asyncio.sleep(0.1)
    await live.publish(f"{prefix}stock:all", '{"n": 1}')
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert len({id(message.cache) for message in seen}) == 1


def break_connection(live: LiveHub) -> None:
    """What a dropped connection does: on Redis the backend's own listener task dies (with
    ConnectionError); broadcaster's outer listener waits on a queue and never ends. In memory
    there is only the outer one."""
    backend_listener = getattr(live._connection.broadcast._backend, "_listener", None)
    (backend_listener or live._connection.broadcast._listener_task).cancel()


async def until(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_hub_reconnects_when_its_connection_breaks(hub) -> None:
    live, prefix = hub
    async with live.subscribe("stock", lambda p: True) as old:
        break_connection(live)
        await until(lambda: live.reconnects == 1 and live.healthy)
        # The subscriber from before the break is told to re-read what it missed...
        first = await asyncio.wait_for(anext(aiter(old)), 5)
        assert first.payload == {"kind": "resync"}
        # ...and hears events published after it.
        await live.publish(f"{prefix}stock:all", '{"n": 5}')
        after = await asyncio.wait_for(anext(aiter(old)), 5)
        assert after.payload == {"n": 5}
    assert live.status()["state"] == "up"


async def test_a_connection_that_delivers_nothing_is_rebuilt(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A partition or a wedged Redis ends no task; the hub's own heartbeats stop coming back."""
    monkeypatch.setattr(live_module, "HEARTBEAT_TIMEOUT", 1.5)
    live = LiveHub(REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    await live.start()
    try:
        with monkeypatch.context() as deaf:
            deaf.setattr(live, "_heard_from_hub", lambda payload: None)
            await until(lambda: live.reconnects >= 1)
        assert any("no heartbeat came back" in record.getMessage()
                   for record in caplog.records)
        assert live.healthy
    finally:
        await live.stop()


async def test_stopping_during_a_reconnect_does_not_hang() -> None:
    """The supervisor, cancelled while it waits for a dead connection's listener to finish,
    must end: swallowing that cancellation once left stop() (and the server's shutdown)
    waiting forever."""
    live = LiveHub("memory://")
    await live.start()
    closing, release = asyncio.Event(), asyncio.Event()

    async def slow_to_finish() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            closing.set()
            await release.wait()  # e.g. a listener still unsubscribing
            raise

    live._connection.broadcast._listener_task.cancel()
    live._connection.broadcast._listener_task = asyncio.create_task(slow_to_finish())
    stopping: asyncio.Task[None] | None = None
    try:
        live._connection.pumps[0].cancel()  # the connection "drops"; the supervisor closes it
        await asyncio.wait_for(closing.wait(), 5)
        stopping = asyncio.create_task(live.stop())
        await asyncio.sleep(0)  # stop() cancels the supervisor inside that wait
        release.set()
        done, _ = await asyncio.wait([stopping], timeout=3)  # (wait_for would cancel it)
        assert stopping in done
        assert live._supervisor.done()
    finally:
        release.set()
        for task in (live._supervisor, stopping):
            if task is not None:
                task.cancel()


async def test_the_hub_reports_degraded_and_drops_publishes_while_down(hub) -> None:
    live, prefix = hub
    live._supervisor.cancel()  # hold it in the outage: nothing reconnects
    with contextlib.suppress(asyncio.CancelledError):
        await live._supervisor
    break_connection(live)
    live._went_down("test outage")
    status = live.status()
    assert (status["state"], status["error"]) == ("degraded", "test outage")
    # A publish after commit must not fail (or wait) while the broadcast is down.
    await asyncio.wait_for(live.publish(f"{prefix}stock:all", '{"n": 1}'), 1)


async def test_a_subscriber_is_told_to_resync_once_however_often_asked() -> None:
    live = LiveHub("memory://", stock_coalesce_seconds=0)
    async with live.subscribe("stock", lambda p: True) as feed:
        live.resync_subscribers()
        live.resync_subscribers()
        feed.offer(LiveMessage(payload={"n": 1}, cache={}))
        got = [await anext(aiter(feed)), await anext(aiter(feed))]
    assert [message.payload for message in got] == [{"kind": "resync"}, {"n": 1}]


async def test_stopping_the_hub_completes_its_subscribers(hub) -> None:
    live, _ = hub

    async def listen() -> str:
        async with live.subscribe("orders", lambda p: True) as feed:
            async for _ in feed:
                return "message"
        return "completed"

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.1)
    await live.stop()
    assert await asyncio.wait_for(task, 5) == "completed"


async def test_stock_changes_are_coalesced_per_product() -> None:
    """During a flash sale a watcher gets the first change at once, then the latest level at
    most every interval: not every step, never a stale last word."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    live = LiveHub("memory://", prefix=prefix, stock_coalesce_seconds=0.2)
    await live.start()
    try:
        received: list[tuple[int, int]] = []

        async def watch() -> None:
            async with live.subscribe("stock", lambda p: True) as feed:
                async for message in feed:
                    received.append((message.payload["product_id"],
                                     message.payload["available"]))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        for available in range(10, 0, -1):
            await live.publish(f"{prefix}stock:all",
                               f'{{"product_id": 1, "available": {available}}}')
        await live.publish(f"{prefix}stock:all", '{"product_id": 2, "available": 7}')
        await asyncio.sleep(0.6)
        watcher.cancel()
        assert received[0] == (1, 10)  # the first change goes out at once
        assert (2, 7) in received  # other products are not held back
        assert [level for product, level in received if product == 1] == [10, 1]
    finally:
        await live.stop()


async def test_a_crowd_gets_stock_changes_less_often_but_always_the_latest() -> None:
    """A product watched by a crowd in the process has its changes held back longer
    (STOCK_SECONDS_PER_WATCHER each: 600 watchers, 0.3 s) so that fanning them out cannot
    take the checkouts' CPU; each watcher still gets the first change at once and the last
    level in the end. A product watched by one, changing as often meanwhile: the base
    interval."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    live = LiveHub("memory://", prefix=prefix, stock_coalesce_seconds=0.02)
    await live.start()
    seen: dict[int, list[list[int]]] = {2: [[] for _ in range(600)], 3: [[]]}
    try:
        async with contextlib.AsyncExitStack() as stack:
            feeds = [(product, index, await stack.enter_async_context(live.subscribe(
                "stock", lambda p, wanted=product: p["product_id"] == wanted)))
                for product, watchers in seen.items() for index in range(len(watchers))]
            interval = live._fanout.stock_interval
            assert interval({"product_id": 2}) == pytest.approx(
                600 * live_fanout.STOCK_SECONDS_PER_WATCHER)
            assert interval({"product_id": 3}) == 0.02  # one watcher: the base interval
            assert interval({"product_id": 4}) == 0.02  # nobody

            async def watch(product: int, index: int, feed: Any) -> None:
                async for message in feed:
                    seen[product][index].append(message.payload["available"])

            tasks = [asyncio.create_task(watch(*feed)) for feed in feeds]
            started = time.monotonic()
            for available in range(60, 0, -1):  # both change every 10 ms for 0.6 s or more
                for product in seen:
                    await live.publish(f"{prefix}stock:all", json.dumps(
                        {"product_id": product, "available": available}))
                await asyncio.sleep(0.01)
            took = time.monotonic() - started
            await asyncio.sleep(0.8)  # past the last interval
            for task in tasks:
                task.cancel()
    finally:
        await live.stop()

    alone = seen[3][0]
    assert (alone[0], alone[-1]) == (60, 1)
    assert len(alone) >= 10, alone  # ~every 20 ms
    for levels in seen[2]:
        assert (levels[0], levels[-1]) == (60, 1)  # the first at once, the last in the end
        assert len(levels) <= took / 0.3 + 2, (levels, took)  # ~every 0.3 s
    assert len({tuple(levels) for levels in seen[2]}) == 1  # every watcher the same levels

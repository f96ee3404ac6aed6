"""The process's live hub: one broadcast subscription per wide channel, local fan-out.

broadcaster's `Broadcast.subscribe` races when many clients subscribe to a new channel at once
(it checks whether the channel exists, then awaits the backend before registering the queue:
STACK-NOTES.md measured 1 of 200 registered), and one backend subscription per order does not
scale. So the hub subscribes once, at startup, to `orders:all`, `stock:all` and `users:all`
(role changes, which `on_event` listeners hear before any later event is fanned out), parses each
message once, and hands it to the interested subscribers' bounded queues without waiting: a
slow subscriber overflows its own queue (and is told to resubscribe); it never holds up others.

No broadcaster backend reconnects by itself; the hub watches its connection and builds a new
one when it breaks (a Redis restart), so a long-running instance heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from broadcaster import Broadcast

from ordergraph.adapters.broadcast import create_broadcast
from ordergraph.adapters.publisher import ALL_ORDERS_CHANNEL, ALL_STOCK_CHANNEL, ALL_USERS_CHANNEL
from ordergraph.domain.ports import LiveMessage

log = logging.getLogger(__name__)

TOPICS = {"orders": ALL_ORDERS_CHANNEL, "stock": ALL_STOCK_CHANNEL, "users": ALL_USERS_CHANNEL}
QUEUE_SIZE = 256
# A product's stock changes reach its subscribers at most this often (the first at once, then
# the latest level at the end of each interval): during a flash sale every checkout changes
# the hot product's stock, and fanning each change out to every watcher would starve the
# checkouts themselves (bench/RESULTS.md). Subscribers need the level, not every step.
STOCK_COALESCE_SECONDS = 0.25
HEALTH_CHECK_SECONDS = 1.0


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it should resubscribe (and refetch)."""


_OVERFLOW = object()
_CLOSED = object()


class Subscription:
    """One subscriber's bounded backlog of the events it wants.

    A deque and one waiter rather than an asyncio.Queue: a thousand idle subscribers each
    holding a queue's four deques and an event cost more memory than everything else they
    hold (bench/RESULTS.md).
    """

    __slots__ = ("_backlog", "_size", "_waiter", "wants")

    def __init__(self, wants: Callable[[dict[str, Any]], bool], size: int) -> None:
        self.wants = wants
        self._size = size
        self._backlog: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, message: LiveMessage) -> None:
        if self._backlog is None:
            self._backlog = deque()
        if len(self._backlog) >= self._size:
            # Never wait for a slow reader: drop its backlog and tell it to start over.
            self._replace_backlog(_OVERFLOW)
            return
        self._backlog.append(message)
        self._wake()

    def close(self) -> None:
        """End the stream (the server is shutting down): the client sees it complete."""
        self._replace_backlog(_CLOSED)

    def _replace_backlog(self, item: object) -> None:
        self._backlog = deque([item])
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[LiveMessage]:
        while True:
            while not self._backlog:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            item = self._backlog.popleft()
            if item is _CLOSED:
                return
            if item is _OVERFLOW:
                raise SubscriberOverflow("Too many updates were missed; subscribe again.")
            yield item


async def _close(broadcast: Broadcast) -> None:
    """Close a Broadcast, broken or not. (Broadcast.disconnect re-raises a dead listener's
    error before closing its backend, which would leak the Redis connections.)"""
    listener = getattr(broadcast, "_listener_task", None)
    if listener is not None:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
    try:
        await broadcast._backend.disconnect()
    except Exception:
        log.debug("closing a broken broadcast connection failed", exc_info=True)


class LiveHub:
    """Publishes events and fans them out to this process's subscribers."""

    def __init__(self, url: str, *, prefix: str = "", queue_size: int = QUEUE_SIZE,
                 factory: Callable[[str], Broadcast] = create_broadcast,
                 stock_coalesce_seconds: float = STOCK_COALESCE_SECONDS) -> None:
        self._url = url
        self._coalesce = stock_coalesce_seconds
        self._held_stock: dict[Any, dict[str, Any] | None] = {}
        self._prefix = prefix
        self._queue_size = queue_size
        self._factory = factory
        self._broadcast: Broadcast | None = None
        self._subscribers: dict[str, set[Subscription]] = {topic: set() for topic in TOPICS}
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = \
            {topic: [] for topic in TOPICS}
        self._pumps: list[asyncio.Task[None]] = []
        self._ready = {topic: asyncio.Event() for topic in TOPICS}
        self._supervisor: asyncio.Task[None] | None = None
        self.reconnects = 0

    # ---- lifecycle ----

    async def start(self) -> None:
        """Connect and subscribe to the wide channels; returns once they are listening."""
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="live-hub-supervisor")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.close()
        await self._disconnect()

    @property
    def healthy(self) -> bool:
        """Connected and listening on every wide channel (for /readyz)."""
        return self._broadcast is not None and not self._broken() and \
            bool(self._pumps) and all(not pump.done() for pump in self._pumps) and \
            all(event.is_set() for event in self._ready.values())

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    async def _connect(self) -> None:
        broadcast = self._factory(self._url)
        await broadcast.connect()
        self._broadcast = broadcast
        for event in self._ready.values():
            event.clear()
        self._pumps = [asyncio.create_task(self._pump(broadcast, topic, self._prefix + channel),
                                           name=f"live-hub-{topic}")
                       for topic, channel in TOPICS.items()]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._ready.values())), 10)

    async def _disconnect(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        for pump in self._pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        self._pumps = []
        broadcast, self._broadcast = self._broadcast, None
        if broadcast is not None:
            await _close(broadcast)

    def _broken(self) -> bool:
        # broadcaster 0.3.1 (pinned) runs one listener task per Broadcast; when its connection
        # drops, that task ends and nothing more is ever delivered.
        listener = getattr(self._broadcast, "_listener_task", None)
        return listener is not None and listener.done()

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_CHECK_SECONDS)
            if self._broadcast is not None and not self._broken() and \
                    all(not pump.done() for pump in self._pumps):
                continue
            log.warning("live hub lost its broadcast connection; reconnecting")
            await self._disconnect()
            try:
                await self._connect()
            except Exception:
                log.exception("live hub could not reconnect; trying again")
                await self._disconnect()
            else:
                self.reconnects += 1

    # ---- publishing and fan-out ----

    async def publish(self, channel: str, message: str) -> None:
        if self._broadcast is None:
            raise ConnectionError("the live hub is not connected")
        await self._broadcast.publish(channel, message)

    async def _pump(self, broadcast: Broadcast, topic: str, channel: str) -> None:
        async with broadcast.subscribe(channel) as events:
            self._ready[topic].set()
            async for event in events:  # type: ignore[union-attr]
                if event is not None:
                    self._dispatch(topic, event.message)

    def _dispatch(self, topic: str, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed live message on %s", topic)
            return
        if topic == "stock" and self._coalesce > 0:
            self._coalesce_stock(payload)
            return
        self._deliver(topic, payload)

    def _coalesce_stock(self, payload: dict[str, Any]) -> None:
        product = payload.get("product_id")
        if product in self._held_stock:  # an interval is running: keep only the latest
            self._held_stock[product] = payload
            return
        self._deliver("stock", payload)
        self._held_stock[product] = None
        asyncio.get_running_loop().call_later(self._coalesce, self._release_stock, product)

    def _release_stock(self, product: Any) -> None:
        latest = self._held_stock.pop(product, None)
        if latest is not None:
            self._deliver("stock", latest)
            self._held_stock[product] = None
            asyncio.get_running_loop().call_later(self._coalesce, self._release_stock, product)

    def on_event(self, topic: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` with each of the topic's events as it arrives, synchronously (so
        it has run before any event published after it reaches a subscriber)."""
        self._listeners[topic].append(listener)

    def _deliver(self, topic: str, payload: dict[str, Any]) -> None:
        for listener in self._listeners[topic]:
            try:
                listener(payload)
            except Exception:
                log.exception("a live listener failed")
        message = LiveMessage(payload=payload, cache={})
        for subscription in list(self._subscribers[topic]):
            try:
                wanted = subscription.wants(payload)
            except Exception:
                log.exception("a live filter failed")
                continue
            if wanted:
                subscription.offer(message)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, wants: Callable[[dict[str, Any]], bool]
                        ) -> AsyncIterator[Subscription]:
        subscription = Subscription(wants, self._queue_size)
        self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[topic].discard(subscription)

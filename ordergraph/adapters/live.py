"""The process's live hub: one broadcast subscription per wide channel, local fan-out.

broadcaster's `Broadcast.subscribe` races when many clients subscribe to a new channel at once
(it checks whether the channel exists, then awaits the backend before registering the queue:
STACK-NOTES.md measured 1 of 200 registered), and one backend subscription per order does not
scale. So the hub subscribes once, at startup, to `orders:all` and `stock:all`, parses each
message once, and hands it to the interested subscribers' bounded queues without waiting: a
slow subscriber overflows its own queue (and is told to resubscribe); it never holds up others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from broadcaster import Broadcast

from ordergraph.adapters.publisher import ALL_ORDERS_CHANNEL, ALL_STOCK_CHANNEL
from ordergraph.domain.ports import LiveMessage

log = logging.getLogger(__name__)

TOPICS = {"orders": ALL_ORDERS_CHANNEL, "stock": ALL_STOCK_CHANNEL}
QUEUE_SIZE = 256
RESUBSCRIBE_DELAY_SECONDS = 1.0


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it should resubscribe (and refetch)."""


_OVERFLOW = object()


class Subscription:
    """One subscriber's bounded queue of the events it wants."""

    def __init__(self, wants: Callable[[dict[str, Any]], bool], size: int) -> None:
        self.wants = wants
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)

    def offer(self, message: LiveMessage) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            # Never wait for a slow reader: drop its backlog and tell it to start over.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_OVERFLOW)

    async def __aiter__(self) -> AsyncIterator[LiveMessage]:
        while True:
            item = await self._queue.get()
            if item is _OVERFLOW:
                raise SubscriberOverflow("Too many updates were missed; subscribe again.")
            yield item


class LiveHub:
    def __init__(self, broadcast: Broadcast, *, prefix: str = "",
                 queue_size: int = QUEUE_SIZE) -> None:
        self._broadcast = broadcast
        self._prefix = prefix
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {topic: set() for topic in TOPICS}
        self._pumps: list[asyncio.Task[None]] = []
        self._ready: dict[str, asyncio.Event] = {}
        self.delivered = 0

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    async def start(self) -> None:
        """Subscribe to the wide channels; returns once they are listening."""
        for topic, channel in TOPICS.items():
            self._ready[topic] = asyncio.Event()
            self._pumps.append(asyncio.create_task(self._pump(topic, self._prefix + channel),
                                                   name=f"live-hub-{topic}"))
        await asyncio.gather(*(event.wait() for event in self._ready.values()))

    async def stop(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        for pump in self._pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self._pumps.clear()

    async def _pump(self, topic: str, channel: str) -> None:
        while True:
            try:
                async with self._broadcast.subscribe(channel) as events:
                    self._ready[topic].set()
                    async for event in events:  # type: ignore[union-attr]
                        if event is not None:
                            self._dispatch(topic, event.message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live hub lost %s; subscribing again", channel)
                await asyncio.sleep(RESUBSCRIBE_DELAY_SECONDS)

    def _dispatch(self, topic: str, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed live message on %s", topic)
            return
        message = LiveMessage(payload=payload, cache={})
        for subscription in list(self._subscribers[topic]):
            try:
                wanted = subscription.wants(payload)
            except Exception:
                log.exception("a live filter failed")
                continue
            if wanted:
                subscription.offer(message)
                self.delivered += 1

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, wants: Callable[[dict[str, Any]], bool]
                        ) -> AsyncIterator[Subscription]:
        subscription = Subscription(wants, self._queue_size)
        self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[topic].discard(subscription)

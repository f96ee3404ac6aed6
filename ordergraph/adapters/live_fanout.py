"""The live hub's fan-out: the queue that offers every event to the interested subscribers
in batches, in the order the hub heard them, and the stock coalescing before it.

`adapters/live.py` (the hub) owns the broadcast connection and hands each event it hears or
publishes to one `Fanout`; each subscriber's bounded backlog is `adapters/live_subscription.py`
(a slow subscriber overflows its own, it never holds up others).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from ordergraph.adapters import metrics
from ordergraph.adapters.live_subscription import QUEUE_SIZE, RESYNC_KIND, Subscription
from ordergraph.domain.ports_api import LiveMessage

log = logging.getLogger(__name__)

# A product's stock changes reach its subscribers at most this often (the first at once, then
# the latest level at the end of each interval): during a flash sale every checkout changes
# the hot product's stock, and fanning each change out to every watcher would starve the
# checkouts themselves (bench/RESULTS.md). Subscribers need the level, not every step.
STOCK_COALESCE_SECONDS = 0.25
# ... and, with a crowd, at most every this many seconds per subscriber of this process
# watching the product (1,000 watchers: 0.5 s), up to STOCK_MAX_COALESCE_SECONDS: each
# change costs the loop ~30-50 µs per watcher, two thirds of it the socket write itself
# (bench/RESULTS.md), so a fixed interval would let a big enough crowd take every checkout's
# CPU. This keeps one hot product's fan-out under a tenth of the loop up to 4,000 watchers
# per process; more processes (`--workers`, instances) each count their own.
STOCK_SECONDS_PER_WATCHER = 0.0005
STOCK_MAX_COALESCE_SECONDS = 2.0
# One event reaches this many subscribers per turn of the event loop; the rest are offered on
# the next turns, in order. Each subscriber offered an event runs its whole send on the loop
# (~50-100 µs), so a thousand at once would hold every checkout's next database round trip
# for as long (bench/RESULTS.md, flash sale): in batches, checkouts run between them. Small
# batches matter most to the checkout holding the hot product's row lock: each of its round
# trips waits behind at most one batch, and everyone queues behind its lock. 10 rather than
# 50 took the flash sale's p99 with 1,000 watchers from 4-5x to 0.9-1.4x the p99 without,
# and one change to 1,000 subscribers no later (bench/RESULTS.md).
DELIVERY_BATCH = 10
DELIVERY_PAUSE = 0.0  # seconds between batches (tests slow a fan-out down with it)


def stock_hold_seconds(audience: int, *, coalesce: float = STOCK_COALESCE_SECONDS,
                       per_watcher: float = STOCK_SECONDS_PER_WATCHER) -> float:
    """How long a product's changes are held back after one goes out to `audience`
    watchers of this process (the bench spaces its changes past it)."""
    return max(coalesce, min(STOCK_MAX_COALESCE_SECONDS, audience * per_watcher))


class Fanout:
    """This process's subscribers by topic, the listeners that hear each event first, and the
    queue of fan-outs still to be offered."""

    def __init__(self, topics: Iterable[str], *, queue_size: int = QUEUE_SIZE,
                 stock_coalesce_seconds: float = STOCK_COALESCE_SECONDS,
                 stock_seconds_per_watcher: float = STOCK_SECONDS_PER_WATCHER) -> None:
        self._queue_size = queue_size
        self._coalesce = stock_coalesce_seconds
        self._per_watcher = stock_seconds_per_watcher
        self._held_stock: dict[Any, dict[str, Any] | None] = {}
        self._subscribers: dict[str, set[Subscription]] = {topic: set() for topic in topics}
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = \
            {topic: [] for topic in self._subscribers}
        self._change_listeners: list[tuple[frozenset[str], Callable[[str], None]]] = []
        # Fan-outs waiting for their turn, oldest first (see _drain): (topic or None for a
        # resync, the message, its subscribers still to be offered it once started).
        self._deliveries: deque[list[Any]] = deque()
        self._draining = False
        self._stopped = False

    def close(self) -> None:
        """Drop what is queued and end every subscription (the hub is stopping)."""
        self._stopped = True
        self._deliveries.clear()
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.close()

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    def resync(self) -> None:
        """Tell every subscriber to re-read what it shows (after the events already on their
        way to them)."""
        self._enqueue(None, LiveMessage(payload={"kind": RESYNC_KIND}, cache={}))
        metrics.LIVE_RESYNCS.inc()

    def heard(self, topic: str, payload: dict[str, Any]) -> None:
        """An event from the broadcast: change listeners at once, then (stock coalesced) the
        topic's listeners and subscribers."""
        self.changed(topic)
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
        self._hold_stock(product, payload)

    def _release_stock(self, product: Any) -> None:
        latest = self._held_stock.pop(product, None)
        if latest is not None:
            self._deliver("stock", latest)
            self._hold_stock(product, latest)

    def _hold_stock(self, product: Any, payload: dict[str, Any]) -> None:
        """Keep the product's next changes back for one interval (see stock_interval)."""
        self._held_stock[product] = None
        asyncio.get_running_loop().call_later(self.stock_interval(payload),
                                              self._release_stock, product)

    def stock_interval(self, payload: dict[str, Any]) -> float:
        """How long the changes of a stock event's product are held back after it goes out:
        the base interval, or longer for a crowd watching that product (0.5 ms a watcher,
        at most 2 s). Counting them asks every stock subscriber, as its fan-out does."""
        if self._per_watcher <= 0:
            return self._coalesce
        audience = sum(1 for subscription in self._subscribers["stock"]
                       if self._wanted(subscription, payload))
        return stock_hold_seconds(audience, coalesce=self._coalesce,
                                  per_watcher=self._per_watcher)

    def on_change(self, topics: set[str], listener: Callable[[str], None]) -> None:
        """Call `listener(topic)` as soon as an event of one of the topics is published here
        or heard from the broadcast, before any coalescing or queueing (a cache of what the
        event changed must forget it at once)."""
        self._change_listeners.append((frozenset(topics), listener))

    def changed(self, topic: str) -> None:
        for topics, listener in self._change_listeners:
            if topic in topics:
                try:
                    listener(topic)
                except Exception:
                    log.exception("a live change listener failed")

    def on_event(self, topic: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener` with each of the topic's events as it arrives, synchronously (so
        it has run before any event published after it reaches a subscriber)."""
        self._listeners[topic].append(listener)

    def _deliver(self, topic: str, payload: dict[str, Any]) -> None:
        self._enqueue(topic, LiveMessage(payload=payload, cache={}))

    def _enqueue(self, topic: str | None, message: LiveMessage) -> None:
        """Fan a message out after every message before it, in batches of DELIVERY_BATCH
        subscribers per turn of the loop. A fan-out that fits one batch, with nothing queued
        before it, is done before this returns."""
        self._deliveries.append([topic, message, None])
        if not self._draining:
            self._drain()

    def _drain(self) -> None:
        """Offer the oldest fan-outs to up to DELIVERY_BATCH subscribers; come back on the
        next turn of the loop for the rest. One queue for every topic, so each subscriber
        gets its messages in the order the hub heard them, and a topic's listeners hear an
        event before any later event reaches a subscriber."""
        self._draining = True
        budget = DELIVERY_BATCH
        try:
            while self._deliveries and budget > 0:
                delivery = self._deliveries[0]
                topic, message, pending = delivery
                if pending is None:  # its turn has come: listeners first, then subscribers
                    pending = delivery[2] = self._starting(topic, message)
                while pending and budget > 0:
                    subscription = pending.pop()
                    if topic is None:
                        subscription.resync(message)
                        budget -= 1
                    elif self._wanted(subscription, message.payload):
                        subscription.offer(message)
                        budget -= 1
                if not pending:
                    self._deliveries.popleft()
        finally:
            if self._deliveries and not self._stopped:
                loop = asyncio.get_running_loop()
                if DELIVERY_PAUSE:
                    loop.call_later(DELIVERY_PAUSE, self._drain)
                else:
                    loop.call_soon(self._drain)
            else:
                self._draining = False

    def _starting(self, topic: str | None, message: LiveMessage) -> list[Subscription]:
        if topic is None:
            return [subscription for subscribers in self._subscribers.values()
                    for subscription in subscribers]
        for listener in self._listeners[topic]:
            try:
                listener(message.payload)
            except Exception:
                log.exception("a live listener failed")
        return list(self._subscribers[topic])

    @staticmethod
    def _wanted(subscription: Subscription, payload: dict[str, Any]) -> bool:
        try:
            return subscription.wants(payload)
        except Exception:
            log.exception("a live filter failed")
            return False

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, wants: Callable[[dict[str, Any]], bool]
                        ) -> AsyncIterator[Subscription]:
        subscription = Subscription(wants, self._queue_size)
        self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers[topic].discard(subscription)

"""The process's live hub: one broadcast subscription per wide channel, local fan-out.

The hub subscribes once, at startup, to `orders:all`, `stock:all`, `products:all` and
`users:all` (role changes, which `on_event` listeners hear before any later event is fanned
out) through one connection (`adapters/live_connection.py`), parses each message once, and
hands it to the interested subscribers' bounded backlogs without waiting
(`adapters/live_fanout.py`, `adapters/live_subscription.py`): a slow subscriber overflows its
own backlog (and is told to resubscribe); it never holds up others. This module is the
supervision of that connection; publishing through it is `adapters/live_publishing.py`.

No broadcaster backend reconnects by itself, and with Redis the task that dies when the
connection drops is the backend's own listener (broadcaster's outer listener waits on a queue
forever). The hub's supervisor watches both, rebuilds the connection with backoff (a Redis
restart), and then tells every subscriber to re-read what it shows (a "resync" message): events
published while the hub was deaf are lost, so a fresh snapshot is the only way to be right
again. A hub that could not publish announces a resync to every instance once it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from broadcaster import Broadcast

from ordergraph.adapters import metrics
from ordergraph.adapters.broadcast import create_broadcast, why_ended
from ordergraph.adapters.live_connection import CONNECT_TIMEOUT, HubConnection
from ordergraph.adapters.live_fanout import STOCK_COALESCE_SECONDS, Fanout
from ordergraph.adapters.live_publishing import PUBLISH_TIMEOUT, Publishing
from ordergraph.adapters.live_subscription import QUEUE_SIZE, RESYNC_KIND, Subscription
from ordergraph.adapters.publisher import (
    ALL_ORDERS_CHANNEL,
    ALL_PRODUCTS_CHANNEL,
    ALL_STOCK_CHANNEL,
    ALL_USERS_CHANNEL,
)

log = logging.getLogger(__name__)

TOPICS = {"orders": ALL_ORDERS_CHANNEL, "stock": ALL_STOCK_CHANNEL, "users": ALL_USERS_CHANNEL,
          "products": ALL_PRODUCTS_CHANNEL}
# Hub to hub: "I could not publish for a while; everyone re-read" (not for subscribers).
CONTROL_TOPIC = "control"
CHANNELS = {**TOPICS, CONTROL_TOPIC: "hub:control"}
HEALTH_CHECK_SECONDS = 1.0
# Each hub sends itself a heartbeat through the broadcast every check: a connection that
# stays open but delivers nothing (a network partition, a wedged Redis) ends no task, so
# silence for this long counts as a broken connection too.
HEARTBEAT_TIMEOUT = 10.0
HEARTBEAT_KIND = "heartbeat"
# Reconnecting: at once, then after 0.25 s, 0.5 s, ... at most 2 s apart (with jitter, so the
# instances of a fleet do not knock on a restarted Redis in step). A refused connection costs
# Redis next to nothing, and live updates come back at most ~2 s after Redis does.
RECONNECT_FIRST_DELAY = 0.25
RECONNECT_MAX_DELAY = 2.0


class LiveHub:
    """Publishes events and fans them out to this process's subscribers."""

    def __init__(self, url: str, *, prefix: str = "", queue_size: int = QUEUE_SIZE,
                 factory: Callable[[str], Broadcast] = create_broadcast,
                 stock_coalesce_seconds: float = STOCK_COALESCE_SECONDS) -> None:
        self._url = url
        self._id = uuid.uuid4().hex
        self._fanout = Fanout(TOPICS, queue_size=queue_size,
                              stock_coalesce_seconds=stock_coalesce_seconds)
        self._prefix = prefix
        self._factory = factory
        self._connection: HubConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopped = False
        self._down_since: float | None = None  # monotonic time the outage began
        self._last_error: str | None = None
        self._publishing = Publishing()
        self._heard_at = 0.0  # when our last heartbeat came back
        self.reconnects = 0

    # ---- lifecycle ----

    async def start(self) -> None:
        """Connect and subscribe to the wide channels; returns once they are listening."""
        try:
            await self._connect()
        except BaseException:
            await self._disconnect()
            raise
        metrics.LIVE_HUB_UP.set(1)
        self._supervisor = asyncio.create_task(self._supervise(), name="live-hub-supervisor")

    async def stop(self) -> None:
        self._stopped = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor], timeout=CONNECT_TIMEOUT)
            if not self._supervisor.done():  # shutdown must not hang on it
                log.warning("the live hub's supervisor did not stop in time")
        self._fanout.close()
        await self._disconnect()

    @property
    def healthy(self) -> bool:
        """Connected and listening on every wide channel."""
        return self._connection is not None and self._down_since is None and \
            self._connection.listening()

    def status(self) -> dict[str, Any]:
        """For /readyz: "up"; "degraded" while it reconnects (checkouts go on, live
        updates pause, subscribers get fresh snapshots after); "down" once stopped."""
        if self._stopped or self._supervisor is None:
            return {"state": "down"}
        if self.healthy:
            return {"state": "up", "reconnects": self.reconnects}
        down_since = self._down_since if self._down_since is not None else time.monotonic()
        return {"state": "degraded", "reconnects": self.reconnects,
                "down_seconds": round(time.monotonic() - down_since, 1),
                "error": self._last_error or "listener ended"}

    @property
    def subscriber_count(self) -> int:
        return self._fanout.subscriber_count

    async def _connect(self) -> None:
        connection = HubConnection(
            self._factory(self._url),
            {topic: self._prefix + channel for topic, channel in CHANNELS.items()},
            self._dispatch)
        self._connection = connection  # set first: a half-made connection is closed too
        await connection.open()
        self._heard_at = time.monotonic()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _watched(self) -> list[asyncio.Task[Any]]:
        """Every task that ends when the connection stops receiving."""
        return self._connection.watched() if self._connection is not None else []

    # ---- supervision: detect, reconnect, resync ----

    async def _supervise(self) -> None:
        while True:
            try:
                await self._heal_next_break()
            except Exception:  # a bug here must not end the healing for good
                log.exception("the live hub's supervisor failed; it goes on")
                await asyncio.sleep(HEALTH_CHECK_SECONDS)

    async def _heal_next_break(self) -> None:
        reason = await self._until_broken()
        if self._down_since is None:
            self._went_down(reason)
        await self._reconnect()
        self._came_back()
        await self._announce_resync()

    async def _until_broken(self) -> str:
        """Wait for the connection to stop receiving (a task ends, or our heartbeats stop
        coming back); meanwhile, once publishing works again after a failure, tell the other
        instances to resync."""
        while True:
            watched = self._watched()
            if not watched:
                return self._last_error or "not connected"
            done, _ = await asyncio.wait(watched, timeout=HEALTH_CHECK_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if done:
                return why_ended(done)
            silent = time.monotonic() - self._heard_at
            if silent > HEARTBEAT_TIMEOUT:
                return f"no heartbeat came back for {silent:.0f} s"
            await self._control(HEARTBEAT_KIND)
            if self._publishing.failed:
                await self._announce_resync()

    def _went_down(self, reason: str) -> None:
        self._down_since = time.monotonic()
        self._last_error = reason
        metrics.LIVE_HUB_UP.set(0)
        metrics.LIVE_HUB_OUTAGES.inc()
        log.warning("live hub lost its broadcast connection (%s); live updates pause until it "
                    "reconnects", reason)

    async def _reconnect(self) -> None:
        """Build a new connection, at once and then with backoff, until one listens."""
        delay = RECONNECT_FIRST_DELAY
        while True:
            await self._disconnect()
            try:
                await self._connect()
                return
            except Exception as error:  # Redis refuses, times out, or drops us again
                self._last_error = f"{type(error).__name__}: {error}"
                log.debug("live hub could not reconnect: %s", self._last_error)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _came_back(self) -> None:
        seconds = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since, self._last_error = None, None
        self.reconnects += 1
        metrics.LIVE_HUB_UP.set(1)
        metrics.LIVE_HUB_RECONNECTS.inc()
        log.warning("live hub reconnected after %.1f s; its subscribers get fresh snapshots",
                    seconds)
        # Events of the gap are lost, ours and other instances' alike: everyone re-reads.
        self._publishing.reconnected()
        self.resync_subscribers()

    def resync_subscribers(self) -> None:
        """Tell every subscriber of this process to re-read what it shows (after the events
        already on their way to them)."""
        self._fanout.resync()

    async def _announce_resync(self) -> None:
        """Every instance's subscribers re-read: events we failed to publish never reached
        them. Kept due until it is sent."""
        if await self._control(RESYNC_KIND):
            self._publishing.resync_announced()

    async def _control(self, kind: str) -> bool:
        """Send a hub-to-hub message; whether it went out."""
        if self._connection is None:
            return False
        channel = self._prefix + CHANNELS[CONTROL_TOPIC]
        message = json.dumps({"kind": kind, "hub": self._id})
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._connection.broadcast.publish(channel, message)
        except Exception:
            log.debug("could not send a %s to the other hubs", kind, exc_info=True)
            return False
        return True

    # ---- publishing, and handing what is heard to the fan-out ----

    async def publish(self, channel: str, message: str) -> None:
        """Publish, or drop the message while the broadcast is down (the change itself is
        committed; subscribers get a fresh snapshot once the hub reconnects). This process's
        change listeners hear of it first, at once."""
        for topic, name in TOPICS.items():
            if channel == self._prefix + name:
                self._fanout.changed(topic)
        if self._stopped:
            return  # shutting down: nobody is listening any more
        connection = self._connection if self._down_since is None else None
        await self._publishing.publish(connection.broadcast if connection is not None else None,
                                       channel, message, unavailable=self._last_error)

    def _dispatch(self, topic: str, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed live message on %s", topic)
            return
        if topic == CONTROL_TOPIC:
            self._heard_from_hub(payload)
            return
        self._fanout.heard(topic, payload)

    def _heard_from_hub(self, payload: dict[str, Any]) -> None:
        ours = payload.get("hub") == self._id
        if payload.get("kind") == HEARTBEAT_KIND and ours:
            self._heard_at = time.monotonic()
        elif payload.get("kind") == RESYNC_KIND and not ours:
            self.resync_subscribers()

    def on_change(self, topics: set[str], listener: Callable[[str], None]) -> None:
        """See `Fanout.on_change`: at once, before any coalescing or queueing."""
        self._fanout.on_change(topics, listener)

    def on_event(self, topic: str, listener: Callable[[dict[str, Any]], None]) -> None:
        """See `Fanout.on_event`: each of the topic's events, synchronously, in order."""
        self._fanout.on_event(topic, listener)

    def subscribe(self, topic: str, wants: Callable[[dict[str, Any]], bool]
                  ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._fanout.subscribe(topic, wants)

"""The live hub's broadcast connection: one subscription (a pump task) per wide channel.

broadcaster's `Broadcast.subscribe` races when many clients subscribe to a new channel at once
(it checks whether the channel exists, then awaits the backend before registering the queue:
STACK-NOTES.md measured 1 of 200 registered), and one backend subscription per order does not
scale. So the hub subscribes once, when it connects, to each wide channel (`orders:all`,
`stock:all`, ...), and this connection hands every message it hears, still raw, to the hub
(`adapters/live.py`), which parses it once and fans it out.

A connection is never repaired: the hub's supervisor watches `watched()` and replaces a broken
connection with a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from broadcaster import Broadcast

from ordergraph.adapters.broadcast import (
    CLOSE_TIMEOUT,
    close_broadcast,
    listener_tasks,
    retrieve_error,
    why_ended,
)

CONNECT_TIMEOUT = 5.0


class HubConnection:
    """A broadcast, connected, with one pump per channel calling `heard(topic, raw)`."""

    def __init__(self, broadcast: Broadcast, channels: dict[str, str],
                 heard: Callable[[str, str], None]) -> None:
        self.broadcast = broadcast
        self._channels = channels  # topic -> channel name (with the hub's prefix)
        self._heard = heard
        self._ready = {topic: asyncio.Event() for topic in channels}
        self.pumps: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Connect and subscribe to every channel; ConnectionError (or the backend's own
        error) if that fails or takes longer than CONNECT_TIMEOUT. Close it either way."""
        await self.broadcast.connect()
        self.pumps = [asyncio.create_task(self._pump(topic, channel), name=f"live-hub-{topic}")
                      for topic, channel in self._channels.items()]
        for task in self.watched():
            task.add_done_callback(retrieve_error)
        await self._until_ready()

    async def _until_ready(self) -> None:
        ready = asyncio.ensure_future(
            asyncio.gather(*(event.wait() for event in self._ready.values())))
        done, _ = await asyncio.wait([ready, *self.pumps], timeout=CONNECT_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            failed = {pump for pump in done if pump is not ready}
            raise ConnectionError(f"could not subscribe: {why_ended(failed)}"
                                  if failed else "subscribing timed out")

    async def close(self) -> None:
        for pump in self.pumps:
            pump.cancel()
        if self.pumps:
            # Unsubscribing talks to Redis, which may be gone: do not wait on it for long.
            await asyncio.wait(self.pumps, timeout=CLOSE_TIMEOUT)
        self.pumps = []
        await close_broadcast(self.broadcast)

    def listening(self) -> bool:
        """Subscribed to every channel, and no task of the connection has ended."""
        return bool(self.pumps) and not any(task.done() for task in self.watched()) and \
            all(event.is_set() for event in self._ready.values())

    def watched(self) -> list[asyncio.Task[Any]]:
        """Every task that ends when this connection stops receiving."""
        return [*self.pumps, *listener_tasks(self.broadcast)]

    async def _pump(self, topic: str, channel: str) -> None:
        async with self.broadcast.subscribe(channel) as events:
            self._ready[topic].set()
            async for event in events:  # type: ignore[union-attr]
                if event is not None:
                    self._heard(topic, event.message)

"""broadcaster 0.3.1, with its Redis backend fixed for redis-py >= 8.

Upstream's RedisBackend.subscribe sets `_ready` before SUBSCRIBE completes; with redis-py 8 the
listener's `pubsub.listen()` then finds no channel, returns at once and never starts again:
nothing is ever delivered (STACK-NOTES.md). Subscribing first, then waking the listener, fixes
it. Only `create_broadcast` builds Broadcast objects in this code base. The rest reaches into
its internals for the live hub's supervision (adapters/live.py): closing a broken one, and the
tasks that end when it stops receiving.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlparse

from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0


class SubscribeFirstRedisBackend(RedisBackend):
    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


def create_broadcast(url: str) -> Broadcast:
    """A Broadcast for `url` (memory://, redis://, rediss://, postgres://)."""
    if urlparse(url).scheme in ("redis", "rediss"):
        return Broadcast(backend=SubscribeFirstRedisBackend(url))
    return Broadcast(url)


async def close_broadcast(broadcast: Broadcast) -> None:
    """Close a Broadcast, broken or not. (Broadcast.disconnect re-raises a dead listener's
    error before closing its backend, which would leak the Redis connections.)"""
    listener = getattr(broadcast, "_listener_task", None)
    if listener is not None:
        listener.cancel()
        # asyncio.wait, not `await listener` under suppress(CancelledError): that would also
        # swallow a cancellation of the task closing it (the supervisor, when the hub stops),
        # which then never ends.
        await asyncio.wait([listener], timeout=CLOSE_TIMEOUT)
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await broadcast._backend.disconnect()
    except Exception:
        log.debug("closing a broken broadcast connection failed", exc_info=True)


def listener_tasks(broadcast: Broadcast) -> list[asyncio.Task[Any]]:
    """The tasks that end when a Broadcast stops receiving. broadcaster 0.3.1 (pinned) runs
    an outer listener on a queue, which never ends, and for Redis the backend's own listener
    on the connection, which dies (ConnectionError) when the connection drops."""
    tasks = [getattr(broadcast, "_listener_task", None),
             getattr(broadcast._backend, "_listener", None)]
    return [task for task in tasks if isinstance(task, asyncio.Task)]


def retrieve_error(task: asyncio.Task[Any]) -> None:
    """Mark a connection task's error as seen: the supervisor reports why the connection
    ended (once), and asyncio would otherwise log each dead task's traceback at exit."""
    if not task.cancelled():
        task.exception()


def why_ended(tasks: set[asyncio.Task[Any]]) -> str:
    """What ended a listener, in a few words (retrieving it also keeps asyncio quiet)."""
    for task in tasks:
        if task.cancelled():
            return "listener cancelled"
        error = task.exception()
        if error is not None:
            return f"{type(error).__name__}: {error}"
    return "listener ended"

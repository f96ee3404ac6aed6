"""broadcaster 0.3.1, with its Redis backend fixed for redis-py >= 8.

Upstream's RedisBackend.subscribe sets `_ready` before SUBSCRIBE completes; with redis-py 8 the
listener's `pubsub.listen()` then finds no channel, returns at once and never starts again:
nothing is ever delivered (STACK-NOTES.md). Subscribing first, then waking the listener, fixes
it. Only `create_broadcast` builds Broadcast objects in this code base.
"""

from __future__ import annotations

from urllib.parse import urlparse

from broadcaster import Broadcast
from broadcaster._backends.redis import RedisBackend


class SubscribeFirstRedisBackend(RedisBackend):
    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ready.set()


def create_broadcast(url: str) -> Broadcast:
    """A Broadcast for `url` (memory://, redis://, rediss://, postgres://)."""
    if urlparse(url).scheme in ("redis", "rediss"):
        return Broadcast(backend=SubscribeFirstRedisBackend(url))
    return Broadcast(url)

"""Throttling of failed logins and of registrations, in memory or shared through Redis.

Each key (e.g. `login:email:ada@example.com`, `login:ip:203.0.113.7`) may fail a few times
freely; after that every failure blocks it for twice as long as the one before, up to a
ceiling. A success resets the key. Blocked attempts are refused with RATE_LIMITED and do not
count as failures (they never reached the password check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ordergraph.domain.errors import RateLimited


@dataclass(frozen=True)
class Throttle:
    free_failures: int           # failures allowed before the first block
    first_block_seconds: float   # then 1x, 2x, 4x ... this
    max_block_seconds: float
    forget_after_seconds: float  # a key with no failure for this long starts over

    def block_seconds(self, failures: int) -> float:
        excess = failures - self.free_failures
        if excess <= 0:
            return 0.0
        return min(self.first_block_seconds * 2 ** (excess - 1), self.max_block_seconds)


DEFAULT_THROTTLES = {
    "login:email": Throttle(5, 2, 15 * 60, 15 * 60),
    "login:ip": Throttle(20, 2, 15 * 60, 15 * 60),
    "register:ip": Throttle(20, 30, 60 * 60, 60 * 60),
}


def throttle_for(key: str, throttles: dict[str, Throttle]) -> Throttle:
    kind = ":".join(key.split(":", 2)[:2])
    return throttles.get(kind, throttles["login:ip"])


def _retry_after(blocked_until: float, now: float) -> int:
    return max(1, math.ceil(blocked_until - now))


class MemoryRateLimiter:
    """One process's counts (the default, with BROADCAST_URL=memory://)."""

    def __init__(self, throttles: dict[str, Throttle] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._throttles = throttles or DEFAULT_THROTTLES
        self._clock = clock
        # key -> (failures, blocked until, last failure)
        self._state: dict[str, tuple[int, float, float]] = {}

    async def check(self, keys: Sequence[str]) -> None:
        now = self._clock()
        waits = [_retry_after(blocked, now) for key in keys
                 for _, blocked, _ in [self._current(key, now)] if blocked > now]
        if waits:
            raise RateLimited(retry_after_seconds=max(waits))

    async def failed(self, keys: Sequence[str]) -> None:
        now = self._clock()
        for key in keys:
            failures, _, _ = self._current(key, now)
            failures += 1
            block = throttle_for(key, self._throttles).block_seconds(failures)
            self._state[key] = (failures, now + block, now)
        if len(self._state) > 100_000:  # keep memory bounded under a flood of new keys
            self._forget_old(now)

    async def succeeded(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._state.pop(key, None)

    def _current(self, key: str, now: float) -> tuple[int, float, float]:
        state = self._state.get(key)
        if state is None:
            return 0, 0.0, 0.0
        if now - state[2] > throttle_for(key, self._throttles).forget_after_seconds:
            del self._state[key]
            return 0, 0.0, 0.0
        return state

    def _forget_old(self, now: float) -> None:
        for key in list(self._state):
            self._current(key, now)


class RedisRateLimiter:
    """Counts shared by every app instance (used when BROADCAST_URL is redis://)."""

    # Atomically: count the failure, compute the block, keep both keys alive while relevant.
    _FAIL = """
    local failures = redis.call('INCR', KEYS[1])
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    local excess = failures - tonumber(ARGV[2])
    if excess > 0 then
      local block = math.min(tonumber(ARGV[3]) * 2 ^ (excess - 1), tonumber(ARGV[4]))
      redis.call('SET', KEYS[2], '1', 'PX', math.floor(block * 1000))
    end
    return failures
    """

    def __init__(self, url: str, *, prefix: str = "ordergraph:ratelimit:",
                 throttles: dict[str, Throttle] | None = None) -> None:
        from redis import asyncio as redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix
        self._throttles = throttles or DEFAULT_THROTTLES
        self._fail = self._redis.register_script(self._FAIL)

    async def check(self, keys: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(f"{self._prefix}{key}:blocked")
            ttls = await pipe.execute()
        waits = [math.ceil(ttl / 1000) for ttl in ttls if ttl and ttl > 0]
        if waits:
            raise RateLimited(retry_after_seconds=max(1, max(waits)))

    async def failed(self, keys: Sequence[str]) -> None:
        for key in keys:
            throttle = throttle_for(key, self._throttles)
            await self._fail(
                keys=[f"{self._prefix}{key}:failures", f"{self._prefix}{key}:blocked"],
                args=[int(throttle.forget_after_seconds), throttle.free_failures,
                      throttle.first_block_seconds, throttle.max_block_seconds])

    async def succeeded(self, keys: Sequence[str]) -> None:
        await self._redis.delete(*[f"{self._prefix}{key}:{part}" for key in keys
                                   for part in ("failures", "blocked")])

    async def aclose(self) -> None:
        await self._redis.aclose()

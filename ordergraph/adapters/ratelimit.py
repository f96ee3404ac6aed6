"""Throttling of failed logins and of registrations, in memory or shared through Redis.

Each key (e.g. `login:email:ada@example.com`, `login:ip:203.0.113.7`) may fail a few times
freely; after that every failure blocks it for twice as long as the one before, up to a
ceiling. Blocked attempts are refused with RATE_LIMITED and do not count (they never reached
the password check).

An attempt is counted *before* the password is checked, in the same atomic step as the check:
counting after the check let a burst of concurrent guesses all pass a check that none of them
had counted yet. A success then takes its own attempt back (`uncount`), which never lowers a
count below the failures made, so logging in to an account of one's own cannot clear an
address's failures; only the account's own key is reset (`reset`).

While Redis is unreachable the Redis limiter counts in process instead (each instance on its
own, so a guesser spread over N instances gets up to N times the budget for that while):
failing closed would turn a Redis outage into nobody being able to log in.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ordergraph.adapters.metrics import RATE_LIMIT_FALLBACKS
from ordergraph.domain.errors import RateLimited

if TYPE_CHECKING:
    from ordergraph.settings import Settings

log = logging.getLogger(__name__)

# While Redis is down, one call at most this often tries it again (the others go straight to
# the in-process counts), and no call waits on it longer than the timeout.
REDIS_RETRY_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Throttle:
    free_failures: int           # failures allowed before the first block
    first_block_seconds: float   # then 1x, 2x, 4x ... this
    max_block_seconds: float
    forget_after_seconds: float  # a key with no attempt for this long starts over

    def block_seconds(self, failures: int) -> float:
        excess = failures - self.free_failures
        if excess <= 0:
            return 0.0
        return min(self.first_block_seconds * 2 ** (excess - 1), self.max_block_seconds)


# The defaults of the LOGIN_* and REGISTER_* settings (README "Configuration").
DEFAULT_THROTTLES = {
    "login:email": Throttle(5, 2, 15 * 60, 15 * 60),
    "login:ip": Throttle(20, 2, 15 * 60, 15 * 60),
    "register:ip": Throttle(20, 30, 60 * 60, 60 * 60),
    # Password reset requests: every request counts (none is taken back); the one that
    # passes the free ones still goes through and blocks the next (3 emails to an account at
    # once, then one after 1, 2, 4 ... minutes). Blocked, the answer stays the same and no
    # email is sent.
    "reset:email": Throttle(2, 60, 60 * 60, 60 * 60),
    "reset:ip": Throttle(20, 60, 60 * 60, 60 * 60),
}


def throttles_from(settings: Settings) -> dict[str, Throttle]:
    """The throttles the LOGIN_* and REGISTER_* settings describe, and the password reset's
    (not settings: they guard a mailbox, not a guess)."""
    login = (settings.login_first_block.total_seconds(),
             settings.login_max_block.total_seconds(), settings.login_window.total_seconds())
    return {
        "login:email": Throttle(settings.login_free_failures_per_email, *login),
        "login:ip": Throttle(settings.login_free_failures_per_address, *login),
        "register:ip": Throttle(settings.register_per_address,
                                settings.register_first_block.total_seconds(),
                                settings.register_max_block.total_seconds(),
                                settings.register_window.total_seconds()),
        "reset:email": DEFAULT_THROTTLES["reset:email"],
        "reset:ip": DEFAULT_THROTTLES["reset:ip"],
    }


def throttle_for(key: str, throttles: dict[str, Throttle]) -> Throttle:
    kind = ":".join(key.split(":", 2)[:2])
    return throttles.get(kind, throttles["login:ip"])


def _retry_after(blocked_until: float, now: float) -> int:
    return max(1, math.ceil(blocked_until - now))


class MemoryRateLimiter:
    """One process's counts (the default, with BROADCAST_URL=memory://).

    Each method runs without awaiting, so on the event loop it is atomic.
    """

    def __init__(self, throttles: dict[str, Throttle] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._throttles = throttles or DEFAULT_THROTTLES
        self._clock = clock
        # key -> (attempts counted, blocked until, last attempt)
        self._state: dict[str, tuple[int, float, float]] = {}

    async def attempt(self, keys: Sequence[str]) -> None:
        now = self._clock()
        waits = [_retry_after(blocked, now) for key in keys
                 for _, blocked, _ in [self._current(key, now)] if blocked > now]
        if waits:
            raise RateLimited(retry_after_seconds=max(waits))
        for key in keys:
            count, blocked, _ = self._current(key, now)
            count += 1
            block = throttle_for(key, self._throttles).block_seconds(count)
            self._state[key] = (count, now + block if block else blocked, now)
        if len(self._state) > 100_000:  # keep memory bounded under a flood of new keys
            self._forget_old(now)

    async def uncount(self, keys: Sequence[str]) -> None:
        now = self._clock()
        for key in keys:
            count, blocked, last = self._current(key, now)
            if key not in self._state:
                continue
            count = max(count - 1, 0)
            if count <= throttle_for(key, self._throttles).free_failures:
                blocked = 0.0  # the block came from this attempt alone
            self._state[key] = (count, blocked, last)

    async def reset(self, keys: Sequence[str]) -> None:
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
    """Counts shared by every app instance (used when BROADCAST_URL is redis://).

    Each key is two Redis keys: `<key>:failures` (the count, expiring when the key is
    forgotten) and `<key>:blocked` (present while blocked, expiring with the block). Every
    operation is one Lua script, so concurrent attempts on several instances are counted
    exactly.
    """

    # KEYS: failures and blocked key of each throttled key, in pairs; ARGV: four numbers per
    # pair (forget after, free failures, first block, max block). Returns the longest wait in
    # milliseconds (nothing counted) or 0 (counted on every key).
    _ATTEMPT = """
    local wait = 0
    for i = 1, #KEYS, 2 do
      local ttl = redis.call('PTTL', KEYS[i + 1])
      if ttl > wait then wait = ttl end
    end
    if wait > 0 then return wait end
    for i = 1, #KEYS, 2 do
      local arg = (i - 1) * 2
      local count = redis.call('INCR', KEYS[i])
      redis.call('EXPIRE', KEYS[i], ARGV[arg + 1])
      local excess = count - tonumber(ARGV[arg + 2])
      if excess > 0 then
        local block = math.min(tonumber(ARGV[arg + 3]) * 2 ^ (excess - 1), tonumber(ARGV[arg + 4]))
        redis.call('SET', KEYS[i + 1], '1', 'PX', math.floor(block * 1000))
      end
    end
    return 0
    """

    # KEYS as above; ARGV: the free failures of each pair.
    _UNCOUNT = """
    for i = 1, #KEYS, 2 do
      local count = tonumber(redis.call('GET', KEYS[i]) or '0')
      if count > 0 then
        count = redis.call('DECR', KEYS[i])
      end
      if count <= tonumber(ARGV[(i + 1) / 2]) then
        redis.call('DEL', KEYS[i + 1])
      end
    end
    return 0
    """

    def __init__(self, url: str, *, prefix: str = "ordergraph:ratelimit:",
                 throttles: dict[str, Throttle] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from redis import asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                           socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        self._prefix = prefix
        self._throttles = throttles or DEFAULT_THROTTLES
        self._attempt = self._redis.register_script(self._ATTEMPT)
        self._uncount = self._redis.register_script(self._UNCOUNT)
        self._clock = clock
        self._local = MemoryRateLimiter(self._throttles, clock)  # while Redis is down
        self._down_since: float | None = None
        self._next_try = 0.0

    def _redis_keys(self, keys: Sequence[str]) -> list[str]:
        return [f"{self._prefix}{key}:{part}" for key in keys
                for part in ("failures", "blocked")]

    async def attempt(self, keys: Sequence[str]) -> None:
        if not await self._on_redis("attempt", self._attempt_shared, keys):
            await self._local.attempt(keys)

    async def uncount(self, keys: Sequence[str]) -> None:
        if not await self._on_redis("uncount", self._uncount_shared, keys):
            await self._local.uncount(keys)

    async def reset(self, keys: Sequence[str]) -> None:
        if not await self._on_redis("reset", self._reset_shared, keys):
            await self._local.reset(keys)

    async def _on_redis(self, step: str, run: Callable[[Sequence[str]], Awaitable[None]],
                        keys: Sequence[str]) -> bool:
        """Run a step on Redis: True when done there (RateLimited passes through), False
        when Redis is unreachable and the caller must count in process instead."""
        from redis.exceptions import RedisError

        if self._down_since is not None and self._clock() < self._next_try:
            RATE_LIMIT_FALLBACKS.labels(step).inc()
            return False
        try:
            await run(keys)
        except (RedisError, OSError, TimeoutError) as error:
            self._redis_failed(error)
            RATE_LIMIT_FALLBACKS.labels(step).inc()
            return False
        self._redis_answered()
        return True

    def _redis_failed(self, error: Exception) -> None:
        now = self._clock()
        self._next_try = now + REDIS_RETRY_SECONDS
        if self._down_since is None:  # once per outage
            self._down_since = now
            log.warning("login throttling: Redis unreachable (%s: %s); counting in this "
                        "process until it answers", type(error).__name__, error)

    def _redis_answered(self) -> None:
        if self._down_since is not None:
            log.warning("login throttling: Redis answers again after %.1f s; counts are "
                        "shared again", self._clock() - self._down_since)
            self._down_since = None

    async def _attempt_shared(self, keys: Sequence[str]) -> None:
        args: list[float] = []
        for key in keys:
            throttle = throttle_for(key, self._throttles)
            args += [int(throttle.forget_after_seconds), throttle.free_failures,
                     throttle.first_block_seconds, throttle.max_block_seconds]
        wait_ms = int(await self._attempt(keys=self._redis_keys(keys), args=args))
        if wait_ms > 0:
            raise RateLimited(retry_after_seconds=max(1, math.ceil(wait_ms / 1000)))

    async def _uncount_shared(self, keys: Sequence[str]) -> None:
        await self._uncount(keys=self._redis_keys(keys),
                            args=[throttle_for(key, self._throttles).free_failures
                                  for key in keys])

    async def _reset_shared(self, keys: Sequence[str]) -> None:
        await self._redis.delete(*self._redis_keys(keys))

    async def aclose(self) -> None:
        await self._redis.aclose()

"""Who may keep listening, and how much: live subscriptions outlive the moment they were
authorised, and one client must not hold an unbounded number of them.

- `RoleChanges` counts the role changes this process has heard of (its own, and other
  instances' through the live hub). A subscription whose viewer is an admin re-reads the
  viewer when that count moves, so a demotion takes effect on the next event, not when the
  token expires. Customers and anonymous viewers are never re-read: a stale view of theirs
  shows no more than they may see.
- `SubscriptionSlots` caps the subscriptions of one connection and of one client address.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ordergraph.domain.errors import DomainError
from ordergraph.domain.model import User

if TYPE_CHECKING:
    from ordergraph.resolvers.context import RequestContext

# One browser tab needs two or three; a dashboard on one socket a handful more.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 20
# Several tabs and people behind one NAT; a single client cannot hold the hub's memory.
MAX_SUBSCRIPTIONS_PER_ADDRESS = 100
# Even if a role change is never heard (a broadcast lost while Redis restarts), an admin's
# subscription re-reads its viewer at least this often, when an event arrives.
ROLE_RECHECK_SECONDS = 60.0


class TooManySubscriptions(DomainError):
    """TOO_MANY_SUBSCRIPTIONS: this connection or address holds as many as it may.

    Defined here rather than in domain/errors.py for now (that file is being changed by
    others); it belongs in the domain's error tree.
    """

    code = "TOO_MANY_SUBSCRIPTIONS"


class RoleChanges:
    """How many role changes of each user this process has heard of."""

    def __init__(self) -> None:
        self._heard: Counter[int] = Counter()

    def heard(self, user_id: int) -> None:
        self._heard[user_id] += 1

    def count(self, user_id: int) -> int:
        return self._heard[user_id]


class SubscriptionSlots:
    """Open subscriptions per client address in this process, within the caps."""

    def __init__(self, *, per_connection: int = MAX_SUBSCRIPTIONS_PER_CONNECTION,
                 per_address: int = MAX_SUBSCRIPTIONS_PER_ADDRESS) -> None:
        self.per_connection = per_connection
        self.per_address = per_address
        self._by_address: Counter[str] = Counter()

    @contextlib.contextmanager
    def taken(self, ctx: RequestContext) -> Iterator[None]:
        """Hold one slot of the connection and of its address while the block runs;
        TOO_MANY_SUBSCRIPTIONS when either is full."""
        address = ctx.client_address or "unknown"
        if ctx.live_subscriptions >= self.per_connection:
            raise TooManySubscriptions(
                f"This connection already has {self.per_connection} subscriptions; end "
                "one first.")
        if self._by_address[address] >= self.per_address:
            raise TooManySubscriptions(
                f"Your address already has {self.per_address} subscriptions open; end "
                "some first.")
        ctx.live_subscriptions += 1
        self._by_address[address] += 1
        try:
            yield
        finally:
            ctx.live_subscriptions -= 1
            self._by_address[address] -= 1
            if self._by_address[address] <= 0:
                del self._by_address[address]


class LiveViewer:
    """A subscription's viewer, re-read when an admin's role may have changed."""

    def __init__(self, ctx: RequestContext, viewer: User | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._viewer = viewer
        self._clock = clock
        self._heard = self._changes_heard()
        self._read_at = clock()

    def _changes_heard(self) -> int:
        if self._viewer is None:
            return 0
        return self._ctx.deps.role_changes.count(self._viewer.id)

    async def current(self) -> User | None:
        """The viewer as they are now (at most one read per role change heard)."""
        if self._viewer is None or not self._viewer.is_admin:
            return self._viewer
        heard = self._changes_heard()
        if heard != self._heard or self._clock() - self._read_at >= ROLE_RECHECK_SECONDS:
            self._heard, self._read_at = heard, self._clock()
            self._viewer = await self._ctx.reread_viewer()
        return self._viewer

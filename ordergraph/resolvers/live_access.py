"""Who may keep listening: live subscriptions outlive the moment they were authorised.

- `RoleChanges` counts the role changes this process has heard of (its own, and other
  instances' through the live hub). A subscription whose viewer is an admin re-reads the
  viewer when that count moves, so a demotion takes effect on the next event, not when the
  token expires. Customers and anonymous viewers are never re-read: a stale view of theirs
  shows no more than they may see.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from ordergraph.domain.model import User

if TYPE_CHECKING:
    from ordergraph.resolvers.context import RequestContext

# Even if a role change is never heard (a broadcast lost while Redis restarts), an admin's
# subscription re-reads its viewer at least this often, when an event arrives.
ROLE_RECHECK_SECONDS = 60.0


class RoleChanges:
    """How many role changes of each user this process has heard of."""

    def __init__(self) -> None:
        self._heard: Counter[int] = Counter()

    def heard(self, user_id: int) -> None:
        self._heard[user_id] += 1

    def count(self, user_id: int) -> int:
        return self._heard[user_id]


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
        return self._ctx.services.role_changes.count(self._viewer.id)

    async def current(self) -> User | None:
        """The viewer as they are now (at most one read per role change heard)."""
        if self._viewer is None or not self._viewer.is_admin:
            return self._viewer
        heard = self._changes_heard()
        if heard != self._heard or self._clock() - self._read_at >= ROLE_RECHECK_SECONDS:
            self._heard, self._read_at = heard, self._clock()
            self._viewer = await self._ctx.reread_viewer()
        return self._viewer

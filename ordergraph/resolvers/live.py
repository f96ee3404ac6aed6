"""Subscriptions: authorise at the start, send a SNAPSHOT, then stream committed changes.

Authorisation is checked again on every event (cheaply, see live_access.py): an admin
demoted while listening stops receiving what only admins see, and products taken off sale
leave the public feed.

When the live hub may have missed events (its broadcast was down: a Redis restart) it sends
each subscription a message of kind "resync"; the subscription then re-reads what it shows
and sends it again as SNAPSHOTs, so a client is right again without resubscribing.

This module is what every subscription shares; the subscriptions themselves are
`live_orders.py` (orderUpdated, orderEvents) and `live_stock.py` (stockUpdated).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ordergraph.domain.errors import Unauthenticated
from ordergraph.domain.model import User
from ordergraph.domain.ports_api import LiveMessage, LiveSubscription
from ordergraph.resolvers.context import RequestContext

SNAPSHOT = "SNAPSHOT"
# The hub's signal that events may have been lost (adapters/live_subscription.py, RESYNC_KIND).
RESYNC_KIND = "resync"


def is_resync(message: LiveMessage) -> bool:
    return message.payload.get("kind") == RESYNC_KIND


async def shared_read(message: LiveMessage, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
    """One read per resync round for all of this process's subscribers that need it (a
    resync reaches every subscriber at once: they must not all query the same thing)."""
    lookup: asyncio.Future[Any] | None = message.cache.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(read())
        message.cache[key] = lookup
    # Shielded: one subscriber leaving must not cancel the read the others wait for.
    return await asyncio.shield(lookup)


async def until_session_ends(ctx: RequestContext, viewer: User | None,
                              subscription: LiveSubscription) -> AsyncIterator[LiveMessage]:
    """The subscription's messages until the viewer's token expires (then UNAUTHENTICATED)."""
    expires_at = None
    if viewer is not None and ctx.token is not None:
        expires_at = ctx.deps.tokens.expires_at(ctx.token)
    if expires_at is None:
        async for message in subscription:
            yield message
        return
    remaining = (expires_at - ctx.deps.clock.now()).total_seconds()
    try:
        async with asyncio.timeout(max(remaining, 0)):
            async for message in subscription:
                yield message
    except TimeoutError:
        raise Unauthenticated("Your session has expired; log in again.") from None

"""One live subscriber's bounded backlog of the events it wants (`Subscription`), and the
direct way round it: a transport may take a message straight from the hub's fan-out
(`deliver_directly`) instead of waking the subscriber's reader.

`adapters/live_fanout.py` offers each event to the interested subscriptions; a slow one
overflows its own backlog (and is told to resubscribe), it never holds up others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ordergraph.domain.ports_api import LiveMessage

log = logging.getLogger(__name__)

QUEUE_SIZE = 256

# What a subscriber receives when events may have been missed: a message whose payload's
# "kind" (beside the events' own "order", "stock", "user") says: re-read what you show. One
# message per round, so its `cache` lets the subscribers of a process share those reads.
RESYNC_KIND = "resync"


def _is_resync(item: object) -> bool:
    return isinstance(item, LiveMessage) and item.payload.get("kind") == RESYNC_KIND


# (message, done) -> whether it was taken; see Subscription.deliver_directly. done(message)
# hands the message back to the reader (the direct way turned out impossible).
DirectDelivery = Callable[[LiveMessage, Callable[..., None]], bool]


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; it should resubscribe (and refetch)."""


_OVERFLOW = object()
_CLOSED = object()


class Subscription:
    """One subscriber's bounded backlog of the events it wants.

    A deque and one waiter rather than an asyncio.Queue: a thousand idle subscribers each
    holding a queue's four deques and an event cost more memory than everything else they
    hold (bench/RESULTS.md).
    """

    __slots__ = ("_backlog", "_busy", "_direct", "_size", "_waiter", "wants")

    def __init__(self, wants: Callable[[dict[str, Any]], bool], size: int) -> None:
        self.wants = wants
        self._size = size
        self._backlog: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None
        # A message being handled (its reader resumes, or a direct send is out): the next
        # waits in the backlog, so this subscriber's messages never overtake each other.
        self._busy = False
        self._direct: DirectDelivery | None = None

    def deliver_directly(self, handler: DirectDelivery | None) -> None:
        """From now on offer each message to `handler(message, done)` first, when nothing is
        in the backlog or on its way: it returns True when it took the message (and calls
        `done()` once the message is out, or dropped on purpose, or `done(message)` to hand
        it to the reader after all), False to leave it to the reader (the usual way). The
        reader must be past everything it sent before."""
        self._direct = handler

    def _sent(self, undelivered: LiveMessage | None = None) -> None:
        """The direct delivery is over; `undelivered`: it could not be made after all, so
        the reader gets the message the usual way, before anything that came since."""
        self._busy = False
        if undelivered is not None and not (self._backlog and self._backlog[0] in
                                            (_OVERFLOW, _CLOSED)):
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.appendleft(undelivered)
        if self._backlog:
            self._wake()

    def offer(self, message: LiveMessage) -> None:
        if self._direct is not None and not self._busy and not self._backlog:
            self._busy = True
            try:
                taken = self._direct(message, self._sent)
            except Exception:
                log.exception("a direct live delivery failed")
                taken = False
            if taken:
                return
            self._busy = False
        if self._backlog is None:
            self._backlog = deque()
        if len(self._backlog) >= self._size:
            # Never wait for a slow reader: drop its backlog and tell it to start over.
            self._replace_backlog(_OVERFLOW)
            return
        self._backlog.append(message)
        self._wake()

    def resync(self, message: LiveMessage) -> None:
        """Events may have been missed: have the reader re-read (once, however often asked)."""
        if self._backlog is not None and any(_is_resync(item) for item in self._backlog):
            return
        self.offer(message)

    def close(self) -> None:
        """End the stream (the server is shutting down): the client sees it complete."""
        self._replace_backlog(_CLOSED)

    def _replace_backlog(self, item: object) -> None:
        self._backlog = deque([item])
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[LiveMessage]:
        while True:
            while not self._backlog or (self._busy and self._backlog[0] is not _CLOSED):
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            item = self._backlog.popleft()
            if item is _CLOSED:
                return
            if item is _OVERFLOW:
                raise SubscriberOverflow("Too many updates were missed; subscribe again.")
            if self._direct is None:
                yield item
                continue
            self._busy = True
            yield item  # the reader resumes this once it has sent what the item became
            self._busy = False

"""The live hub's publishing (adapters/live.py): each message through the hub's broadcast
connection within PUBLISH_TIMEOUT, nothing for PUBLISH_RETRY_SECONDS after one fails, and the
record that some event went nowhere, so the hub tells every instance to resync once it can.

A publish is after commit, inside someone's request: it never raises and never waits on a
dead Redis for long; what it cannot send is counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time

from broadcaster import Broadcast

from ordergraph.adapters import metrics

# The hub's own logger: the README's operators' table quotes these lines as the hub's.
log = logging.getLogger("ordergraph.adapters.live")

# Never let a dead Redis hold a request long, and after one publish fails, publish nothing for
# a while (one request per interval pays the wait).
PUBLISH_TIMEOUT = 1.0
PUBLISH_RETRY_SECONDS = 1.0


class Publishing:
    """What the hub's publishes went through: whether one was dropped since the last resync."""

    def __init__(self) -> None:
        self.failed = False  # some event went nowhere: announce a resync
        self._drop_logged = False  # one warning per outage, not one per event
        self._paused_until = 0.0

    async def publish(self, broadcast: Broadcast | None, channel: str, message: str, *,
                      unavailable: str | None = None) -> None:
        """Publish on `broadcast`, or drop the message: `broadcast` None while the hub is not
        connected (`unavailable` says why), or a publish failed just before."""
        if broadcast is None:
            self.dropped(unavailable or "the live hub is not connected")
            return
        if time.monotonic() < self._paused_until:
            self.dropped("a publish failed just before")
            return
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await broadcast.publish(channel, message)
        except Exception as error:  # Redis gone or slow; the hub's supervisor notices soon
            self._paused_until = time.monotonic() + PUBLISH_RETRY_SECONDS
            self.dropped(f"{type(error).__name__}: {error}")

    def dropped(self, reason: str) -> None:
        metrics.LIVE_PUBLISH_DROPPED.inc()
        self.failed = True
        if not self._drop_logged:
            self._drop_logged = True
            log.warning("live events are not being published (%s); subscribers get fresh "
                        "snapshots once the broadcast is back", reason)

    def reconnected(self) -> None:
        """The hub is back: the gap's events are lost, so a resync is due; a later drop is
        a new outage's, worth its own warning."""
        self.failed = True
        self._drop_logged = False

    def resync_announced(self) -> None:
        self.failed = self._drop_logged = False

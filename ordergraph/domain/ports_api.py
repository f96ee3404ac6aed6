"""The ports only the API side calls (resolvers/, through `Deps`), never a use case: the live
feed its subscriptions read, the local mailbox, and the operator's counters. `adapters/`
implement them (live hub, mail sink, Prometheus metrics); the use cases' ports are `ports.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """What the local mail sink received (local mail mode only)."""

    id: int
    received_at: datetime
    sender: str
    recipients: list[str]
    subject: str
    text: str
    html: str | None


class LocalMailbox(Protocol):
    def messages(self, *, limit: int) -> list[ReceivedMail]:
        """Newest first."""
        ...


@dataclass(slots=True)
class LiveMessage:
    """One published event as a live subscriber receives it.

    `payload` is the event's JSON (parsed once per process, shared by every subscriber);
    `cache` is shared by every subscriber of this one event (e.g. its dataloaders), so a
    fan-out costs the same few queries whether ten or a thousand clients listen.
    """

    payload: dict[str, Any]
    cache: dict[str, Any]


class LiveSubscription(Protocol):
    def __aiter__(self) -> AsyncIterator[LiveMessage]: ...


class LiveFeed(Protocol):
    """Events published after commit, for live subscribers of this process."""

    def subscribe(self, topic: str, wants: Callable[[dict[str, Any]], bool]
                  ) -> AbstractAsyncContextManager[LiveSubscription]:
        """Receive the `topic`'s ("orders" or "stock") events whose payload `wants`."""
        ...


class Metrics(Protocol):
    """Counters an operator watches (the adapter exports them to Prometheus)."""

    def checkout(self, outcome: str) -> None: ...
    def webhook(self, event_type: str, outcome: str) -> None: ...
    def sweep(self, *, changed: dict[str, int], failed: bool) -> None: ...
    def graphql(self, operation: str | None, outcome: str, seconds: float) -> None: ...


class NullMetrics:
    def checkout(self, outcome: str) -> None:
        return None

    def webhook(self, event_type: str, outcome: str) -> None:
        return None

    def sweep(self, *, changed: dict[str, int], failed: bool) -> None:
        return None

    def graphql(self, operation: str | None, outcome: str, seconds: float) -> None:
        return None

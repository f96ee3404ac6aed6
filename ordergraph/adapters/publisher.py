"""The EventPublisher on broadcaster: each event as JSON on the channels that want it.

Channels (docs/ARCHITECTURE.md): orders:all for order events, stock:all for stock events,
users:all for role changes (every instance re-checks its live subscribers' rights when it
hears one), products:all for product changes (every instance forgets its cached catalog pages,
web/response_cache.py). These are the channels the live hub (adapters/live.py) listens to; it
filters per subscriber in process. The payload carries the event id, its type and a snapshot
of the changed state, so subscribers need no query to show it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from ordergraph.domain.events import (
    DomainEvent,
    OrderEvent,
    OrderStatusChanged,
    ProductCreated,
    ProductUpdated,
    StockChanged,
    UserRoleChanged,
)


class Broadcaster(Protocol):
    async def publish(self, channel: str, message: Any) -> None: ...


ALL_ORDERS_CHANNEL = "orders:all"
ALL_STOCK_CHANNEL = "stock:all"
ALL_USERS_CHANNEL = "users:all"
# Product changes (name, price, on sale or not): what cached catalog pages must forget.
ALL_PRODUCTS_CHANNEL = "products:all"


def channels_for(event: DomainEvent) -> list[str]:
    if isinstance(event, OrderEvent):
        return [ALL_ORDERS_CHANNEL]
    if isinstance(event, StockChanged):
        return [ALL_STOCK_CHANNEL]
    if isinstance(event, UserRoleChanged):
        return [ALL_USERS_CHANNEL]
    if isinstance(event, ProductCreated | ProductUpdated):
        return [ALL_PRODUCTS_CHANNEL]
    return []


def payload_for(event: DomainEvent) -> dict[str, Any] | None:
    """The JSON-ready message for an event, or None for events nobody subscribes to."""
    base = {"event_id": event.event_id, "type": event.type, "at": event.at.isoformat()}
    if isinstance(event, OrderEvent):
        previous = event.previous_status if isinstance(event, OrderStatusChanged) else None
        return {**base, "kind": "order", "previous_status": previous, "order": event.order}
    if isinstance(event, StockChanged):
        return {**base, "kind": "stock", "product_id": event.product_id,
                "available": event.after["available"], "reserved": event.after["reserved"],
                "updated_at": event.at.isoformat()}
    if isinstance(event, UserRoleChanged):
        return {**base, "kind": "user", "user_id": event.user_id, "role": event.after}
    if isinstance(event, ProductCreated):
        return {**base, "kind": "product", "product_id": event.product["id"]}
    if isinstance(event, ProductUpdated):
        return {**base, "kind": "product", "product_id": event.product_id}
    return None


class BroadcastPublisher:
    def __init__(self, broadcast: Broadcaster, *, prefix: str = "") -> None:
        self._broadcast = broadcast
        self._prefix = prefix  # keeps several shops (or test runs) apart on one Redis

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            payload = payload_for(event)
            if payload is None:
                continue
            message = json.dumps(payload, separators=(",", ":"))
            for channel in channels_for(event):
                await self._broadcast.publish(self._prefix + channel, message)

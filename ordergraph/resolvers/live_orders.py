"""orderUpdated and orderEvents: an order's (or every visible order's) committed changes,
re-checked against the viewer on every event (resolvers/live.py: what they share)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ordergraph.domain.errors import Forbidden, NotFound
from ordergraph.domain.model import Order, OrderStatus, User, order_from_snapshot
from ordergraph.domain.ports_api import LiveMessage
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.live import SNAPSHOT, is_resync, shared_read, until_session_ends
from ordergraph.resolvers.live_access import LiveViewer
from ordergraph.resolvers.pagination import parse_id

# After a resync, orderEvents re-sends this many of the newest orders it follows: there is no
# one snapshot of "every order", and a board shows the recent ones.
RESYNC_ORDER_SNAPSHOTS = 50
NO_LONGER_ADMIN = "You are no longer an admin; subscribe again to follow your own orders."


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    event_id: str
    type: str
    previous_status: OrderStatus | None
    order: Order
    at: datetime
    cache: dict[str, Any] = field(default_factory=dict)  # shared by this event's subscribers


def _order_update(message: LiveMessage) -> OrderUpdate:
    payload = message.payload
    previous = payload.get("previous_status")
    return OrderUpdate(event_id=payload["event_id"], type=payload["type"],
                       previous_status=OrderStatus(previous) if previous else None,
                       order=order_from_snapshot(payload["order"]),
                       at=datetime.fromisoformat(payload["at"]), cache=message.cache)


def _order_snapshot(ctx: RequestContext, order: Order) -> OrderUpdate:
    return OrderUpdate(event_id=f"snapshot-{order.id}-{order.version}", type=SNAPSHOT,
                       previous_status=None, order=order, at=ctx.deps.clock.now())


async def order_updates(ctx: RequestContext, *, id: str) -> AsyncIterator[OrderUpdate]:
    """One order's changes for its owner or an admin, starting with a SNAPSHOT.

    Someone else's order is NOT_FOUND, exactly like a missing one: the answer must not tell
    which order ids exist.
    """
    viewer = await ctx.require_user()
    not_found = NotFound(f"Order {id!r} not found.", field="id")
    order_id = parse_id(id)
    if order_id is None:
        raise not_found
    with ctx.deps.subscription_slots.taken(ctx):
        # Listen before reading the snapshot, so no change can fall between the two.
        async with ctx.deps.live.subscribe(
                "orders", lambda payload: payload["order"]["id"] == order_id) as subscription:
            order = (await ctx.deps.reader.orders_by_ids([order_id])).get(order_id)
            if order is None or not order.visible_to(viewer):
                raise not_found
            seen_version = order.version
            yield _order_snapshot(ctx, order)
            access = LiveViewer(ctx, viewer)
            async for message in until_session_ends(ctx, viewer, subscription):
                if is_resync(message):
                    order = await _order_after_gap(ctx, message, order_id)
                    if order is None or not order.visible_to(await access.current()):
                        raise Forbidden("You may no longer follow this order.")
                    seen_version = order.version
                    yield _order_snapshot(ctx, order)
                    continue
                update = _order_update(message)
                if update.order.version <= seen_version:
                    continue  # already in the snapshot
                if not update.order.visible_to(await access.current()):
                    raise Forbidden("You may no longer follow this order.")
                seen_version = update.order.version
                yield update


async def order_events(ctx: RequestContext, *,
                       status: OrderStatus | None) -> AsyncIterator[OrderUpdate]:
    """Admins: every order's changes. Customers: their own. Optionally one status only.

    An admin demoted while listening gets FORBIDDEN instead of the next event (subscribing
    again follows their own orders); a customer promoted while listening keeps a customer's
    view until they subscribe again.
    """
    viewer = await ctx.require_user()
    everyone = viewer.is_admin
    wanted_status = status.value if status is not None else None

    def wants(payload: dict[str, Any]) -> bool:
        order = payload["order"]
        return (everyone or order["customer_id"] == viewer.id) and \
            (wanted_status is None or order["status"] == wanted_status)

    with ctx.deps.subscription_slots.taken(ctx):
        async with ctx.deps.live.subscribe("orders", wants) as subscription:
            access = LiveViewer(ctx, viewer)
            async for message in until_session_ends(ctx, viewer, subscription):
                if is_resync(message):
                    current = await access.current()
                    if current is None or (everyone and not current.is_admin):
                        raise Forbidden(NO_LONGER_ADMIN)
                    for update in await _newest_orders_after_gap(ctx, message, current,
                                                                 status):
                        yield update
                    continue
                update = _order_update(message)
                if not update.order.visible_to(await access.current()):
                    raise Forbidden(NO_LONGER_ADMIN)
                yield update


async def _order_after_gap(ctx: RequestContext, message: LiveMessage,
                          order_id: int) -> Order | None:
    orders = await shared_read(message, ("order", order_id),
                           lambda: ctx.deps.reader.orders_by_ids([order_id]))
    return orders.get(order_id)


async def _newest_orders_after_gap(ctx: RequestContext, message: LiveMessage, viewer: User,
                                   status: OrderStatus | None) -> list[OrderUpdate]:
    """SNAPSHOTs of the newest orders an orderEvents subscription follows, oldest first."""
    customer_id = None if viewer.is_admin else viewer.id
    page = await shared_read(message, ("orders", customer_id, status), lambda: (
        ctx.deps.reader.orders_page(first=RESYNC_ORDER_SNAPSHOTS, after_id=None,
                                        status=status, customer_id=customer_id)))
    return [_order_snapshot(ctx, order) for order in reversed(page.items)
            if order.visible_to(viewer)]

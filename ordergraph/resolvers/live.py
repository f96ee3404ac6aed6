"""Subscriptions: authorise at the start, send a SNAPSHOT, then stream committed changes.

Authorisation is checked again on every event (cheaply, see live_access.py): an admin
demoted while listening stops receiving what only admins see, and products taken off sale
leave the public feed.

When the live hub may have missed events (its broadcast was down: a Redis restart) it sends
each subscription a message of kind "resync"; the subscription then re-reads what it shows
and sends it again as SNAPSHOTs, so a client is right again without resubscribing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ordergraph.domain.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from ordergraph.domain.model import Order, OrderStatus, Stock, User, order_from_snapshot
from ordergraph.domain.ports import ReadStore
from ordergraph.domain.ports_api import LiveMessage, LiveSubscription
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.live_access import LiveViewer
from ordergraph.resolvers.pagination import parse_id

log = logging.getLogger(__name__)

SNAPSHOT = "SNAPSHOT"
MAX_STOCK_SNAPSHOTS = 1000
# The hub's signal that events may have been lost (adapters/live.py, RESYNC_KIND).
RESYNC_KIND = "resync"
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


@dataclass(frozen=True, slots=True)
class StockUpdate:
    event_id: str
    type: str
    stock: Stock
    at: datetime
    cache: dict[str, Any] = field(default_factory=dict)


def _order_update(message: LiveMessage) -> OrderUpdate:
    payload = message.payload
    previous = payload.get("previous_status")
    return OrderUpdate(event_id=payload["event_id"], type=payload["type"],
                       previous_status=OrderStatus(previous) if previous else None,
                       order=order_from_snapshot(payload["order"]),
                       at=datetime.fromisoformat(payload["at"]), cache=message.cache)


def _stock_update(message: LiveMessage) -> StockUpdate:
    payload = message.payload
    stock = Stock(product_id=int(payload["product_id"]), available=int(payload["available"]),
                  reserved=int(payload["reserved"]),
                  updated_at=datetime.fromisoformat(payload["updated_at"]))
    return StockUpdate(event_id=payload["event_id"], type=payload["type"], stock=stock,
                       at=datetime.fromisoformat(payload["at"]), cache=message.cache)


def _is_resync(message: LiveMessage) -> bool:
    return message.payload.get("kind") == RESYNC_KIND


async def _shared(message: LiveMessage, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
    """One read per resync round for all of this process's subscribers that need it (a
    resync reaches every subscriber at once: they must not all query the same thing)."""
    lookup: asyncio.Future[Any] | None = message.cache.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(read())
        message.cache[key] = lookup
    # Shielded: one subscriber leaving must not cancel the read the others wait for.
    return await asyncio.shield(lookup)


def _order_snapshot(ctx: RequestContext, order: Order) -> OrderUpdate:
    return OrderUpdate(event_id=f"snapshot-{order.id}-{order.version}", type=SNAPSHOT,
                       previous_status=None, order=order, at=ctx.deps.clock.now())


async def _until_session_ends(ctx: RequestContext, viewer: User | None,
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
            async for message in _until_session_ends(ctx, viewer, subscription):
                if _is_resync(message):
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
            async for message in _until_session_ends(ctx, viewer, subscription):
                if _is_resync(message):
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


# A transport's way to write a shared live result straight to one subscriber: (the event's
# shared cache, done, the message) -> whether it took it (schema/live_execution.py:
# direct_delivery).
DirectSend = Callable[[dict[str, Any], Callable[..., None], LiveMessage], bool]


async def stock_updates(ctx: RequestContext, *, product_ids: Sequence[str] | None,
                        direct: DirectSend | None = None) -> AsyncIterator[StockUpdate]:
    """Stock changes of some products (all when None). Public; starts with SNAPSHOTs.

    Products off sale are left out for everyone but admins, in the snapshots and in the
    changes, as if they did not exist.

    With `direct`, a public subscriber's changes skip this generator when what it would
    yield is already known for everyone of its audience (bench/RESULTS.md: a flash sale's
    crowd): see `_direct_stock` for when.
    """
    viewer = await ctx.viewer()
    wanted: set[int] | None = None
    if product_ids is not None:
        if len(product_ids) > MAX_STOCK_SNAPSHOTS:
            raise ValidationFailed(f"At most {MAX_STOCK_SNAPSHOTS} products.",
                                   field="productIds")
        wanted = {pid for pid in (parse_id(raw) for raw in product_ids)
                  if pid is not None}

    def wants(payload: dict[str, Any]) -> bool:
        return wanted is None or payload["product_id"] in wanted

    with ctx.deps.subscription_slots.taken(ctx):
        async with ctx.deps.live.subscribe("stock", wants) as subscription:
            for snapshot in await _stock_snapshots(ctx, viewer, wanted):
                yield snapshot
            # Only now: every snapshot is out, so no change can go out before one.
            if direct is not None and (viewer is None or not viewer.is_admin):
                subscription.deliver_directly(_direct_stock(ctx, direct))  # type: ignore[attr-defined]
            access = LiveViewer(ctx, viewer)
            async for message in _until_session_ends(ctx, viewer, subscription):
                current = await access.current()
                if _is_resync(message):
                    for snapshot in await _stock_snapshots(ctx, current, wanted, message):
                        yield snapshot
                    continue
                if (current is None or not current.is_admin) and \
                        not await _on_sale(ctx.deps.reader, message):
                    continue
                yield _stock_update(message)


def _direct_stock(ctx: RequestContext, send: DirectSend) -> _DirectStock:
    expires_at = ctx.deps.tokens.expires_at(ctx.token) if ctx.token is not None else None
    return _DirectStock(send, expires_at, ctx.deps.clock, ctx.deps.reader)


class _DirectStock:
    """What the loop in stock_updates would do for a public subscriber, when it can be known
    without running it: a change (not a resync) while the session lasts, of a product whose
    on-sale read for this event is done: off sale, dropped; on sale, the group's shared
    result written as it is. A non-admin's view never changes while they listen (LiveViewer
    re-reads admins only), so it is the same for everyone of the audience. Anything else goes
    the usual way. (Slots: a crowd holds thousands of these.)"""

    __slots__ = ("clock", "expires_at", "reader", "send")

    def __init__(self, send: DirectSend, expires_at: datetime | None, clock: Any,
                 reader: ReadStore) -> None:
        self.send, self.expires_at, self.clock, self.reader = send, expires_at, clock, reader

    def __call__(self, message: LiveMessage, done: Callable[..., None]) -> bool:
        if _is_resync(message) or (self.expires_at is not None and
                                   self.clock.now() >= self.expires_at):
            return False
        lookup = _on_sale_lookup(self.reader, message)
        if lookup.done():
            return self._decide(message, lookup, done)

        def then(_: asyncio.Future[bool]) -> None:
            if not self._decide(message, lookup, done):
                done(message)  # the usual way after all

        lookup.add_done_callback(then)
        return True

    def _decide(self, message: LiveMessage, lookup: asyncio.Future[bool],
                done: Callable[..., None]) -> bool:
        if lookup.cancelled() or lookup.exception() is not None:
            return False
        if not lookup.result():  # off sale: the public sees nothing of it
            done()
            return True
        return self.send(message.cache, done, message)


async def _order_after_gap(ctx: RequestContext, message: LiveMessage,
                          order_id: int) -> Order | None:
    orders = await _shared(message, ("order", order_id),
                           lambda: ctx.deps.reader.orders_by_ids([order_id]))
    return orders.get(order_id)


async def _newest_orders_after_gap(ctx: RequestContext, message: LiveMessage, viewer: User,
                                   status: OrderStatus | None) -> list[OrderUpdate]:
    """SNAPSHOTs of the newest orders an orderEvents subscription follows, oldest first."""
    customer_id = None if viewer.is_admin else viewer.id
    page = await _shared(message, ("orders", customer_id, status), lambda: (
        ctx.deps.reader.orders_page(first=RESYNC_ORDER_SNAPSHOTS, after_id=None,
                                        status=status, customer_id=customer_id)))
    return [_order_snapshot(ctx, order) for order in reversed(page.items)
            if order.visible_to(viewer)]


async def _stock_snapshots(ctx: RequestContext, viewer: User | None, wanted: set[int] | None,
                           resync: LiveMessage | None = None) -> list[StockUpdate]:
    """The SNAPSHOTs a stock subscription starts with (or re-sends after a resync), in
    product order."""
    reader = ctx.deps.reader
    if wanted is None:
        stocks = await (reader.all_stocks(limit=MAX_STOCK_SNAPSHOTS) if resync is None else
                        _shared(resync, "all_stocks",  # products on sale
                                lambda: reader.all_stocks(limit=MAX_STOCK_SNAPSHOTS)))
    else:
        ids = sorted(wanted)
        if viewer is None or not viewer.is_admin:
            ids = [pid for pid, product in (await reader.products_by_ids(ids)).items()
                   if product.active]
        stocks = list((await reader.stocks_by_product_ids(ids)).values()) if ids else []
    now = ctx.deps.clock.now()
    snapshots = []
    for stock in sorted(stocks, key=lambda s: s.product_id):
        stamp = int(stock.updated_at.timestamp() * 1_000_000)
        snapshots.append(StockUpdate(event_id=f"snapshot-{stock.product_id}-{stamp}",
                                     type=SNAPSHOT, stock=stock, at=now))
    return snapshots


ON_SALE = "product_on_sale"


async def _on_sale(reader: ReadStore, message: LiveMessage) -> bool:
    """Whether a stock event's product is on sale now: read once per event for all of its
    public subscribers in this process, whatever their number."""
    # Shielded: one subscriber leaving must not cancel the read the others wait for.
    return await asyncio.shield(_on_sale_lookup(reader, message))


def _on_sale_lookup(reader: ReadStore, message: LiveMessage) -> asyncio.Future[bool]:
    lookup: asyncio.Future[bool] | None = message.cache.get(ON_SALE)
    if lookup is None:
        lookup = asyncio.ensure_future(_is_on_sale(reader, int(message.payload["product_id"])))
        message.cache[ON_SALE] = lookup
    return lookup


async def _is_on_sale(reader: ReadStore, product_id: int) -> bool:
    try:
        product = (await reader.products_by_ids([product_id])).get(product_id)
    except Exception:
        # Fail closed: the public misses one level, which the product's next change repeats.
        log.exception("could not tell whether product %s is on sale", product_id)
        return False
    return product is not None and product.active

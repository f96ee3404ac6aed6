"""stockUpdated: stock changes of some products, public; products off sale only for admins
(resolvers/live.py: what the subscriptions share).

A flash sale's crowd of public subscribers all receive the same bytes for one change: with a
transport that can write them directly (`direct`), most skip this generator altogether
(`_DirectStock`, bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ordergraph.domain.errors import ValidationFailed
from ordergraph.domain.model import Stock, User
from ordergraph.domain.ports_api import LiveMessage
from ordergraph.domain.read_ports import ReadStore
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.live import SNAPSHOT, is_resync, shared_read, until_session_ends
from ordergraph.resolvers.live_access import LiveViewer
from ordergraph.resolvers.pagination import parse_id

log = logging.getLogger(__name__)

MAX_STOCK_SNAPSHOTS = 1000


@dataclass(frozen=True, slots=True)
class StockUpdate:
    event_id: str
    type: str
    stock: Stock
    at: datetime
    cache: dict[str, Any] = field(default_factory=dict)


def _stock_update(message: LiveMessage) -> StockUpdate:
    payload = message.payload
    stock = Stock(product_id=int(payload["product_id"]), available=int(payload["available"]),
                  reserved=int(payload["reserved"]),
                  updated_at=datetime.fromisoformat(payload["updated_at"]))
    return StockUpdate(event_id=payload["event_id"], type=payload["type"], stock=stock,
                       at=datetime.fromisoformat(payload["at"]), cache=message.cache)


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
            async for message in until_session_ends(ctx, viewer, subscription):
                current = await access.current()
                if is_resync(message):
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
        if is_resync(message) or (self.expires_at is not None and
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


async def _stock_snapshots(ctx: RequestContext, viewer: User | None, wanted: set[int] | None,
                           resync: LiveMessage | None = None) -> list[StockUpdate]:
    """The SNAPSHOTs a stock subscription starts with (or re-sends after a resync), in
    product order."""
    reader = ctx.deps.reader
    if wanted is None:
        stocks = await (reader.all_stocks(limit=MAX_STOCK_SNAPSHOTS) if resync is None else
                        shared_read(resync, "all_stocks",  # products on sale
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

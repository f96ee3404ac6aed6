"""The root Subscription type (graphql-transport-ws or graphql-ws on /graphql)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from strawberry import UNSET

from ordergraph.resolvers import live_orders, live_stock
from ordergraph.resolvers.live import SNAPSHOT
from ordergraph.schema.enums import OrderStatus
from ordergraph.schema.live_execution import direct_delivery
from ordergraph.schema.types import Info, Order, Stock, opt

T = TypeVar("T")


@strawberry.type(description="A change to an order, or its SNAPSHOT when a subscription starts.")
class OrderEvent:
    event_id: strawberry.ID = strawberry.field(description="Unique per change, for "
                                                           "de-duplication.")
    type: str = strawberry.field(description="ORDER_CREATED, ORDER_PAYMENT_PENDING, "
                                             "ORDER_PAID, ORDER_FULFILLED, ..., or SNAPSHOT.")
    previous_status: OrderStatus | None
    order: Order = strawberry.field(description="State after the change; order.version "
                                                "orders events.")
    at: datetime
    # Shared by every subscriber of this one change (None for SNAPSHOTs): lets the
    # subscribers asking the same question share one execution (live_execution.py).
    shared_cache: strawberry.Private[dict[str, Any] | None] = None

    @classmethod
    def of(cls, update: live_orders.OrderUpdate) -> OrderEvent:
        return cls(event_id=strawberry.ID(update.event_id), type=update.type,
                   previous_status=update.previous_status, order=Order.of(update.order),
                   at=update.at, shared_cache=update.cache if update.type != SNAPSHOT
                   else None)


@strawberry.type(description="A stock level change, or its SNAPSHOT when a subscription starts.")
class StockEvent:
    event_id: strawberry.ID
    type: str = strawberry.field(description="STOCK_CHANGED or SNAPSHOT.")
    stock: Stock
    at: datetime
    shared_cache: strawberry.Private[dict[str, Any] | None] = None

    @classmethod
    def of(cls, update: live_stock.StockUpdate) -> StockEvent:
        return cls(event_id=strawberry.ID(update.event_id), type=update.type,
                   stock=Stock.of(update.stock), at=update.at,
                   shared_cache=update.cache if update.type != SNAPSHOT else None)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="One order's changes; owner or admin (others: "
                                         "NOT_FOUND, as for a missing order). Starts with a "
                                         "SNAPSHOT of the current state.")
    async def order_updated(self, info: Info, id: strawberry.ID
                            ) -> AsyncGenerator[OrderEvent, None]:
        async for update in live_orders.order_updates(info.context, id=id):
            info.context.use_shared_loaders(update.cache)
            yield _once(update, OrderEvent.of)

    @strawberry.subscription(description="Customers: their own orders. Admins: every order "
                                         "(live dashboard).")
    async def order_events(self, info: Info, status: OrderStatus | None = UNSET
                           ) -> AsyncGenerator[OrderEvent, None]:
        async for update in live_orders.order_events(info.context, status=opt(status)):
            info.context.use_shared_loaders(update.cache)
            yield _once(update, OrderEvent.of)

    @strawberry.subscription(description="Stock changes of the given products (all products "
                                         "when omitted). Public; reserved, and products off "
                                         "sale, only for admins. Starts with SNAPSHOTs.")
    async def stock_updated(self, info: Info, product_ids: list[strawberry.ID] | None = UNSET
                            ) -> AsyncGenerator[StockEvent, None]:
        async for update in live_stock.stock_updates(info.context, product_ids=opt(product_ids),
                                               direct=direct_delivery(info)):
            info.context.use_shared_loaders(update.cache)
            yield _once(update, StockEvent.of)


def _once(update: Any, build: Callable[[Any], T]) -> T:
    """The event's GraphQL object, built once for all its subscribers."""
    if "graphql_event" not in update.cache:
        update.cache["graphql_event"] = build(update)
    return update.cache["graphql_event"]

"""The root Subscription type (graphql-transport-ws or graphql-ws on /graphql)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import UNSET

from ordergraph.resolvers import live
from ordergraph.schema.enums import OrderStatus
from ordergraph.schema.types import Info, Order, Stock, opt


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

    @classmethod
    def of(cls, update: live.OrderUpdate) -> OrderEvent:
        return cls(event_id=strawberry.ID(update.event_id), type=update.type,
                   previous_status=update.previous_status, order=Order.of(update.order),
                   at=update.at)


@strawberry.type(description="A stock level change, or its SNAPSHOT when a subscription starts.")
class StockEvent:
    event_id: strawberry.ID
    type: str = strawberry.field(description="STOCK_CHANGED or SNAPSHOT.")
    stock: Stock
    at: datetime

    @classmethod
    def of(cls, update: live.StockUpdate) -> StockEvent:
        return cls(event_id=strawberry.ID(update.event_id), type=update.type,
                   stock=Stock.of(update.stock), at=update.at)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="One order's changes; owner or admin. Starts with a "
                                         "SNAPSHOT of the current state.")
    async def order_updated(self, info: Info, id: strawberry.ID
                            ) -> AsyncGenerator[OrderEvent, None]:
        async for update in live.order_updates(info.context, id=id):
            info.context.use_shared_loaders(update.cache)
            yield OrderEvent.of(update)

    @strawberry.subscription(description="Customers: their own orders. Admins: every order "
                                         "(live dashboard).")
    async def order_events(self, info: Info, status: OrderStatus | None = UNSET
                           ) -> AsyncGenerator[OrderEvent, None]:
        async for update in live.order_events(info.context, status=opt(status)):
            info.context.use_shared_loaders(update.cache)
            yield OrderEvent.of(update)

    @strawberry.subscription(description="Stock changes of the given products (all products "
                                         "when omitted). Public; reserved only for admins. "
                                         "Starts with SNAPSHOTs.")
    async def stock_updated(self, info: Info, product_ids: list[strawberry.ID] | None = UNSET
                            ) -> AsyncGenerator[StockEvent, None]:
        async for update in live.stock_updates(info.context, product_ids=opt(product_ids)):
            info.context.use_shared_loaders(update.cache)
            yield StockEvent.of(update)

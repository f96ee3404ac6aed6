"""The root Query type."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import UNSET

from ordergraph.resolvers import accounts, catalog, mail, orders, sales
from ordergraph.resolvers import shipping as shipping_fields
from ordergraph.schema.connections import AuditEntryConnection, OrderConnection, ProductConnection
from ordergraph.schema.enums import OrderStatus
from ordergraph.schema.mail import LocalMail
from ordergraph.schema.permissions import IsAdmin, IsAuthenticated
from ordergraph.schema.sales import Granularity, SalesReport
from ordergraph.schema.types import (
    Info,
    Order,
    PaymentConfig,
    Product,
    ShippingRates,
    User,
    opt,
)


@strawberry.type
class Query:
    @strawberry.field(description="The logged-in user; null when anonymous.")
    async def me(self, info: Info) -> User | None:
        user = await accounts.me(info.context)
        return User.of(user) if user else None

    @strawberry.field(description="The catalog, in id order. Public. `includeInactive` is "
                                  "honoured for admins only. `first` is capped at 100.")
    async def products(self, info: Info, first: int | None = 20, after: str | None = UNSET,
                       search: str | None = UNSET,
                       include_inactive: bool | None = False) -> ProductConnection:
        return ProductConnection.of(await catalog.products(
            info.context, first=first, after=opt(after), search=opt(search),
            include_inactive=include_inactive))

    @strawberry.field(description="One product by id or sku. Public; inactive ones for admins.")
    async def product(self, info: Info, id: strawberry.ID | None = UNSET,
                      sku: str | None = UNSET) -> Product | None:
        found = await catalog.product(info.context, id=opt(id), sku=opt(sku))
        return Product.of(found) if found else None

    @strawberry.field(description="Your orders, newest first. Logged in.",
                      permission_classes=[IsAuthenticated])
    async def my_orders(self, info: Info, first: int | None = 20, after: str | None = UNSET,
                        status: OrderStatus | None = UNSET) -> OrderConnection:
        return OrderConnection.of(await orders.my_orders(
            info.context, first=first, after=opt(after), status=opt(status)))

    @strawberry.field(description="One order: its owner or an admin; null for anyone else.",
                      permission_classes=[IsAuthenticated])
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        found = await orders.order(info.context, id=id)
        return Order.of(found) if found else None

    @strawberry.field(description="Every order, newest first. Admins.",
                      permission_classes=[IsAdmin])
    async def orders(self, info: Info, first: int | None = 20, after: str | None = UNSET,
                     status: OrderStatus | None = UNSET,
                     customer_id: strawberry.ID | None = UNSET) -> OrderConnection:
        return OrderConnection.of(await orders.orders(
            info.context, first=first, after=opt(after), status=opt(status),
            customer_id=opt(customer_id)))

    @strawberry.field(description="Every product with its stock (active or not), optionally "
                                  "only those with fewer than `lowStockBelow` available. Admins.",
                      permission_classes=[IsAdmin])
    async def inventory(self, info: Info, first: int | None = 50, after: str | None = UNSET,
                        low_stock_below: int | None = UNSET) -> ProductConnection:
        return ProductConnection.of(await catalog.inventory(
            info.context, first=first, after=opt(after), low_stock_below=opt(low_stock_below)))

    @strawberry.field(description="The audit log, newest first, filterable. Admins.",
                      permission_classes=[IsAdmin])
    async def audit_log(self, info: Info, first: int | None = 50, after: str | None = UNSET,
                        entity_type: str | None = UNSET, entity_id: strawberry.ID | None = UNSET,
                        actor_id: strawberry.ID | None = UNSET) -> AuditEntryConnection:
        return AuditEntryConnection.of(await accounts.audit_log(
            info.context, first=first, after=opt(after), entity_type=opt(entity_type),
            entity_id=opt(entity_id), actor_id=opt(actor_id)))

    @strawberry.field(description="Revenue, orders, conversion and top products between `from` "
                                  "(inclusive) and `to` (exclusive), bucketed by UTC hour or "
                                  "day. At most 366 days; HOUR for at most 31. Admins.",
                      permission_classes=[IsAdmin])
    async def sales_report(self, info: Info,
                           start: Annotated[datetime, strawberry.argument(name="from")],
                           end: Annotated[datetime, strawberry.argument(name="to")],
                           granularity: Granularity | None = Granularity.DAY) -> SalesReport:
        return SalesReport.of(await sales.sales_report(
            info.context, start=start, end=end, granularity=granularity or Granularity.DAY))

    @strawberry.field(description="What shipping costs, to show before paying. Public.")
    def shipping_rates(self, info: Info) -> ShippingRates:
        return ShippingRates.of(shipping_fields.rates(info.context),
                                info.context.deps.currency)
    @strawberry.field(description="What the local SMTP sink received, newest first: local "
                                  "mail mode only (no SMTP_URL, never in production), null "
                                  "otherwise. Admins.",
                      permission_classes=[IsAdmin])
    async def local_mailbox(self, info: Info, first: int | None = 50) -> list[LocalMail] | None:
        messages = await mail.local_mailbox(info.context, first=first)
        return None if messages is None else [LocalMail.of(m) for m in messages]

    @strawberry.field(description="Which Stripe.js to load and with which key. Public.")
    def payment_config(self, info: Info) -> PaymentConfig:
        return PaymentConfig.of(info.context.deps.payment)

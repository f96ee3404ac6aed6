"""The admins' sales report, as GraphQL types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from ordergraph.domain import model, sales
from ordergraph.resolvers import sales as report
from ordergraph.schema.enums import OrderStatus
from ordergraph.schema.types import Info, Money, Product

Granularity = strawberry.enum(sales.Granularity, name="Granularity",
                              description="The length of a sales report's buckets (UTC).")


async def _product(info: Info, product_id: int) -> Product:
    product = await info.context.loaders.product.load(product_id)
    assert product is not None, product_id  # a foreign key guarantees it
    return Product.of(product)


@strawberry.type(description="One bucket of a sales report's time series.")
class SalesBucket:
    start: datetime = strawberry.field(description="The bucket's first instant (UTC).")
    revenue: Money = strawberry.field(description="Paid minus refunded in this bucket.")
    orders_paid: int
    orders_refunded: int


@strawberry.type(description="How many orders started in the window are in a status now.")
class OrderStatusCount:
    status: OrderStatus
    count: int


@strawberry.type(description="A product's sales in the window, from orders paid in it and "
                             "not refunded since.")
class ProductSales:
    units: int
    revenue: Money
    _product_id: strawberry.Private[int]

    @strawberry.field
    async def product(self, info: Info) -> Product:
        return await _product(info, self._product_id)


@strawberry.type(description="When a product runs out if it keeps selling at the window's "
                             "rate.")
class StockForecast:
    available: int = strawberry.field(description="Units that can be bought now.")
    units_per_day: float = strawberry.field(description="Units sold per day of the window "
                                                        "so far.")
    days_left: float = strawberry.field(description="available / unitsPerDay.")
    _product_id: strawberry.Private[int]

    @strawberry.field
    async def product(self, info: Info) -> Product:
        return await _product(info, self._product_id)


@strawberry.type(description="How the shop sells over a window, in the shop's currency. "
                             "Money is counted when it moves: an order's total when it "
                             "became PAID, taken off again when it became REFUNDED.")
class SalesReport:
    start: datetime = strawberry.field(name="from", description="Inclusive.")
    end: datetime = strawberry.field(name="to", description="Exclusive.")
    granularity: Granularity
    revenue: Money = strawberry.field(description="grossSales minus refunds.")
    gross_sales: Money = strawberry.field(description="Totals of orders that became PAID.")
    refunds: Money = strawberry.field(description="Totals of orders that became REFUNDED.")
    orders_paid: int
    orders_refunded: int
    average_order_value: Money | None = strawberry.field(
        description="grossSales / ordersPaid, to the cent; null when nothing was paid.")
    orders_by_status: list[OrderStatusCount] = strawberry.field(
        description="Orders created in the window, by their status now.")
    checkouts_started: int = strawberry.field(description="Orders created in the window.")
    checkouts_paid: int = strawberry.field(
        description="Of those, the ones whose payment succeeded (PAID, FULFILLED, REFUNDED).")
    conversion_rate: float | None = strawberry.field(
        description="checkoutsPaid / checkoutsStarted; null when none started.")
    series: list[SalesBucket] = strawberry.field(description="Every bucket, empty ones too.")
    top_products_by_units: list[ProductSales] = strawberry.field(description="At most 5.")
    top_products_by_revenue: list[ProductSales] = strawberry.field(description="At most 5.")
    running_out: list[StockForecast] = strawberry.field(
        description="Products that sold in the window, soonest out of stock first; at most 5.")

    @classmethod
    def of(cls, found: report.SalesReport) -> SalesReport:
        window, figures = found.window, found.figures

        def money(cents: int) -> Money:
            return Money.of(found.money(cents))

        def product_sales(rows: list[sales.ProductSales]) -> list[ProductSales]:
            return [ProductSales(units=r.units, revenue=money(r.revenue_cents),
                                 _product_id=r.product_id) for r in rows]

        average = found.average_order_cents
        return cls(
            start=window.start, end=window.end, granularity=window.granularity,
            revenue=money(found.gross_cents - found.refunded_cents),
            gross_sales=money(found.gross_cents), refunds=money(found.refunded_cents),
            orders_paid=found.orders_paid, orders_refunded=found.orders_refunded,
            average_order_value=None if average is None else money(average),
            orders_by_status=[OrderStatusCount(status=model.OrderStatus(status), count=count)
                              for status, count in sorted(figures.orders_by_status.items())],
            checkouts_started=found.checkouts_started, checkouts_paid=found.checkouts_paid,
            conversion_rate=found.conversion_rate,
            series=[SalesBucket(start=b.start, revenue=money(b.revenue_cents),
                                orders_paid=b.orders_paid, orders_refunded=b.orders_refunded)
                    for b in figures.series],
            top_products_by_units=product_sales(figures.top_by_units),
            top_products_by_revenue=product_sales(figures.top_by_revenue),
            running_out=[StockForecast(available=f.available, units_per_day=f.units_per_day,
                                       days_left=f.days_left, _product_id=f.product_id)
                         for f in found.forecasts],
        )

"""The admins' sales report: check the window, read the aggregates, derive the ratios."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ordergraph.domain.model import Money
from ordergraph.domain.sales import (
    EVER_PAID,
    Granularity,
    SalesFigures,
    SalesWindow,
    StockOutlook,
)
from ordergraph.resolvers.context import RequestContext


@dataclass(frozen=True, slots=True)
class Forecast:
    product_id: int
    available: int
    units_per_day: float
    days_left: float


@dataclass(frozen=True, slots=True)
class SalesReport:
    window: SalesWindow
    figures: SalesFigures
    forecasts: list[Forecast]

    def money(self, cents: int) -> Money:
        return Money(cents, self.window.currency)

    @property
    def gross_cents(self) -> int:
        return sum(bucket.gross_cents for bucket in self.figures.series)

    @property
    def refunded_cents(self) -> int:
        return sum(bucket.refunded_cents for bucket in self.figures.series)

    @property
    def orders_paid(self) -> int:
        return sum(bucket.orders_paid for bucket in self.figures.series)

    @property
    def orders_refunded(self) -> int:
        return sum(bucket.orders_refunded for bucket in self.figures.series)

    @property
    def average_order_cents(self) -> int | None:
        """Gross paid per order paid, rounded to the cent; None when nothing was paid."""
        return round(self.gross_cents / self.orders_paid) if self.orders_paid else None

    @property
    def checkouts_started(self) -> int:
        return sum(self.figures.orders_by_status.values())

    @property
    def checkouts_paid(self) -> int:
        return sum(self.figures.orders_by_status.get(status, 0) for status in EVER_PAID)

    @property
    def conversion_rate(self) -> float | None:
        started = self.checkouts_started
        return self.checkouts_paid / started if started else None


def _forecast(outlook: StockOutlook, elapsed_days: float) -> Forecast:
    per_day = outlook.units_sold / elapsed_days
    return Forecast(outlook.product_id, outlook.available, per_day,
                    outlook.available / per_day)


async def sales_report(ctx: RequestContext, *, start: datetime, end: datetime,
                       granularity: Granularity) -> SalesReport:
    await ctx.require_admin()
    s = ctx.deps
    window = SalesWindow.checked(start, end, granularity, s.currency)
    figures = await s.reader.sales_report(window)
    elapsed = window.elapsed_days(s.clock.now())
    return SalesReport(window, figures, [_forecast(o, elapsed) for o in figures.running_out])

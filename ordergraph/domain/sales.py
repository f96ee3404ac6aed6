"""The sales report's window and figures: plain data, read by `ReadStore.sales_report`.

Money is counted when it moves: an order's total is revenue at the moment the order became
PAID and comes off again at the moment it became REFUNDED (the audit log dates both exactly).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from ordergraph.domain.errors import ValidationFailed

MAX_WINDOW = timedelta(days=366)
MAX_HOURLY_WINDOW = timedelta(days=31)  # 744 hourly buckets at most
# Statuses an order can only be in after its payment succeeded (PAID is entered once, from
# PAYMENT_PENDING; FULFILLED and REFUNDED only from PAID).
EVER_PAID = ("PAID", "FULFILLED", "REFUNDED")


class Granularity(enum.StrEnum):
    HOUR = "HOUR"
    DAY = "DAY"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self is Granularity.HOUR else timedelta(days=1)

    def floor(self, at: datetime) -> datetime:
        """The start of the bucket `at` falls in (buckets are UTC hours or days)."""
        hour = at.replace(minute=0, second=0, microsecond=0)
        return hour if self is Granularity.HOUR else hour.replace(hour=0)


@dataclass(frozen=True, slots=True)
class SalesWindow:
    start: datetime  # inclusive
    end: datetime  # exclusive
    granularity: Granularity
    currency: str

    @classmethod
    def checked(cls, start: datetime, end: datetime, granularity: Granularity,
                currency: str) -> SalesWindow:
        """VALIDATION_FAILED for a window the report will not compute."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValidationFailed("Give `from` and `to` with a time zone.", field="from")
        if start >= end:
            raise ValidationFailed("`from` must be before `to`.", field="to")
        if end - start > MAX_WINDOW:
            raise ValidationFailed("A report covers at most 366 days.", field="to")
        if granularity is Granularity.HOUR and end - start > MAX_HOURLY_WINDOW:
            raise ValidationFailed("Hourly buckets for windows of at most 31 days; use DAY.",
                                   field="granularity")
        return cls(start, end, granularity, currency)

    def bucket_starts(self) -> list[datetime]:
        """Every bucket of the window, the empty ones too (a chart needs its gaps)."""
        starts, at = [], self.granularity.floor(self.start)
        while at < self.end:
            starts.append(at)
            at += self.granularity.step
        return starts

    def elapsed_days(self, now: datetime) -> float:
        """Days of the window that have happened: the denominator of a rate."""
        return max((min(self.end, now) - self.start).total_seconds(), 1.0) / 86400


@dataclass(frozen=True, slots=True)
class SalesBucket:
    start: datetime
    gross_cents: int = 0
    refunded_cents: int = 0
    orders_paid: int = 0
    orders_refunded: int = 0

    @property
    def revenue_cents(self) -> int:
        return self.gross_cents - self.refunded_cents


@dataclass(frozen=True, slots=True)
class ProductSales:
    product_id: int
    units: int
    revenue_cents: int


@dataclass(frozen=True, slots=True)
class StockOutlook:
    product_id: int
    units_sold: int
    available: int


@dataclass(frozen=True, slots=True)
class SalesFigures:
    """What the database answered; the report's ratios are derived from it."""

    series: list[SalesBucket]
    orders_by_status: dict[str, int]  # orders created in the window, by their status now
    top_by_units: list[ProductSales]
    top_by_revenue: list[ProductSales]
    running_out: list[StockOutlook]  # soonest first

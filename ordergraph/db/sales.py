"""The sales report in SQL: aggregates only, never the orders themselves.

When an order became PAID or REFUNDED is read from the audit log: its ORDER_STATUS_CHANGED
row is written in the transaction that changed the status, with that change's time, and is
never rewritten. `orders.updated_at` would not do: any later change (fulfilment, a refund)
moves it. A status is entered at most once (PAID only from PAYMENT_PENDING, REFUNDED only
from PAID), so each order counts once per side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ordergraph.db.tables import audit_log, inventory, order_items, orders
from ordergraph.domain.sales import (
    Granularity,
    ProductSales,
    SalesBucket,
    SalesFigures,
    SalesWindow,
    StockOutlook,
)

TOP_PRODUCTS = 5


def _status_entered(status: str, window: SalesWindow) -> Any:
    """Orders (in the shop's currency) that entered `status` inside the window: when, and
    their total. The join is on the audit row's entity id, a string."""
    entered = audit_log.join(orders, audit_log.c.entity_id == sa.cast(orders.c.id, sa.String))
    return (sa.select(orders.c.id.label("order_id"), orders.c.total_cents, audit_log.c.at)
            .select_from(entered)
            .where(audit_log.c.entity_type == "ORDER",
                   audit_log.c.action == "ORDER_STATUS_CHANGED",
                   audit_log.c.after["status"].as_string() == status,
                   audit_log.c.at >= window.start, audit_log.c.at < window.end,
                   orders.c.currency == window.currency)
            .subquery(status.lower()))


def _bucket(at: Any, granularity: Granularity, dialect: str) -> Any:
    """`at` truncated to its UTC hour or day."""
    if dialect == "postgresql":  # the time zone argument: UTC whatever the session's
        return sa.func.date_trunc(granularity.value.lower(), at, "UTC")
    # SQLite keeps UTC datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text.
    pattern = "%Y-%m-%d %H:00:00" if granularity is Granularity.HOUR else "%Y-%m-%d 00:00:00"
    return sa.func.strftime(pattern, at)


def _as_utc(bucket: datetime | str) -> datetime:
    if isinstance(bucket, str):  # SQLite
        bucket = datetime.fromisoformat(bucket)
    return bucket.replace(tzinfo=UTC) if bucket.tzinfo is None else bucket.astimezone(UTC)


async def _series(conn: AsyncConnection, window: SalesWindow) -> list[SalesBucket]:
    """Money in and out per bucket, every bucket of the window listed (empty ones as 0)."""
    paid, refunded = _status_entered("PAID", window), _status_entered("REFUNDED", window)
    moves = sa.union_all(
        sa.select(paid.c.at, paid.c.total_cents.label("gross"), sa.literal(0).label("back"),
                  sa.literal(1).label("paid"), sa.literal(0).label("refunded")),
        sa.select(refunded.c.at, sa.literal(0), refunded.c.total_cents,
                  sa.literal(0), sa.literal(1)),
    ).subquery("moves")
    bucket = _bucket(moves.c.at, window.granularity, conn.dialect.name).label("bucket")
    query = (sa.select(bucket, sa.func.sum(moves.c.gross), sa.func.sum(moves.c.back),
                       sa.func.sum(moves.c.paid), sa.func.sum(moves.c.refunded))
             .group_by(bucket))
    found = {_as_utc(row[0]): SalesBucket(_as_utc(row[0]), *(int(n) for n in row[1:]))
             for row in await conn.execute(query)}
    return [found.get(start, SalesBucket(start)) for start in window.bucket_starts()]


async def _orders_by_status(conn: AsyncConnection, window: SalesWindow) -> dict[str, int]:
    """Checkouts started in the window, counted by where they are now."""
    query = (sa.select(orders.c.status, sa.func.count())
             .where(orders.c.created_at >= window.start, orders.c.created_at < window.end,
                    orders.c.currency == window.currency)
             .group_by(orders.c.status))
    return {status: int(count) for status, count in await conn.execute(query)}


def _units_sold(window: SalesWindow) -> Any:
    """Units and money per product, from orders paid in the window and not refunded since."""
    paid = _status_entered("PAID", window)
    kept = orders.c.status.in_(("PAID", "FULFILLED"))
    return (sa.select(order_items.c.product_id,
                      sa.func.sum(order_items.c.quantity).label("units"),
                      sa.func.sum(order_items.c.quantity * order_items.c.unit_price_cents)
                      .label("revenue_cents"))
            .select_from(order_items.join(paid, paid.c.order_id == order_items.c.order_id)
                         .join(orders, orders.c.id == order_items.c.order_id))
            .where(kept)
            .group_by(order_items.c.product_id)
            .subquery("sold"))


async def _top_products(conn: AsyncConnection, sold: Any, by: Any) -> list[ProductSales]:
    query = (sa.select(sold.c.product_id, sold.c.units, sold.c.revenue_cents)
             .order_by(by.desc(), sold.c.product_id).limit(TOP_PRODUCTS))
    return [ProductSales(int(p), int(u), int(r)) for p, u, r in await conn.execute(query)]


async def _running_out(conn: AsyncConnection, sold: Any) -> list[StockOutlook]:
    """Products that sold, soonest out first: at a constant rate, days left are proportional
    to available / units sold (the window's length is the same for all)."""
    query = (sa.select(sold.c.product_id, sold.c.units, inventory.c.available)
             .select_from(sold.join(inventory, inventory.c.product_id == sold.c.product_id))
             .order_by((inventory.c.available * 1.0 / sold.c.units).asc(), sold.c.product_id)
             .limit(TOP_PRODUCTS))
    return [StockOutlook(int(p), int(u), int(a)) for p, u, a in await conn.execute(query)]


async def read_sales(engine: AsyncEngine, window: SalesWindow) -> SalesFigures:
    """Every figure from one snapshot, so they agree with each other (ordersPaid with
    checkoutsPaid, the series with the top products) even while orders are being paid."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ",
                                         postgresql_readonly=True)
        async with conn.begin():  # SQLite: one read transaction is one snapshot
            return await _figures(conn, window)


async def _figures(conn: AsyncConnection, window: SalesWindow) -> SalesFigures:
    sold = _units_sold(window)
    return SalesFigures(
        series=await _series(conn, window),
        orders_by_status=await _orders_by_status(conn, window),
        top_by_units=await _top_products(conn, sold, sold.c.units),
        top_by_revenue=await _top_products(conn, sold, sold.c.revenue_cents),
        running_out=await _running_out(conn, sold),
    )

"""The API's queries. Each call takes its own pooled connection for one short read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ordergraph.db import rows
from ordergraph.db.driver import Driver
from ordergraph.db.order_repository import items_by_order
from ordergraph.db.repositories import among
from ordergraph.db.sales import read_sales
from ordergraph.db.tables import audit_log, default_addresses, inventory, orders, products, users
from ordergraph.domain.model import Order, OrderStatus, Product, Stock, User
from ordergraph.domain.read_ports import AuditRecord, Page
from ordergraph.domain.sales import SalesFigures, SalesWindow
from ordergraph.domain.shipping import Address

# Every request's viewer lookup, built once (SQLAlchemy skips rebuilding it each time).
_USERS_BY_IDS = {dialect: sa.select(users).where(among(users.c.id, dialect))
                 for dialect in ("postgresql", "sqlite")}
# PostgreSQL, on the driver (driver.py): every authenticated request reads its viewer.
_DRIVER_USERS_BY_IDS = (f"SELECT {', '.join(users.c.keys())} FROM users "  # noqa: S608
                        "WHERE id = ANY(%(ids)s)")


class SqlReadStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            if self._engine.dialect.name == "postgresql":
                # Each statement on its own snapshot, as READ COMMITTED gives anyway, without
                # the BEGIN and ROLLBACK round trips (and whatever level writes run at).
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            else:
                await conn.execution_options(read_only=True)  # SQLite: BEGIN DEFERRED
            yield conn

    # ---- products ----

    def _product_filters(self, *, search: str | None, include_inactive: bool,
                         low_stock_below: int | None) -> list[Any]:
        filters: list[Any] = []
        if not include_inactive:
            filters.append(products.c.active.is_(True))
        if search:
            filters.append(sa.or_(products.c.name.icontains(search, autoescape=True),
                                  products.c.sku.icontains(search, autoescape=True),
                                  products.c.description.icontains(search, autoescape=True)))
        if low_stock_below is not None:
            filters.append(inventory.c.available < low_stock_below)
        return filters

    async def products_page(self, *, first: int, after_id: int | None, search: str | None,
                            include_inactive: bool,
                            low_stock_below: int | None = None
                            ) -> tuple[Page[Product], dict[int, Stock]]:
        """A page of products in id order, with their stock: one statement (the catalog is the
        hottest read there is)."""
        filters = self._product_filters(search=search, include_inactive=include_inactive,
                                        low_stock_below=low_stock_below)
        source = products.join(inventory, inventory.c.product_id == products.c.id)
        # The window counts every match, before the cursor and the limit cut the page.
        matches = sa.select(*products.c, inventory.c.available, inventory.c.reserved,
                            inventory.c.updated_at.label("stock_updated_at"),
                            sa.func.count().over().label("total_count")) \
            .select_from(source).where(*filters).subquery()
        query = sa.select(matches)
        if after_id is not None:
            query = query.where(matches.c.id > after_id)
        query = query.order_by(matches.c.id).limit(first + 1)
        async with self._connection() as conn:
            found = (await conn.execute(query)).mappings().all()
            if found:
                total = int(found[0]["total_count"])
            else:  # past the end: nothing carried the count
                total = await conn.scalar(
                    sa.select(sa.func.count()).select_from(source).where(*filters)) or 0
        page = found[:first]
        stocks = {row["id"]: Stock(product_id=row["id"], available=row["available"],
                                   reserved=row["reserved"],
                                   updated_at=row["stock_updated_at"])
                  for row in page}
        return (Page(items=[rows.product_from_row(row) for row in page],
                     has_next=len(found) > first, total_count=total), stocks)

    async def products_by_ids(self, ids: Sequence[int]) -> dict[int, Product]:
        async with self._connection() as conn:
            result = await conn.execute(sa.select(products).where(products.c.id.in_(list(ids))))
            return {row["id"]: rows.product_from_row(row) for row in result.mappings()}

    async def product_by_sku(self, sku: str) -> Product | None:
        async with self._connection() as conn:
            row = (await conn.execute(
                sa.select(products).where(products.c.sku == sku))).mappings().first()
        return rows.product_from_row(row) if row else None

    async def stocks_by_product_ids(self, ids: Sequence[int]) -> dict[int, Stock]:
        async with self._connection() as conn:
            result = await conn.execute(
                sa.select(inventory).where(inventory.c.product_id.in_(list(ids))))
            return {row["product_id"]: rows.stock_from_row(row) for row in result.mappings()}

    async def all_stocks(self, *, limit: int) -> list[Stock]:
        """Stock of the active products, in product order."""
        async with self._connection() as conn:
            result = await conn.execute(
                sa.select(inventory).join(products, products.c.id == inventory.c.product_id)
                .where(products.c.active.is_(True)).order_by(inventory.c.product_id)
                .limit(limit))
            return [rows.stock_from_row(row) for row in result.mappings()]

    # ---- orders ----

    async def orders_page(self, *, first: int, after_id: int | None,
                          status: OrderStatus | None, customer_id: int | None) -> Page[Order]:
        """Newest first."""
        filters = _equal({orders.c.status: status.value if status else None,
                          orders.c.customer_id: customer_id})
        async with self._connection() as conn:
            found, has_next, total = await _newest_first(conn, orders, filters, first, after_id)
            items = await self._orders_with_lines(conn, found)
        return Page(items=items, has_next=has_next, total_count=total)

    async def orders_by_ids(self, ids: Sequence[int]) -> dict[int, Order]:
        async with self._connection() as conn:
            found = (await conn.execute(
                sa.select(orders).where(orders.c.id.in_(list(ids))))).mappings().all()
            return {order.id: order for order in await self._orders_with_lines(conn, found)}

    async def _orders_with_lines(self, conn: AsyncConnection,
                                 order_rows: Sequence[rows.Row]) -> list[Order]:
        if not order_rows:
            return []
        items = await items_by_order(conn, [row["id"] for row in order_rows])
        return [rows.order_from_row(row, items[row["id"]]) for row in order_rows]

    # ---- users and audit ----

    async def default_address(self, user_id: int) -> Address | None:
        async with self._connection() as conn:
            row = (await conn.execute(sa.select(default_addresses).where(
                default_addresses.c.user_id == user_id))).mappings().first()
        return rows.address_from_row(row) if row else None

    async def users_by_ids(self, ids: Sequence[int]) -> dict[int, User]:
        async with self._engine.connect() as conn:
            driver = await Driver.under(conn)
            if driver is not None:
                # Every authenticated request's viewer: in autocommit on psycopg itself, the
                # leanest read there is (no SQLAlchemy execution options to set and reset).
                found = await driver.autocommit_rows(_DRIVER_USERS_BY_IDS, {"ids": list(ids)})
            else:
                await conn.execution_options(read_only=True)  # SQLite: BEGIN DEFERRED
                found = (await conn.execute(_USERS_BY_IDS[conn.dialect.name],
                                            {"ids": list(ids)})).mappings().all()
            return {row["id"]: rows.user_from_row(row) for row in found}

    async def audit_page(self, *, first: int, after_id: int | None, entity_type: str | None,
                         entity_id: str | None, actor_id: int | None) -> Page[AuditRecord]:
        """Newest first."""
        filters = _equal({audit_log.c.entity_type: entity_type,
                          audit_log.c.entity_id: entity_id, audit_log.c.actor_id: actor_id})
        async with self._connection() as conn:
            found, has_next, total = await _newest_first(conn, audit_log, filters, first,
                                                         after_id)
        return Page(items=[rows.audit_from_row(row) for row in found], has_next=has_next,
                    total_count=total)

    async def audit_for_entities(self, entity_type: str,
                                 entity_ids: Sequence[str]) -> dict[str, list[AuditRecord]]:
        """Oldest first, per entity."""
        async with self._connection() as conn:
            result = await conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.entity_type == entity_type,
                       audit_log.c.entity_id.in_(list(entity_ids)))
                .order_by(audit_log.c.id))
            grouped: dict[str, list[AuditRecord]] = defaultdict(list)
            for row in result.mappings():
                grouped[row["entity_id"]].append(rows.audit_from_row(row))
        return grouped

    async def sales_report(self, window: SalesWindow) -> SalesFigures:
        """Aggregates for the admins' sales report (db/sales.py), from one snapshot."""
        return await read_sales(self._engine, window)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute(sa.text("SELECT 1"))


def _equal(conditions: dict[Any, Any]) -> list[Any]:
    """`column == value` for each condition whose value is given."""
    return [column == value for column, value in conditions.items() if value is not None]


async def _newest_first(conn: AsyncConnection, table: sa.Table, filters: list[Any],
                        first: int, after_id: int | None
                        ) -> tuple[Sequence[rows.Row], bool, int]:
    """One page of `table`'s rows by descending id after the cursor: (rows, has next, total)."""
    query = sa.select(table).where(*filters)
    if after_id is not None:
        query = query.where(table.c.id < after_id)
    found = (await conn.execute(query.order_by(table.c.id.desc()).limit(first + 1))
             ).mappings().all()
    total = await conn.scalar(sa.select(sa.func.count()).select_from(table).where(*filters))
    return found[:first], len(found) > first, total or 0

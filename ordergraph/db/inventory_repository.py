"""The inventory repository: a product's stock row, locked in product-id order and moved
by relative updates (with the caller's planned move in the same statement on PostgreSQL).
The other aggregates' repositories are in `repositories.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.db import rows
from ordergraph.db.driver import Driver
from ordergraph.db.repositories import Repository, Track, among
from ordergraph.db.tables import inventory
from ordergraph.domain.model import Stock

_LOCK_STOCK = {dialect: sa.select(inventory).where(among(inventory.c.product_id, dialect))
               .order_by(inventory.c.product_id).with_for_update()
               for dialect in ("postgresql", "sqlite")}
# PostgreSQL (on the driver, driver.py): lock the rows (in product-id order, as _LOCK_STOCK)
# and, in the same statement, move each row by the caller's planned deltas where the levels
# allow it. Answers the levels
# as they were under the lock, and whether each row moved. The new levels are computed from
# `locked` (the latest version, taken under the lock), never from `inventory.available`:
# under READ COMMITTED the UPDATE's own scan can still see the version its snapshot had,
# from before a concurrent change committed while we waited for the lock, and PostgreSQL
# checks the CHECK constraints on that row before it notices and rechecks.
_LOCK_AND_MOVE_STOCK = """
WITH locked AS (
    SELECT product_id, available, reserved, updated_at FROM inventory
    WHERE product_id = ANY(CAST(%(ids)s AS BIGINT[]))
    ORDER BY product_id FOR UPDATE
), planned AS (
    SELECT * FROM unnest(CAST(%(ids)s AS BIGINT[]), CAST(%(d_available)s AS INTEGER[]),
                         CAST(%(d_reserved)s AS INTEGER[]))
        AS p(product_id, d_available, d_reserved)
), moved AS (
    UPDATE inventory SET available = locked.available + planned.d_available,
                         reserved = locked.reserved + planned.d_reserved, updated_at = %(at)s
    FROM locked JOIN planned USING (product_id)
    WHERE inventory.product_id = locked.product_id
      AND (planned.d_available, planned.d_reserved) <> (0, 0)
      AND locked.available + planned.d_available >= 0
      AND locked.reserved + planned.d_reserved >= 0
    RETURNING inventory.product_id
)
SELECT locked.product_id, locked.available, locked.reserved, locked.updated_at,
       moved.product_id IS NOT NULL AS moved
FROM locked LEFT JOIN moved USING (product_id)
ORDER BY locked.product_id"""



class SqlInventoryRepository(Repository):
    def __init__(self, conn: AsyncConnection, track: Track, *,
                 driver: Driver | None = None) -> None:
        super().__init__(conn, track, driver=driver)
        # The levels the row has in this transaction (read under lock, or moved as planned);
        # save() writes the difference as a relative update, so a forgotten lock could never
        # lose an update (the CHECKs still refuse overselling).
        self._loaded: dict[int, tuple[int, int]] = {}

    async def add(self, stock: Stock) -> None:
        await self._conn.execute(sa.insert(inventory).values(
            product_id=stock.product_id, available=stock.available, reserved=stock.reserved,
            updated_at=stock.updated_at))
        self._loaded[stock.product_id] = (stock.available, stock.reserved)
        self._track(stock)

    async def lock(self, product_ids: Sequence[int], *,
                   planned: Mapping[int, tuple[int, int]] | None = None,
                   at: datetime | None = None) -> dict[int, Stock]:
        ordered = sorted(set(product_ids))
        if planned and at is not None and self._driver is not None:
            return await self._lock_and_move(self._driver, ordered, planned, at)
        result = await self._conn.execute(_LOCK_STOCK[self._conn.dialect.name],
                                           {"ids": ordered})
        return {stock.product_id: self._loaded_under_lock(stock)
                for stock in map(rows.stock_from_row, result.mappings())}

    async def _lock_and_move(self, driver: Driver, ordered: list[int],
                             planned: Mapping[int, tuple[int, int]],
                             at: datetime) -> dict[int, Stock]:
        """One statement instead of the lock and save()'s update: the caller's plan is
        written now, where the levels allow it, and save() then writes only what the
        caller did differently (nothing, when it did as planned)."""
        moves = [planned.get(product_id, (0, 0)) for product_id in ordered]
        found = await driver.rows(_LOCK_AND_MOVE_STOCK, {
            "ids": ordered, "d_available": [move[0] for move in moves],
            "d_reserved": [move[1] for move in moves], "at": at})
        stocks = {}
        for row in found:
            stock = self._loaded_under_lock(rows.stock_from_row(row))
            if row["moved"]:
                d_available, d_reserved = planned.get(stock.product_id, (0, 0))
                self._loaded[stock.product_id] = (stock.available + d_available,
                                                  stock.reserved + d_reserved)
            stocks[stock.product_id] = stock
        return stocks

    def _loaded_under_lock(self, stock: Stock) -> Stock:
        self._loaded[stock.product_id] = (stock.available, stock.reserved)
        self._track(stock)
        return stock

    async def save(self, stocks: Sequence[Stock]) -> None:
        changes = []
        for stock in sorted(stocks, key=lambda s: s.product_id):
            available, reserved = self._loaded[stock.product_id]
            if (stock.available, stock.reserved) == (available, reserved):
                continue
            changes.append({
                "pid": stock.product_id, "d_available": stock.available - available,
                "d_reserved": stock.reserved - reserved, "at": stock.updated_at,
            })
            self._loaded[stock.product_id] = (stock.available, stock.reserved)
        if changes:
            await self._conn.execute(
                sa.update(inventory)
                .where(inventory.c.product_id == sa.bindparam("pid"))
                .values(available=inventory.c.available + sa.bindparam("d_available"),
                        reserved=inventory.c.reserved + sa.bindparam("d_reserved"),
                        updated_at=sa.bindparam("at")),
                changes,
            )

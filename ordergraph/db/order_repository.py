"""The order repository: an order and its lines, loaded (locked when asked) and stored with
an optimistic version check. The other aggregates' repositories are in `repositories.py`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.db import rows
from ordergraph.db.driver import Driver
from ordergraph.db.repositories import Repository, Track, is_unique_violation
from ordergraph.db.tables import order_items, orders
from ordergraph.domain.model import HOLDS_RESERVATION, Order, RefundStatus
from ordergraph.domain.ports import RetryableConflict

# The checkout's statements, built once (see repositories.py).
_INSERT_ORDER = sa.insert(orders).returning(orders.c.id)
_INSERT_ITEMS = sa.insert(order_items).inline()  # the lines' ids: nobody reads them
_UPDATE_ORDER = sa.update(orders).where(orders.c.id == sa.bindparam("b_id"),
                                        orders.c.version == sa.bindparam("b_version"))
_ITEMS_BY_ORDERS = (sa.select(order_items)
                    .where(order_items.c.order_id.in_(sa.bindparam("ids", expanding=True)))
                    .order_by(order_items.c.order_id, order_items.c.product_id))


@functools.cache
def _insert_order_with_lines(columns: tuple[str, ...]) -> str:
    """PostgreSQL (on the driver, driver.py): the order and its lines in one statement (the
    order's INSERT as a CTE whose id the lines take), answering the order's id: one round
    trip, not two. Built once per set of columns (rows.order_values always gives the same)."""
    placeholders = ", ".join(f"%(o_{column})s" for column in columns)
    # Only our own column names; the values are bound.
    return (f"WITH new_order AS (INSERT INTO orders ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({placeholders}) RETURNING id) "
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
            "SELECT new_order.id, line.product_id, line.quantity, line.unit_price_cents "
            "FROM new_order, unnest(CAST(%(l_product_ids)s AS BIGINT[]), "
            "CAST(%(l_quantities)s AS INTEGER[]), CAST(%(l_prices)s AS INTEGER[])) "
            "AS line(product_id, quantity, unit_price_cents) "
            "RETURNING order_items.order_id")


@functools.cache
def _update_order(columns: tuple[str, ...]) -> str:
    """PostgreSQL (on the driver): save()'s UPDATE with its version check."""
    assignments = ", ".join(f"{column} = %(o_{column})s" for column in columns)
    return (f"UPDATE orders SET {assignments} "  # noqa: S608 (our own column names)
            "WHERE id = %(b_id)s AND version = %(b_version)s")



class SqlOrderRepository(Repository):
    def __init__(self, conn: AsyncConnection, track: Track, *,
                 driver: Driver | None = None) -> None:
        super().__init__(conn, track, driver=driver)
        self._loaded_versions: dict[int, int] = {}

    async def add(self, order: Order) -> None:
        values = rows.order_values(order)
        try:
            if self._driver is not None:
                inserted = await self._driver.rows(_insert_order_with_lines(tuple(values)), {
                    **{f"o_{column}": value for column, value in values.items()},
                    "l_product_ids": [line.product_id for line in order.lines],
                    "l_quantities": [line.quantity for line in order.lines],
                    "l_prices": [line.unit_price.amount for line in order.lines]})
                order.id = inserted[0]["order_id"]
            else:
                order.id = await self._conn.scalar(_INSERT_ORDER, values)
                await self._conn.execute(_INSERT_ITEMS, [
                    {"order_id": order.id, "product_id": line.product_id,
                     "quantity": line.quantity, "unit_price_cents": line.unit_price.amount}
                    for line in order.lines
                ])
        except IntegrityError as error:
            if is_unique_violation(error, "idempotency_key"):
                raise RetryableConflict("idempotency key used by a concurrent checkout") \
                    from error
            raise
        self._loaded_versions[order.id] = order.version
        self._track(order)

    async def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        query = sa.select(orders).where(orders.c.id == order_id)
        found = await self._load(query, for_update=for_update)
        return found[0] if found else None

    def attach(self, order: Order) -> None:
        self._loaded_versions[order.id] = order.version
        self._track(order)

    async def get_by_intent(self, intent_id: str, *, for_update: bool = False) -> Order | None:
        found = await self._load(sa.select(orders).where(orders.c.payment_intent_id == intent_id),
                                 for_update=for_update)
        return found[0] if found else None

    async def lock_expired(self, *, now: datetime, limit: int) -> list[Order]:
        # Soonest due first, and an order the sweeper failed on waits for its sweep_next_at:
        # rows that keep failing never stand in front of the rest.
        due = sa.func.coalesce(orders.c.sweep_next_at, orders.c.reserved_until)
        return await self._load(
            sa.select(orders).where(orders.c.status.in_([s.value for s in HOLDS_RESERVATION]),
                                    orders.c.reserved_until < now, due <= now)
            .order_by(due, orders.c.id).limit(limit),
            for_update=True, skip_locked=True)

    async def postpone_expiry(self, order_id: int, *, until: datetime) -> None:
        await self._conn.execute(
            sa.update(orders).where(orders.c.id == order_id)
            .values(sweep_attempts=orders.c.sweep_attempts + 1, sweep_next_at=until))

    async def open_unpaid(self, customer_id: int) -> tuple[int, int]:
        held = sa.select(sa.func.count(sa.distinct(orders.c.id)),
                         sa.func.coalesce(sa.func.sum(order_items.c.quantity), 0)) \
            .select_from(orders.join(order_items, order_items.c.order_id == orders.c.id)) \
            .where(orders.c.customer_id == customer_id,
                   orders.c.status.in_([s.value for s in HOLDS_RESERVATION]))
        count, units = (await self._conn.execute(held)).one()
        return int(count), int(units)

    async def stale_refund_requests(self, *, before: datetime, limit: int) -> list[Order]:
        return await self._load(
            sa.select(orders).where(orders.c.refund_status == RefundStatus.REQUESTED.value,
                                    orders.c.refund_requested_at < before)
            .order_by(orders.c.refund_requested_at).limit(limit))

    async def save(self, order: Order) -> None:
        loaded_version = self._loaded_versions.get(order.id)
        if loaded_version == order.version:
            return  # nothing changed
        values = rows.order_values(order)
        for unchanging in ("customer_id", "currency", "total_cents", "subtotal_cents",
                           "shipping_cents", *rows.address_values(None, "ship_"),
                           "idempotency_key", "cart_fingerprint", "created_at"):
            del values[unchanging]
        if self._driver is not None:
            changed = await self._driver.execute(_update_order(tuple(values)), {
                **{f"o_{column}": value for column, value in values.items()},
                "b_id": order.id, "b_version": loaded_version})
        else:
            changed = (await self._conn.execute(
                _UPDATE_ORDER, {**values, "b_id": order.id, "b_version": loaded_version})
            ).rowcount
        if changed != 1:
            # Someone changed the order since we read it; the row lock should make this
            # impossible, so run the whole transaction again rather than lose their change.
            raise RetryableConflict(f"order {order.id} changed concurrently")
        self._loaded_versions[order.id] = order.version
        self._track(order)

    async def _load(self, query: sa.Select[Any], params: dict[str, Any] | None = None, *,
                    for_update: bool = False, skip_locked: bool = False) -> list[Order]:
        if for_update:
            query = query.with_for_update(skip_locked=skip_locked)
        order_rows = (await self._conn.execute(query, params)).mappings().all()
        if not order_rows:
            return []
        items = await items_by_order(self._conn, [row["id"] for row in order_rows])
        found = []
        for row in order_rows:
            order = rows.order_from_row(row, items[row["id"]])
            self._loaded_versions[order.id] = order.version
            self._track(order)
            found.append(order)
        return found


async def items_by_order(conn: AsyncConnection,
                         order_ids: Sequence[int]) -> dict[int, list[rows.Row]]:
    result = await conn.execute(_ITEMS_BY_ORDERS, {"ids": list(order_ids)})
    grouped: dict[int, list[rows.Row]] = defaultdict(list)
    for row in result.mappings():
        grouped[row["order_id"]].append(row)
    return grouped

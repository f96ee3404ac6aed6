"""Repositories: load aggregates (locked when asked) and persist their changes.

Every aggregate a repository hands out or stores is registered with the unit of work, which
collects the events it raised at commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.db import rows
from ordergraph.db.tables import (
    UtcDateTime,
    default_addresses,
    inventory,
    owed_refunds,
    products,
    users,
    webhook_events,
)
from ordergraph.domain.model import (
    Money,
    OwedRefund,
    Product,
    Stock,
    User,
)
from ordergraph.domain.ports import RetryableConflict
from ordergraph.domain.shipping import Address

Track = Callable[[Any], None]

# The checkout's statements, built once: SQLAlchemy then skips constructing them and
# generating their cache keys on every call (about 0.1 ms of CPU each).
# By a list of ids: `= ANY(:ids)` on PostgreSQL (one statement whatever the count, no
# rendering of a parameter per id on every call), `IN (...)` on SQLite.
IDS = sa.bindparam("ids", type_=sa.ARRAY(sa.BigInteger()))


def among(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[bool]:
    if dialect == "postgresql":
        return column == sa.any_(IDS)
    return column.in_(sa.bindparam("ids", expanding=True))


_PRODUCTS_BY_IDS = {dialect: sa.select(products).where(among(products.c.id, dialect))
                    for dialect in ("postgresql", "sqlite")}
_LOCK_STOCK = {dialect: sa.select(inventory).where(among(inventory.c.product_id, dialect))
               .order_by(inventory.c.product_id).with_for_update()
               for dialect in ("postgresql", "sqlite")}
# PostgreSQL: lock the rows (in product-id order, as _LOCK_STOCK) and, in the same statement,
# move each row by the caller's planned deltas where the levels allow it. Answers the levels
# as they were under the lock, and whether each row moved.
_LOCK_AND_MOVE_STOCK = sa.text("""
WITH locked AS (
    SELECT product_id, available, reserved, updated_at FROM inventory
    WHERE product_id = ANY(CAST(:ids AS BIGINT[]))
    ORDER BY product_id FOR UPDATE
), planned AS (
    SELECT * FROM unnest(CAST(:ids AS BIGINT[]), CAST(:d_available AS INTEGER[]),
                         CAST(:d_reserved AS INTEGER[])) AS p(product_id, d_available, d_reserved)
), moved AS (
    UPDATE inventory SET available = inventory.available + planned.d_available,
                         reserved = inventory.reserved + planned.d_reserved, updated_at = :at
    FROM locked JOIN planned USING (product_id)
    WHERE inventory.product_id = locked.product_id
      AND locked.available + planned.d_available >= 0
      AND locked.reserved + planned.d_reserved >= 0
    RETURNING inventory.product_id
)
SELECT locked.product_id, locked.available, locked.reserved, locked.updated_at,
       moved.product_id IS NOT NULL AS moved
FROM locked LEFT JOIN moved USING (product_id)
ORDER BY locked.product_id""").bindparams(sa.bindparam("at", type_=UtcDateTime())).columns(
    inventory.c.product_id, inventory.c.available, inventory.c.reserved, inventory.c.updated_at,
    sa.column("moved", sa.Boolean()))


def is_unique_violation(error: IntegrityError, *constraint_hints: str) -> bool:
    """Whether a unique constraint whose name (or SQLite message) contains a hint failed."""
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    text = str(orig)
    if sqlstate is not None and sqlstate != "23505":
        return False
    if sqlstate is None and "UNIQUE constraint failed" not in text:
        return False
    return any(hint in name or hint in text for hint in constraint_hints)


class Repository:
    def __init__(self, conn: AsyncConnection, track: Track) -> None:
        self._conn = conn
        self._track = track


class SqlUserRepository(Repository):
    async def add(self, user: User) -> None:
        try:
            user.id = await self._conn.scalar(
                sa.insert(users).values(
                    email=user.email, name=user.name, role=user.role.value,
                    password_hash=user.password_hash, created_at=user.created_at,
                ).returning(users.c.id)
            )
        except IntegrityError as error:
            if is_unique_violation(error, "email"):
                raise RetryableConflict("email taken by a concurrent registration") from error
            raise
        self._track(user)

    async def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        query = sa.select(users).where(users.c.id == user_id)
        if for_update:
            query = query.with_for_update()
        return self._tracked(await self._conn.execute(query))

    async def get_by_email(self, email: str) -> User | None:
        query = sa.select(users).where(sa.func.lower(users.c.email) == email.lower())
        return self._tracked(await self._conn.execute(query))

    async def save(self, user: User) -> None:
        await self._conn.execute(
            sa.update(users).where(users.c.id == user.id).values(
                name=user.name, role=user.role.value, password_hash=user.password_hash,
                password_changed_at=user.password_changed_at)
        )
        self._track(user)

    def _tracked(self, result: sa.CursorResult[Any]) -> User | None:
        row = result.mappings().first()
        if row is None:
            return None
        user = rows.user_from_row(row)
        self._track(user)
        return user


class SqlProductRepository(Repository):
    async def add(self, product: Product) -> None:
        try:
            product.id = await self._conn.scalar(
                sa.insert(products).values(rows.product_values(product)).returning(products.c.id)
            )
        except IntegrityError as error:
            if is_unique_violation(error, "sku"):
                raise RetryableConflict("SKU taken by a concurrent insert") from error
            raise
        self._track(product)

    async def get(self, product_id: int, *, for_update: bool = False) -> Product | None:
        query = sa.select(products).where(products.c.id == product_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().first()
        return self._tracked(row)

    async def get_by_sku(self, sku: str) -> Product | None:
        row = (await self._conn.execute(
            sa.select(products).where(products.c.sku == sku))).mappings().first()
        return self._tracked(row)

    async def get_many(self, product_ids: Sequence[int]) -> dict[int, Product]:
        result = await self._conn.execute(_PRODUCTS_BY_IDS[self._conn.dialect.name],
                                           {"ids": list(product_ids)})
        found = [self._tracked(row) for row in result.mappings()]
        return {product.id: product for product in found if product is not None}

    async def save(self, product: Product) -> None:
        values = rows.product_values(product)
        del values["sku"], values["created_at"]
        await self._conn.execute(
            sa.update(products).where(products.c.id == product.id).values(values))
        self._track(product)

    def _tracked(self, row: rows.Row | None) -> Product | None:
        if row is None:
            return None
        product = rows.product_from_row(row)
        self._track(product)
        return product


class SqlInventoryRepository(Repository):
    def __init__(self, conn: AsyncConnection, track: Track) -> None:
        super().__init__(conn, track)
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
        if planned and at is not None and self._conn.dialect.name == "postgresql":
            return await self._lock_and_move(ordered, planned, at)
        result = await self._conn.execute(_LOCK_STOCK[self._conn.dialect.name],
                                           {"ids": ordered})
        return {stock.product_id: self._loaded_under_lock(stock)
                for stock in map(rows.stock_from_row, result.mappings())}

    async def _lock_and_move(self, ordered: list[int], planned: Mapping[int, tuple[int, int]],
                             at: datetime) -> dict[int, Stock]:
        """One statement instead of the lock and save()'s update: the caller's plan is
        written now, where the levels allow it, and save() then writes only what the
        caller did differently (nothing, when it did as planned)."""
        moves = [planned.get(product_id, (0, 0)) for product_id in ordered]
        result = await self._conn.execute(_LOCK_AND_MOVE_STOCK, {
            "ids": ordered, "d_available": [move[0] for move in moves],
            "d_reserved": [move[1] for move in moves], "at": at})
        stocks = {}
        for row in result.mappings():
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


class SqlOwedRefundRepository(Repository):
    async def owe(self, refund: OwedRefund, *, at: datetime) -> bool:
        """Record the debt once per intent; False if it was recorded before."""
        exists = await self._conn.scalar(sa.select(owed_refunds.c.id).where(
            owed_refunds.c.intent_id == refund.intent_id))
        if exists is not None:
            return False
        try:
            await self._conn.execute(sa.insert(owed_refunds).values(
                order_id=refund.order_id, intent_id=refund.intent_id,
                amount_cents=refund.amount.amount, currency=refund.amount.currency,
                reason=refund.reason, status="OWED", attempts=0, next_attempt_at=at,
                created_at=at, updated_at=at))
        except IntegrityError as error:
            raise RetryableConflict(f"refund of {refund.intent_id} owed concurrently") \
                from error
        return True

    async def claim(self, intent_id: str, *, now: datetime,
                    retry_at: Callable[[int], datetime]) -> OwedRefund | None:
        """Lock the debt if it is due; push its next attempt to `retry_at(attempts)`, so a
        concurrent claimer (another instance's sweeper) leaves it alone meanwhile."""
        row = (await self._conn.execute(
            sa.select(owed_refunds).where(owed_refunds.c.intent_id == intent_id,
                                          owed_refunds.c.status == "OWED",
                                          owed_refunds.c.next_attempt_at <= now)
            .with_for_update(skip_locked=True))).mappings().first()
        if row is None:
            return None
        attempts = row["attempts"] + 1
        await self._conn.execute(
            sa.update(owed_refunds).where(owed_refunds.c.id == row["id"])
            .values(attempts=attempts, next_attempt_at=retry_at(attempts), updated_at=now))
        return OwedRefund(order_id=row["order_id"], intent_id=row["intent_id"],
                          amount=Money(row["amount_cents"], row["currency"]),
                          reason=row["reason"], attempts=attempts)

    async def due(self, *, now: datetime, limit: int) -> list[str]:
        result = await self._conn.execute(
            sa.select(owed_refunds.c.intent_id)
            .where(owed_refunds.c.status == "OWED", owed_refunds.c.next_attempt_at <= now)
            .order_by(owed_refunds.c.next_attempt_at, owed_refunds.c.id).limit(limit))
        return list(result.scalars())

    async def settled(self, intent_id: str, *, refund_id: str, at: datetime) -> None:
        await self._conn.execute(
            sa.update(owed_refunds).where(owed_refunds.c.intent_id == intent_id)
            .values(status="SUCCEEDED", refund_id=refund_id, last_error=None, updated_at=at))

    async def failed(self, intent_id: str, *, error: str, at: datetime) -> None:
        await self._conn.execute(
            sa.update(owed_refunds).where(owed_refunds.c.intent_id == intent_id)
            .values(last_error=error, updated_at=at))


class SqlAddressBook(Repository):
    async def get_default(self, user_id: int) -> Address | None:
        row = (await self._conn.execute(sa.select(default_addresses).where(
            default_addresses.c.user_id == user_id))).mappings().first()
        return rows.address_from_row(row) if row else None

    async def set_default(self, user_id: int, address: Address | None, *,
                          at: datetime) -> None:
        # Delete and insert: one statement shape on PostgreSQL and SQLite; the caller holds
        # the user's row lock, so two concurrent updates of one user take turns.
        await self._conn.execute(sa.delete(default_addresses).where(
            default_addresses.c.user_id == user_id))
        if address is not None:
            await self._conn.execute(sa.insert(default_addresses).values(
                user_id=user_id, updated_at=at, **rows.address_values(address)))


class SqlWebhookEventRepository(Repository):
    async def claim(self, event_id: str, *, event_type: str, at: datetime) -> bool:
        exists = await self._conn.scalar(
            sa.select(webhook_events.c.id).where(webhook_events.c.id == event_id))
        if exists is not None:
            return False
        try:
            await self._conn.execute(sa.insert(webhook_events).values(
                id=event_id, type=event_type, received_at=at))
        except IntegrityError as error:
            # A concurrent delivery of the same event got there first; once it commits, the
            # retried transaction sees the row and skips the event.
            raise RetryableConflict(f"webhook event {event_id} claimed concurrently") from error
        return True

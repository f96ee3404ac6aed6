"""Repositories: load aggregates (locked when asked) and persist their changes.

Every aggregate a repository hands out or stores is registered with the unit of work, which
collects the events it raised at commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.db import rows
from ordergraph.db.driver import Driver
from ordergraph.db.tables import (
    default_addresses,
    orders,
    owed_refunds,
    products,
    users,
    webhook_events,
)
from ordergraph.domain.model import (
    Money,
    OwedRefund,
    Product,
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
_DRIVER_PRODUCTS_BY_IDS = (f"SELECT {', '.join(products.c.keys())} FROM products "  # noqa: S608
                           "WHERE id = ANY(%(ids)s)")
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


# The checkout's customer and the order an earlier try with the same idempotency key made: a
# NULL key matches no order. FOR UPDATE (of the customer's row only) when the per-customer
# limits count the customer's unpaid orders one checkout at a time.
_DRIVER_CHECKOUT_CUSTOMER = (
    f"SELECT {', '.join(f'u.{column.name}' for column in users.c)}, "  # noqa: S608
    "(SELECT o.id FROM orders o WHERE o.customer_id = u.id "
    "AND o.idempotency_key = %(key)s) AS keyed_order_id FROM users u WHERE u.id = %(id)s")
_DRIVER_CHECKOUT_CUSTOMER_FOR_UPDATE = f"{_DRIVER_CHECKOUT_CUSTOMER} FOR UPDATE OF u"


class Repository:
    def __init__(self, conn: AsyncConnection, track: Track, *,
                 driver: Driver | None = None) -> None:
        self._conn = conn
        self._track = track
        # PostgreSQL: psycopg's connection, for the checkout's hottest statements (driver.py).
        self._driver = driver


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

    async def get_for_checkout(self, user_id: int, *, idempotency_key: str | None,
                               for_update: bool) -> tuple[User | None, int | None]:
        """The customer, and the id of their order with this idempotency key (None: no such
        order, or no key). On PostgreSQL one statement, the first of every checkout."""
        if self._driver is None:
            user = await self.get(user_id, for_update=for_update)
            if user is None or idempotency_key is None:
                return user, None
            keyed = await self._conn.scalar(sa.select(orders.c.id).where(
                orders.c.customer_id == user_id, orders.c.idempotency_key == idempotency_key))
            return user, keyed
        found = await self._driver.rows(
            _DRIVER_CHECKOUT_CUSTOMER_FOR_UPDATE if for_update else _DRIVER_CHECKOUT_CUSTOMER,
            {"id": user_id, "key": idempotency_key})
        if not found:
            return None, None
        row = found[0]
        keyed = row.pop("keyed_order_id")
        user = rows.user_from_row(row)
        self._track(user)
        return user, keyed

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
        if self._driver is not None:
            found = [self._tracked(row) for row in await self._driver.rows(
                _DRIVER_PRODUCTS_BY_IDS, {"ids": list(product_ids)})]
        else:
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

"""The unit of work on real PostgreSQL: rollback by default, audit in the same transaction,
events only after commit, the database's own refusal to oversell."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ordergraph.adapters.clock import SystemClock
from ordergraph.db.engine import create_engine
from ordergraph.db.uow import SqlAlchemyUnitOfWork
from ordergraph.domain.events import DomainEvent
from ordergraph.domain.model import SYSTEM, Money, Order, OrderLine, OrderStatus
from ordergraph.domain.services.catalog import create_product
from ordergraph.domain.services.transaction import retrying
from tests.support import execute, rows, scalar


async def in_transaction(uow, work):
    """`work` run and committed in `uow`, retried as the use cases retry."""
    async for attempt in retrying(uow):
        async with attempt:
            result = await work()
            await uow.commit()
    return result


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[DomainEvent] = []

    async def publish(self, events: Sequence[DomainEvent]) -> None:
        self.published.extend(events)


class Boom(Exception):
    pass


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[sa.ext.asyncio.AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


async def add_product(engine: sa.ext.asyncio.AsyncEngine, stock: int = 10,
                      sku: str = "widget") -> int:
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    product = await create_product(uow=uow, clock=SystemClock(), actor=SYSTEM, sku=sku,
                                   name="Widget", description=None, price_cents=500,
                                   initial_stock=stock, active=True, currency="usd")
    return product.id


async def add_customer(url: str) -> int:
    execute(url, "INSERT INTO users (email, role, password_hash, created_at) "
               "VALUES ('u@example.com', 'CUSTOMER', 'x', now())")
    return int(scalar(url, "SELECT id FROM users"))


async def test_leaving_without_commit_rolls_everything_back(engine, pg_url: str) -> None:
    product_id = await add_product(engine)
    customer_id = await add_customer(pg_url)
    before = (scalar(pg_url, "SELECT count(*) FROM audit_log"),
              scalar(pg_url, "SELECT count(*) FROM stock_movements"))
    publisher = RecordingPublisher()
    uow = SqlAlchemyUnitOfWork(engine, publisher)
    now = datetime.now(UTC)

    with pytest.raises(Boom):
        async with uow:
            stocks = await uow.inventory.lock([product_id])
            order = Order(id=0, customer_id=customer_id, status=OrderStatus.CREATED,
                          lines=[OrderLine(product_id, 3, Money(500, "usd"))],
                          currency="usd", version=1, created_at=now, updated_at=now)
            await uow.orders.add(order)
            order.record_placed(actor=SYSTEM)
            stocks[product_id].reserve(3, order_id=order.id, actor=SYSTEM, at=now)
            await uow.inventory.save(list(stocks.values()))
            raise Boom()

    assert scalar(pg_url, "SELECT count(*) FROM orders") == 0
    assert rows(pg_url, "SELECT available, reserved FROM inventory") == [(10, 0)]
    assert (scalar(pg_url, "SELECT count(*) FROM audit_log"),
            scalar(pg_url, "SELECT count(*) FROM stock_movements")) == before
    assert publisher.published == []


async def test_a_block_without_commit_call_rolls_back_too(engine, pg_url: str) -> None:
    product_id = await add_product(engine)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    async with uow:
        stocks = await uow.inventory.lock([product_id])
        stocks[product_id].set_available(1, actor=SYSTEM, at=datetime.now(UTC))
        await uow.inventory.save(list(stocks.values()))
    assert rows(pg_url, "SELECT available FROM inventory") == [(10,)]


async def test_events_are_audited_with_the_change_and_published_after_commit(
        engine, pg_url: str) -> None:
    product_id = await add_product(engine)
    publisher = RecordingPublisher()
    uow = SqlAlchemyUnitOfWork(engine, publisher)
    seen_in_db_when_published: list[int] = []

    original_publish = publisher.publish

    async def publish(events: Sequence[DomainEvent]) -> None:
        # Another connection sees the committed change by the time events go out.
        seen_in_db_when_published.append(scalar(pg_url, "SELECT available FROM inventory"))
        await original_publish(events)

    publisher.publish = publish  # type: ignore[method-assign]

    async def work() -> None:
        stocks = await uow.inventory.lock([product_id])
        stocks[product_id].adjust(5, actor=SYSTEM, at=datetime.now(UTC), note="restock")
        await uow.inventory.save(list(stocks.values()))
        assert publisher.published == []  # nothing goes out before commit

    await in_transaction(uow, work)

    assert seen_in_db_when_published == [15]
    assert [e.type for e in publisher.published] == ["STOCK_CHANGED"]
    assert rows(pg_url, "SELECT action, after->>'note' FROM audit_log ORDER BY id DESC "
                        "LIMIT 1") == [("STOCK_ADJUSTED", "restock")]


async def test_events_are_published_after_the_connection_is_back_in_the_pool(
        engine, pg_url: str) -> None:
    product_id = await add_product(engine)
    publisher = RecordingPublisher()
    uow = SqlAlchemyUnitOfWork(engine, publisher)
    checked_out_when_published: list[int] = []
    original_publish = publisher.publish

    async def publish(events: Sequence[DomainEvent]) -> None:
        checked_out_when_published.append(engine.pool.checkedout())
        await original_publish(events)

    publisher.publish = publish  # type: ignore[method-assign]
    async with uow:
        stocks = await uow.inventory.lock([product_id])
        stocks[product_id].adjust(2, actor=SYSTEM, at=datetime.now(UTC), note="restock")
        await uow.inventory.save(list(stocks.values()))
        await uow.commit()
        assert publisher.published == []  # committed, but the connection is still held
        assert engine.pool.checkedout() == 1

    assert checked_out_when_published == [0]
    assert [e.type for e in publisher.published] == ["STOCK_CHANGED"]


async def test_the_database_refuses_to_oversell_whatever_the_code_does(
        engine, pg_url: str) -> None:
    await add_product(engine, stock=2)
    async with engine.begin() as conn:
        with pytest.raises(IntegrityError) as refused:
            await conn.execute(sa.text("UPDATE inventory SET available = available - 3"))
    assert refused.value.orig.sqlstate == "23514"  # check_violation
    for statement in ["UPDATE inventory SET reserved = -1",
                      "UPDATE products SET price_cents = 0",
                      "INSERT INTO users (email, role, password_hash, created_at) "
                      "VALUES ('UPPER@example.com', 'CUSTOMER', 'x', now())",
                      "INSERT INTO users (email, role, password_hash, created_at) "
                      "VALUES ('x@example.com', 'ROOT', 'x', now())"]:
        async with engine.begin() as conn:
            with pytest.raises(IntegrityError):
                await conn.execute(sa.text(statement))


async def test_isolation_level_setting_reaches_the_transactions(pg_url: str) -> None:
    for level in ("READ COMMITTED", "SERIALIZABLE"):
        engine = create_engine(pg_url, isolation_level=level)
        uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
        async with uow:
            shown = await uow._conn.scalar(sa.text("SHOW transaction_isolation"))  # type: ignore[union-attr]
        # A transaction that only psycopg's statements run (the checkout's) is begun by the
        # driver, not by SQLAlchemy: at the same level, and committed there.
        async with uow:
            assert uow._driver is not None
            driver_shown = (await uow._driver.rows("SHOW transaction_isolation", {}))[0]
            assert uow._driver.in_transaction
            assert not uow._conn.in_transaction()  # type: ignore[union-attr]
            await uow.commit()
            assert not uow._driver.in_transaction
        await engine.dispose()
        assert shown == level.lower()
        assert driver_shown == {"transaction_isolation": level.lower()}


async def test_email_is_written_with_its_change_or_not_at_all(engine, pg_url: str) -> None:
    """The outbox row of a status change is part of the change's transaction: a change rolled
    back (here by a failure after the transition) leaves no email behind; committed, one."""
    product_id = await add_product(engine)
    customer_id = await add_customer(pg_url)
    now = datetime.now(UTC)

    async def place() -> int:
        order = Order(id=0, customer_id=customer_id, status=OrderStatus.CREATED,
                      lines=[OrderLine(product_id, 2, Money(500, "usd"))], currency="usd",
                      version=1, created_at=now, updated_at=now)
        await uow.orders.add(order)
        order.transition(OrderStatus.PAYMENT_PENDING, actor=SYSTEM, at=now)
        await uow.orders.save(order)
        return order.id

    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    order_id = await in_transaction(uow, place)

    async def pay(fail: bool) -> None:
        order = await uow.orders.get(order_id, for_update=True)
        assert order is not None
        order.transition(OrderStatus.PAID, actor=SYSTEM, at=now)
        await uow.orders.save(order)
        if fail:
            raise Boom()

    with pytest.raises(Boom):
        await in_transaction(uow, lambda: pay(True))
    assert rows(pg_url, "SELECT count(*) FROM outbox") == [(0,)]

    await in_transaction(uow, lambda: pay(False))
    assert rows(pg_url, "SELECT kind, recipient, status FROM outbox") == \
        [("ORDER_CONFIRMED", "u@example.com", "PENDING")]
    [(data,)] = rows(pg_url, "SELECT data FROM outbox")
    assert data["order"]["total"] == 1000
    assert data["product_names"] == {str(product_id): "Widget"}



async def _levels(url: str, product_id: int) -> tuple[int, int]:
    return rows(url, "SELECT available, reserved FROM inventory WHERE product_id = %s",
                (product_id,))[0]


async def test_a_planned_move_is_written_with_the_lock_and_saved_once(engine, pg_url) -> None:
    """lock(planned=...) moves the rows in its own statement; the caller's Stock shows the
    levels as they were under the lock, and save() after the same move writes nothing more."""
    product = await add_product(engine, stock=10)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    now = datetime.now(UTC)
    async with uow:
        stocks = await uow.inventory.lock([product], planned={product: (-3, 0)}, at=now)
        assert (stocks[product].available, stocks[product].reserved) == (10, 0)
        stocks[product].adjust(-3, actor=SYSTEM, at=now, note="as planned")
        await uow.inventory.save(list(stocks.values()))
        await uow.commit()
    assert await _levels(pg_url, product) == (7, 0)  # moved once, not twice
    assert scalar(pg_url, "SELECT count(*) FROM stock_movements WHERE note = 'as planned'") == 1


async def test_a_plan_the_caller_does_not_follow_is_corrected_by_save(engine, pg_url) -> None:
    product = await add_product(engine, stock=10)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    now = datetime.now(UTC)
    async with uow:
        stocks = await uow.inventory.lock([product], planned={product: (-3, 0)}, at=now)
        stocks[product].adjust(-2, actor=SYSTEM, at=now, note="not the 3 planned")
        await uow.inventory.save(list(stocks.values()))
        await uow.commit()
    assert await _levels(pg_url, product) == (8, 0)


async def test_a_plan_the_levels_do_not_allow_moves_nothing(engine, pg_url) -> None:
    """Short of stock, the row stays as it was (no CHECK violation aborts the transaction)
    and the caller sees the real level to refuse with; the other rows' moves roll back."""
    plenty = await add_product(engine, stock=10)
    scarce = await add_product(engine, stock=1, sku="rare")
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    now = datetime.now(UTC)
    async with uow:
        stocks = await uow.inventory.lock([scarce, plenty],
                                          planned={plenty: (-5, 5), scarce: (-2, 2)}, at=now)
        assert [stocks[scarce].available, stocks[plenty].available] == [1, 10]
        # Read again in the same transaction (it still works): only the plenty row moved.
        again = await uow.inventory.lock([scarce, plenty])
        assert [(again[p].available, again[p].reserved) for p in (scarce, plenty)] == \
            [(1, 0), (5, 5)]
        # the checkout refuses (InsufficientStock) and leaves without committing
    assert await _levels(pg_url, plenty) == (10, 0)
    assert await _levels(pg_url, scarce) == (1, 0)


async def test_a_row_refused_at_commit_leaves_nothing_committed(engine, pg_url) -> None:
    """The audit rows and stock movements are written by commit(), in one statement on
    PostgreSQL: one the database refuses (here a ledger row for an order that does not
    exist) fails the commit, and neither the change it recorded nor its audit row stays."""
    product = await add_product(engine, stock=10)
    audit_rows = scalar(pg_url, "SELECT count(*) FROM audit_log")
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError):
        async with uow:
            stocks = await uow.inventory.lock([product])
            stocks[product].reserve(3, order_id=424242, actor=SYSTEM, at=now)
            await uow.inventory.save(list(stocks.values()))
            await uow.commit()
    assert await _levels(pg_url, product) == (10, 0)
    assert scalar(pg_url, "SELECT count(*) FROM audit_log") == audit_rows
    # The connection went back to the pool usable: the next unit of work commits.
    async with uow:
        stocks = await uow.inventory.lock([product])
        stocks[product].adjust(-1, actor=SYSTEM, at=now, note="after the failure")
        await uow.inventory.save(list(stocks.values()))
        await uow.commit()
    assert await _levels(pg_url, product) == (9, 0)


async def test_a_planned_move_after_waiting_for_the_lock_starts_from_the_new_level(
        engine, pg_url) -> None:
    """READ COMMITTED: while we wait for the row lock another transaction adds 5 units and
    commits. The move must start from the level it left (3 + 5 = 8 available, enough to
    take 5), not from the 3 our statement's snapshot saw, which would break the CHECK."""
    import asyncio

    import psycopg

    from tests.support import psycopg_dsn

    product = await add_product(engine, stock=10)
    execute(pg_url, "UPDATE inventory SET available = 3, reserved = 7 WHERE product_id = %s",
            (product,))
    other = await psycopg.AsyncConnection.connect(psycopg_dsn(pg_url))
    await other.execute("UPDATE inventory SET available = available + 5 WHERE product_id = %s",
                        (product,))
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    now = datetime.now(UTC)

    async def take_five() -> int:
        async with uow:
            stocks = await uow.inventory.lock([product], planned={product: (-5, 0)}, at=now)
            seen = stocks[product].available
            stocks[product].adjust(-5, actor=SYSTEM, at=now, note="after the wait")
            await uow.inventory.save(list(stocks.values()))
            await uow.commit()
        return seen

    waiting = asyncio.create_task(take_five())
    for _ in range(200):  # until our statement waits for the other transaction's row lock
        if scalar(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                          "'Lock' AND query LIKE %s", ("%FOR UPDATE%",)):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the lock-and-move statement never waited for the lock")
    await other.commit()
    await other.close()

    assert await waiting == 8
    assert await _levels(pg_url, product) == (3, 7)


async def test_audit_rows_and_movements_keep_every_value_as_written(engine, pg_url) -> None:
    """On PostgreSQL they go as JSON documents (one per table, db/uow.py): the rows read back
    hold the exact instant, SQL NULL where there is none, JSON null for a missing snapshot
    (as SQLAlchemy writes None), and text that JSON has to escape."""
    product = await add_product(engine, stock=10)
    assert rows(pg_url, "SELECT jsonb_typeof(before), after->>'sku' FROM audit_log "
                        "WHERE action = 'PRODUCT_CREATED'") == [("null", "widget")]
    at = datetime(2026, 12, 4, 1, 2, 3, 456789, tzinfo=UTC)
    note = 'crème "brûlée" \\ ✓\nline two'
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    async with uow:
        stocks = await uow.inventory.lock([product])
        stocks[product].adjust(-2, actor=SYSTEM, at=at, note=note)
        await uow.inventory.save(list(stocks.values()))
        await uow.commit()
    assert rows(pg_url, "SELECT product_id, delta_available, delta_reserved, reason, order_id, "
                        "actor_kind, actor_id, note, at FROM stock_movements "
                        "WHERE reason = 'ADJUSTED'") == [
        (product, -2, 0, "ADJUSTED", None, "SYSTEM", None, note, at)]
    assert rows(pg_url, "SELECT at, actor_kind, actor_id, entity_type, entity_id, "
                        "before->>'available', after->>'available', after->>'note' "
                        "FROM audit_log WHERE action = 'STOCK_ADJUSTED'") == [
        (at, "SYSTEM", None, "INVENTORY", str(product), "10", "8", note)]

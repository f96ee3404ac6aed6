"""db/driver.py on real PostgreSQL: statements sent straight to psycopg belong to the unit of
work's transaction, answer UTC datetimes, and fail exactly as SQLAlchemy's would (constraint
violations, retryable conflicts, a lost connection as SERVICE_UNAVAILABLE)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from ordergraph.db.driver import Driver
from ordergraph.db.engine import create_engine
from ordergraph.db.uow import SqlAlchemyUnitOfWork
from ordergraph.domain.errors import ServiceUnavailable
from ordergraph.domain.ports import RetryableConflict
from tests.integration.test_unit_of_work import RecordingPublisher, add_product
from tests.support import scalar


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[sa.ext.asyncio.AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


def driver_of(uow: SqlAlchemyUnitOfWork) -> Driver:
    driver = uow._driver
    assert driver is not None, "PostgreSQL units of work have a driver"
    return driver


async def test_driver_statements_are_in_the_transaction(engine, pg_url: str) -> None:
    product_id = await add_product(engine, stock=10)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    async with uow:
        await driver_of(uow).execute(
            "UPDATE inventory SET available = 3 WHERE product_id = %(id)s", {"id": product_id})
        # SQLAlchemy's statements on the same transaction see it ...
        stock = await uow.inventory.lock([product_id])
        assert stock[product_id].available == 3
    # ... and leaving without commit rolls the driver's write back with everything else.
    assert scalar(pg_url, "SELECT available FROM inventory WHERE product_id = %s",
                  (product_id,)) == 10


async def test_a_transaction_of_driver_statements_alone_commits_or_rolls_back_there(
        engine, pg_url: str) -> None:
    # SQLAlchemy never begins these (db/driver.py): psycopg's implicit BEGIN opens them, and
    # commit() and leaving the block must still end them on the server.
    product_id = await add_product(engine, stock=10)
    move = "UPDATE inventory SET available = %(n)s WHERE product_id = %(id)s"
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    async with uow:
        await driver_of(uow).execute(move, {"n": 4, "id": product_id})
        assert driver_of(uow).in_transaction
    assert scalar(pg_url, "SELECT available FROM inventory WHERE product_id = %s",
                  (product_id,)) == 10
    async with uow:
        await driver_of(uow).execute(move, {"n": 5, "id": product_id})
        await uow.commit()
    assert scalar(pg_url, "SELECT available FROM inventory WHERE product_id = %s",
                  (product_id,)) == 5
    # The connection went back to the pool outside any transaction.
    async with uow:
        assert not driver_of(uow).in_transaction


async def test_datetimes_come_back_in_utc_whatever_the_session_zone(engine) -> None:
    product_id = await add_product(engine)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    async with uow:
        await driver_of(uow).execute("SET LOCAL TIME ZONE 'Asia/Tokyo'", {})
        product = (await uow.products.get_many([product_id]))[product_id]
    assert product.created_at.tzinfo is UTC
    assert product.created_at.utcoffset().total_seconds() == 0


async def test_a_refused_row_is_sqlalchemys_integrity_error(engine, pg_url: str) -> None:
    product_id = await add_product(engine, stock=1)
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    with pytest.raises(IntegrityError) as refused:
        async with uow:
            await driver_of(uow).execute(
                "UPDATE inventory SET available = -1 WHERE product_id = %(id)s",
                {"id": product_id})
    assert refused.value.orig.sqlstate == "23514"  # check_violation: the database refuses
    assert scalar(pg_url, "SELECT available FROM inventory WHERE product_id = %s",
                  (product_id,)) == 1


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_a_conflict_on_the_driver_is_retryable(engine, sqlstate: str) -> None:
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    with pytest.raises(RetryableConflict) as conflict:
        async with uow:
            await driver_of(uow).execute(
                f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$",
                {})
    assert isinstance(conflict.value.__cause__, DBAPIError)


async def test_a_lost_connection_is_service_unavailable_and_is_dropped(engine) -> None:
    uow = SqlAlchemyUnitOfWork(engine, RecordingPublisher())
    failed: BaseException | None = None
    with contextlib.suppress(ServiceUnavailable):  # the rollback on leaving fails too
        async with uow:
            try:
                await driver_of(uow).execute(
                    "SELECT pg_terminate_backend(pg_backend_pid())", {})
            except Exception as error:  # the statement's own error, as the caller sees it
                failed = error
    assert isinstance(failed, ServiceUnavailable), repr(failed)
    # The dead connection was not put back: the next unit of work gets a working one.
    async with SqlAlchemyUnitOfWork(engine, RecordingPublisher()) as fresh:
        assert await driver_of(fresh).rows("SELECT 1 AS one", {}) == [{"one": 1}]

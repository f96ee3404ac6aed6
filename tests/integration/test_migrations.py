"""Migrations create exactly the schema the code describes, on PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ordergraph.db import migrate
from ordergraph.db.tables import metadata


def differences(url: str) -> list[object]:
    engine = sa.create_engine(migrate.sync_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        if conn.dialect.name == "sqlite":
            # SQLite cannot reflect expression indexes: check it is there by name instead.
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
            assert "uq_users_email_lower" in {name for (name,) in names}
            diff = [d for d in diff if "uq_users_email_lower" not in repr(d)]
    engine.dispose()
    return diff


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
    return request.getfixturevalue("fresh_pg_database")


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_upgrade_matches_the_tables_and_downgrade_undoes_it(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    assert differences(empty_database) == []

    migrate.downgrade(empty_database, "base")
    engine = sa.create_engine(migrate.sync_url(empty_database))
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()

    migrate.upgrade(empty_database)
    assert differences(empty_database) == []


def test_check_constraints_have_the_names_the_code_expects(fresh_pg_database: str) -> None:
    """compare_metadata does not look at CHECK constraints; the catalogue does."""
    migrate.upgrade(fresh_pg_database)
    engine = sa.create_engine(migrate.sync_url(fresh_pg_database))
    with engine.connect() as conn:
        found = {(table, name) for table, name in conn.execute(sa.text(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE contype = 'c' AND conrelid <> 0"))}
    engine.dispose()
    expected = set()
    for table in metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                expected.add((table.name, str(constraint.name)))
    assert found == expected


OLD_ORDER = [
    "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES "
    "(1, 'old@example.com', 'Old', 'CUSTOMER', 'x', '2026-01-01T00:00:00+00:00')",
    "INSERT INTO products (id, sku, name, description, price_cents, currency, active, "
    "created_at, updated_at) VALUES (1, 'old-lamp', 'Old lamp', '', 2500, 'usd', true, "
    "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
    "INSERT INTO orders (id, customer_id, status, currency, total_cents, version, "
    "created_at, updated_at) VALUES (1, 1, 'PAID', 'usd', 5000, 3, "
    "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
    "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) "
    "VALUES (1, 1, 2, 2500)",
]


async def test_orders_from_before_shipping_stay_valid(empty_database: str) -> None:
    """0004: an existing order has no address, shipping 0 and its total as subtotal; the
    database then refuses a total that is not subtotal + shipping."""
    from ordergraph.db.engine import create_engine
    from ordergraph.db.readstore import SqlReadStore

    migrate.upgrade(empty_database, "0003")
    engine = sa.create_engine(migrate.sync_url(empty_database))
    with engine.begin() as conn:
        for statement in OLD_ORDER:
            conn.execute(sa.text(statement))
    migrate.upgrade(empty_database)

    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT subtotal_cents, shipping_cents, total_cents, ship_country FROM orders"
        )).all() == [(5000, 0, 5000, None)]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET shipping_cents = 100"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET ship_country = 'DE'"))  # half an address
    engine.dispose()

    # The app reads it as it was: no address, no shipping.
    async_engine = create_engine(empty_database)
    try:
        order = (await SqlReadStore(async_engine).orders_by_ids([1]))[1]
    finally:
        await async_engine.dispose()
    assert (order.subtotal.amount, order.shipping.amount, order.total.amount) == (5000, 0, 5000)
    assert order.shipping_address is None

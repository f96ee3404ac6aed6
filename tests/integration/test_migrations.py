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

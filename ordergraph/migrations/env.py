"""Alembic environment. Migrations run on a synchronous engine for the same database."""

from __future__ import annotations

import warnings
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from ordergraph.db.migrate import sync_url
from ordergraph.db.tables import metadata

config = context.config
if config.config_file_name is not None:  # the repo root's alembic.ini: its logging setup
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# SQLite's batch mode reflects tables to rebuild them, and SQLAlchemy cannot reflect the
# expression index on lower(users.email). Harmless while no batch migration rebuilds `users`
# (one that does must re-create uq_users_email_lower itself).
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based")


def _database_url() -> str:
    """`ordergraph migrate` passes its URL; the repo root's alembic.ini leaves it to
    DATABASE_URL, read (and normalised) as every command reads it."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from ordergraph.settings import Settings

    return Settings.from_env(database_only=True).database_url


def run_migrations() -> None:
    url = sync_url(_database_url())
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite can only ALTER a table by copying it; batch mode does that for us.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()

"""Shared fixtures: a private PostgreSQL database, the Stripe emulator, the running app.

PostgreSQL comes from TEST_DATABASE_URL (default: this machine's server). The suite creates
its own database there, migrates it once, and empties the tables before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.db import migrate
from tests.support import Api, Customer, psycopg_dsn, running_api, settings_for, truncate_all

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER_URL)


def _create_database(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    with psycopg.connect(psycopg_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(psycopg_dsn(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database(pg_server_url: str) -> Iterator[str]:
    """A freshly created and migrated database for this test session."""
    name = f"ordergraph_test_{uuid.uuid4().hex[:10]}"
    url = _create_database(pg_server_url, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        _drop_database(pg_server_url, name)


@pytest.fixture
def fresh_pg_database(pg_server_url: str) -> Iterator[str]:
    """An empty (unmigrated) database of this test's own."""
    name = f"ordergraph_test_{uuid.uuid4().hex[:10]}"
    url = _create_database(pg_server_url, name)
    try:
        yield url
    finally:
        _drop_database(pg_server_url, name)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    truncate_all(pg_database)
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/ordergraph.db"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[LocalStripe]:
    emulator = LocalStripe.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
async def api(pg_url: str, stripe_emulator: LocalStripe) -> AsyncIterator[Api]:
    """The app on PostgreSQL (READ COMMITTED, the default) and the Stripe emulator."""
    async with running_api(settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)) \
            as client:
        yield client


@pytest.fixture
async def admin(api: Api) -> str:
    return await api.create_admin()


@pytest.fixture
async def customer_side(stripe_emulator: LocalStripe) -> AsyncIterator[Customer]:
    """The customer's browser talking to the Stripe emulator (what Stripe.js does)."""
    side = Customer(stripe_emulator.api_base)
    yield side
    await side.aclose()


@pytest.fixture
def clock() -> OffsetClock:
    """A clock a test moves forward (`clock.advance(...)`), for expiries and backoffs."""
    return OffsetClock()

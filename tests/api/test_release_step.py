"""A platform's release step, as the `ordergraph` command runs it: the database URL the
platform hands out, and no secrets but the database's, even in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import rows

# What a release step on a platform has: the database, and nothing the app serves with.
NO_APP_SECRETS = {"ORDERGRAPH_ENV": "production", "JWT_SECRET": "", "STRIPE_SECRET_KEY": "",
                  "STRIPE_PUBLISHABLE_KEY": "", "STRIPE_WEBHOOK_SECRET": "",
                  "STRIPE_API_BASE": "", "BROADCAST_URL": ""}


def ordergraph(args: list[str], env: dict[str, str], cwd: Path
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ordergraph.cli", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=90,
                          cwd=cwd, check=False)


def platform_url(driver_url: str, scheme: str, query: str = "") -> str:
    """The same database as the platform would write it: no driver in the scheme."""
    return scheme + "://" + driver_url.split("://", 1)[1] + query


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_migrate_and_seed_in_production_with_a_platform_url_and_no_app_secrets(
        fresh_pg_database: str, tmp_path: Path, scheme: str) -> None:
    env = {**NO_APP_SECRETS,
           "DATABASE_URL": platform_url(fresh_pg_database, scheme, "?sslmode=disable")}
    migrated = ordergraph(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    seeded = ordergraph(["seed"], env, tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert rows(fresh_pg_database, "SELECT count(*) FROM users") == [(2,)]

    # The app itself still refuses to start without them, in one line.
    for command in ("serve", "sweep"):
        refused = ordergraph([command], env, tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "ordergraph: configuration error: JWT_SECRET is required in production "
            "(at least 32 random bytes)"]


def test_the_platform_urls_query_reaches_the_driver(fresh_pg_database: str,
                                                    tmp_path: Path) -> None:
    # This PostgreSQL has no TLS: sslmode=require can only fail if it was passed on.
    env = {**NO_APP_SECRETS,
           "DATABASE_URL": platform_url(fresh_pg_database, "postgres", "?sslmode=require")}
    result = ordergraph(["migrate"], env, tmp_path)
    assert result.returncode != 0
    assert "SSL" in result.stderr


def test_a_release_step_still_refuses_sqlite_in_production(tmp_path: Path) -> None:
    result = ordergraph(["migrate"], {**NO_APP_SECRETS, "DATABASE_URL": ""}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ordergraph: configuration error: production needs PostgreSQL: DATABASE_URL is SQLite"]

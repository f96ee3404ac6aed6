"""`ordergraph --version`, `ordergraph migrate --check` (a deploy gate) and Alembic run from
the repo root, as a user runs them: subprocesses on a database of their own."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from alembic.script import ScriptDirectory

from tests.api.test_cli import run

ROOT = Path(__file__).resolve().parents[2]
# The newest migration, read from the migrations folder (a new one must not break these tests).
HEAD = ScriptDirectory(str(ROOT / "ordergraph" / "migrations")).get_current_head()


def alembic(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alembic", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_version_is_pyprojects(tmp_path: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run(["--version"], {}, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"ordergraph {declared}\n")


def test_migrate_check_fails_until_the_database_is_at_head(fresh_pg_database: str,
                                                           tmp_path: Path) -> None:
    env = {"DATABASE_URL": fresh_pg_database}
    empty = run(["migrate", "--check"], env, cwd=tmp_path)
    assert empty.returncode == 1
    assert empty.stderr.splitlines() == [
        f"database is behind head: at no revision (empty database), head is {HEAD}; run "
        "`ordergraph migrate`"]

    assert run(["migrate", "0002"], env, cwd=tmp_path).returncode == 0
    behind = run(["migrate", "--check"], env, cwd=tmp_path)
    assert behind.returncode == 1
    assert f"at 0002, head is {HEAD}" in behind.stderr
    assert len(behind.stderr.splitlines()) == 1

    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    current = run(["migrate", "--check"], env, cwd=tmp_path)
    assert (current.returncode, current.stdout, current.stderr) == \
        (0, f"database is at head ({HEAD})\n", "")


def test_migrate_check_without_a_database_fails_in_one_line(tmp_path: Path) -> None:
    result = run(["migrate", "--check"],
                 {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}, cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("migrate --check: cannot read the database's revision")


def test_alembic_runs_from_the_repo_root(fresh_pg_database: str) -> None:
    # A platform's bare postgresql:// URL, read through Settings like every command.
    env = {"DATABASE_URL": fresh_pg_database.replace("postgresql+psycopg://", "postgresql://")}
    heads = alembic(["heads"], env)
    assert (heads.returncode, heads.stdout.strip()) == (0, f"{HEAD} (head)"), heads.stderr
    upgraded = alembic(["upgrade", "head"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    # autogenerate compares the tables with the models: nothing to write after `upgrade`.
    check = alembic(["check"], env)
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

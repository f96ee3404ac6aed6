"""render.yaml, checked without Render: every variable it sets is one the app reads, secrets
are never written in it, its wiring names resources it defines, and what it gives the app
validates, the release step's share included."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from ordergraph.cli import build_parser
from ordergraph.settings import Settings
from ordergraph.web.app import create_app
from tests.support import settings_for
from tests.unit.test_deployment import names_the_settings_read

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = yaml.safe_load((ROOT / "render.yaml").read_text())
WEB = next(service for service in BLUEPRINT["services"] if service["type"] == "web")
ENV = {variable["key"]: variable for variable in WEB["envVars"]}
# What production refuses to start without; never a value in a file in git.
REQUIRED_SECRETS = {"JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SMTP_URL"}
# Read by something other than Settings (none so far; e.g. Python's own PYTHON* variables).
KNOWN_EXTRAS: set[str] = set()
# What Render puts in each wired variable, in the form it hands out.
RENDER_GIVES = {"DATABASE_URL": "postgresql://ordergraph:pw@dpg-x-a/ordergraph",
                "BROADCAST_URL": "redis://red-x:6379"}


def test_the_web_service_is_built_from_our_dockerfile() -> None:
    assert WEB["runtime"] == "docker"
    assert (ROOT / WEB["dockerfilePath"]).is_file()
    assert (ROOT / WEB["dockerContext"]).is_dir()


def test_the_pre_deploy_command_is_the_migration() -> None:
    program, *args = shlex.split(WEB["preDeployCommand"])
    assert program == "ordergraph"
    assert build_parser().parse_args(args).command == "migrate"


def test_the_health_check_path_is_served() -> None:
    app = create_app(settings_for("sqlite+aiosqlite:///unused.db"))
    assert WEB["healthCheckPath"] in {getattr(route, "path", None) for route in app.routes}


def test_every_variable_it_sets_is_read_by_the_app() -> None:
    assert set(ENV) - (names_the_settings_read() | KNOWN_EXTRAS) == set()


def test_secrets_are_asked_for_or_generated_never_written() -> None:
    assert REQUIRED_SECRETS | {"STRIPE_PUBLISHABLE_KEY"} <= set(ENV)
    for key in REQUIRED_SECRETS - {"JWT_SECRET"}:
        assert ENV[key] == {"key": key, "sync": False}, key
    # Render generates it once (256 random bits) and keeps it: stronger than a typed one.
    assert ENV["JWT_SECRET"] == {"key": "JWT_SECRET", "generateValue": True}
    for key, variable in ENV.items():
        if "value" in variable:
            assert not any(word in key for word in ("SECRET", "PASSWORD", "KEY")), key


def test_wired_variables_name_resources_it_defines() -> None:
    databases = {database["name"] for database in BLUEPRINT["databases"]}
    services = {(service["type"], service["name"]) for service in BLUEPRINT["services"]}
    assert ENV["DATABASE_URL"]["fromDatabase"] == {"name": "ordergraph-db",
                                                   "property": "connectionString"}
    assert ENV["DATABASE_URL"]["fromDatabase"]["name"] in databases
    source = ENV["BROADCAST_URL"]["fromService"]
    assert (source["type"], source["name"]) in services
    assert (source["type"], source["property"]) == ("keyvalue", "connectionString")
    stores = [service for service in BLUEPRINT["services"] if service["type"] == "keyvalue"]
    for resource in [*BLUEPRINT["databases"], *stores]:
        assert resource["ipAllowList"] == [], resource["name"]  # private to the account


def what_the_app_gets(**operator: str) -> dict[str, str]:
    environment = {key: variable["value"] for key, variable in ENV.items()
                   if "value" in variable}
    return {"ORDERGRAPH_ENV": "production", **environment, **RENDER_GIVES, **operator}


def test_what_it_gives_the_app_validates() -> None:
    # The pre-deploy command: before the operator has typed a single secret.
    release = Settings.from_env(what_the_app_gets(), dotenv_path=None, database_only=True)
    assert release.database_url == "postgresql+psycopg://ordergraph:pw@dpg-x-a/ordergraph"
    served = Settings.from_env(what_the_app_gets(
        JWT_SECRET="g" * 44, STRIPE_SECRET_KEY="sk_live_x", STRIPE_PUBLISHABLE_KEY="pk_live_x",
        STRIPE_WEBHOOK_SECRET="whsec_x", TRUSTED_PROXIES="10.0.0.0/8",
        SMTP_URL="smtp://apikey:x@smtp.example.com:587", MAIL_FROM="Shop <shop@example.com>",
        PUBLIC_URL="https://ordergraph.onrender.com"), dotenv_path=None)
    assert served.is_production
    assert served.broadcast_url.startswith("redis://")

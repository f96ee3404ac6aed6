"""Settings as platforms and proxies hand them to us: database URLs without a driver, the
addresses of trusted proxies, and commands that need only the database."""

from __future__ import annotations

import pytest

from ordergraph.setting_values import normalise_database_url
from ordergraph.settings import Settings, SettingsError


@pytest.mark.parametrize(("given", "used"), [
    ("postgres://u:p@db.internal:5432/shop", "postgresql+psycopg://u:p@db.internal:5432/shop"),
    ("postgresql://u:p@db/shop?sslmode=require&application_name=og",
     "postgresql+psycopg://u:p@db/shop?sslmode=require&application_name=og"),
    ("POSTGRES://u@db/shop", "postgresql+psycopg://u@db/shop"),
    ("postgresql+psycopg://u@db/shop", "postgresql+psycopg://u@db/shop"),
    ("sqlite+aiosqlite:///./ordergraph.db", "sqlite+aiosqlite:///./ordergraph.db"),
])
def test_platform_database_urls_name_our_driver(given: str, used: str) -> None:
    assert normalise_database_url(given) == used
    assert Settings.from_env({"DATABASE_URL": given}, dotenv_path=None).database_url == used


PRODUCTION_DATABASE_ONLY = {"ORDERGRAPH_ENV": "production",
                            "DATABASE_URL": "postgres://shop@db/shop"}


def test_database_commands_need_no_app_secrets_in_production() -> None:
    settings = Settings.from_env(PRODUCTION_DATABASE_ONLY, dotenv_path=None, database_only=True)
    assert settings.database_url == "postgresql+psycopg://shop@db/shop"
    with pytest.raises(SettingsError, match="JWT_SECRET is required in production"):
        Settings.from_env(PRODUCTION_DATABASE_ONLY, dotenv_path=None)
    with pytest.raises(SettingsError, match="production needs PostgreSQL"):
        Settings.from_env({"ORDERGRAPH_ENV": "production"}, dotenv_path=None,
                          database_only=True)


def test_trusted_proxies_default_to_loopback() -> None:
    assert Settings.from_env({}, dotenv_path=None).trusted_proxies == ("127.0.0.1", "::1")


@pytest.mark.parametrize(("environ", "trusted"), [
    ({"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 ,fd00::/8"}, ("10.0.0.0/8", "192.0.2.7",
                                                              "fd00::/8")),
    ({"TRUSTED_PROXIES": "*"}, ("*",)),
    ({"FORWARDED_ALLOW_IPS": "172.16.0.0/12"}, ("172.16.0.0/12",)),  # uvicorn's name
    ({"TRUSTED_PROXIES": "10.1.2.3", "FORWARDED_ALLOW_IPS": "172.16.0.0/12"}, ("10.1.2.3",)),
])
def test_trusted_proxies_are_addresses_and_networks(environ: dict[str, str],
                                                    trusted: tuple[str, ...]) -> None:
    assert Settings.from_env(environ, dotenv_path=None).trusted_proxies == trusted


@pytest.mark.parametrize("value", ["load-balancer", "10.0.0.5/8", "10.0.0.0/33", "*,10.0.0.1",
                                   " , "])
def test_a_malformed_trusted_proxy_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": value}, dotenv_path=None)

"""Value objects and validation: money, carts, stock, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ordergraph.domain.carts import Cart
from ordergraph.domain.errors import InsufficientStock, ValidationFailed
from ordergraph.domain.model import SYSTEM, Money, Stock, normalise_email
from ordergraph.setting_values import parse_duration
from ordergraph.settings import Settings, SettingsError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (14999, "usd", "$149.99"), (5, "usd", "$0.05"), (123456789, "eur", "€1,234,567.89"),
    (1500, "jpy", "¥1,500"), (1000, "chf", "10.00 CHF"), (-250, "usd", "-$2.50"),
])
def test_money_formatting(amount: int, currency: str, text: str) -> None:
    assert Money(amount, currency).formatted() == text


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot add"):
        Money(1, "usd") + Money(1, "eur")


def test_cart_merges_duplicates_in_product_order() -> None:
    cart = Cart.from_lines([(5, 1), (2, 3), (5, 4)])
    assert cart.quantities == ((2, 3), (5, 5))
    assert cart.fingerprint() == Cart.from_lines([(2, 1), (5, 5), (2, 2)]).fingerprint()
    assert cart.fingerprint() != Cart.from_lines([(2, 3), (5, 4)]).fingerprint()


@pytest.mark.parametrize(("lines", "field"), [
    ([], "items"), ([(1, 0)], "items.0.quantity"), ([(1, 1), (2, 1001)], "items.1.quantity"),
    ([(i, 1) for i in range(101)], "items"),
])
def test_cart_validation(lines: list[tuple[int, int]], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        Cart.from_lines(lines)
    assert refused.value.field == field


def test_stock_moves_and_its_ledger_events() -> None:
    stock = Stock(product_id=1, available=5, reserved=0, updated_at=NOW)
    stock.reserve(3, order_id=9, actor=SYSTEM, at=NOW)
    stock.sell(2, order_id=9, actor=SYSTEM, at=NOW)
    stock.release(1, order_id=9, actor=SYSTEM, at=NOW)
    assert (stock.available, stock.reserved) == (3, 0)
    assert [(e.reason, e.delta_available, e.delta_reserved) for e in stock.events] == [
        ("RESERVED", -3, 3), ("SOLD", 0, -2), ("RELEASED", 1, -1)]
    with pytest.raises(InsufficientStock) as short:
        stock.reserve(4, order_id=10, actor=SYSTEM, at=NOW)
    assert (short.value.requested, short.value.available) == (4, 3)
    with pytest.raises(ValidationFailed):
        stock.adjust(-4, actor=SYSTEM, at=NOW, note=None)


def test_emails_are_normalised() -> None:
    assert normalise_email("  Ada@Example.COM ") == "ada@example.com"
    with pytest.raises(ValidationFailed):
        normalise_email("no-at-sign")


@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), ("30s", 30), ("2s", 2), ("1h", 3600), ("1d", 86400), ("45", 45),
    ("500ms", 0.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_bad_durations_are_refused() -> None:
    with pytest.raises(SettingsError, match="RESERVATION_TTL"):
        Settings.from_env({"RESERVATION_TTL": "soon"}, dotenv_path=None)


def test_defaults() -> None:
    settings = Settings.from_env({}, dotenv_path=None)
    assert settings.database_url == "sqlite+aiosqlite:///./ordergraph.db"
    assert settings.database_isolation_level == "READ COMMITTED"
    assert settings.broadcast_url == "memory://"
    assert settings.reservation_ttl == timedelta(minutes=15)
    assert settings.sweep_interval == timedelta(seconds=30)
    assert settings.jwt_expiration == timedelta(days=1)
    assert settings.local_payments
    assert not settings.is_production
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    # A random secret per process in development.
    assert Settings.from_env({}, dotenv_path=None).jwt_secret != settings.jwt_secret


def test_isolation_level_is_a_setting() -> None:
    settings = Settings.from_env({"DATABASE_ISOLATION_LEVEL": "serializable"}, dotenv_path=None)
    assert settings.database_isolation_level == "SERIALIZABLE"
    with pytest.raises(SettingsError):
        Settings.from_env({"DATABASE_ISOLATION_LEVEL": "chaos"}, dotenv_path=None)


PRODUCTION = {
    "ORDERGRAPH_ENV": "production", "JWT_SECRET": "s" * 40,
    "DATABASE_URL": "postgresql+psycopg://shop@db/shop", "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x", "SMTP_URL": "smtp://user:pw@smtp.example.com:587",
    "MAIL_FROM": "Shop <orders@shop.example.com>", "PUBLIC_URL": "https://shop.example.com",
}


@pytest.mark.parametrize(("change", "reason"), [
    ({"JWT_SECRET": ""}, "JWT_SECRET is required"),
    ({"JWT_SECRET": "short"}, "at least 32 bytes"),
    ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY"),
    ({"DATABASE_URL": ""}, "SQLite"),
    ({"SMTP_URL": ""}, "production needs SMTP_URL"),
    ({"PUBLIC_URL": ""}, "production needs PUBLIC_URL"),
    ({"MAIL_FROM": ""}, "production needs MAIL_FROM"),
])
def test_production_refuses_unsafe_defaults(change: dict[str, str], reason: str) -> None:
    assert Settings.from_env(PRODUCTION, dotenv_path=None).is_production
    with pytest.raises(SettingsError, match=reason):
        Settings.from_env({**PRODUCTION, **change}, dotenv_path=None)
    production = Settings.from_env(PRODUCTION, dotenv_path=None)
    assert not production.graphiql
    assert not production.introspection


def test_dotenv_is_read_under_the_environment(tmp_path: object) -> None:
    env_file = f"{tmp_path}/.env"
    with open(env_file, "w") as handle:
        handle.write("RESERVATION_TTL=2m\nPORT=9000\n")
    settings = Settings.from_env({"PORT": "9100"}, dotenv_path=env_file)
    assert settings.reservation_ttl == timedelta(minutes=2)
    assert settings.port == 9100

"""Typed settings, read once from the environment (and a `.env` file), then passed down.

Reading one setting's text is setting_values.py; whether the settings may run (`check()`)
is setting_checks.py.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from dotenv import dotenv_values

from ordergraph import setting_checks
from ordergraph.setting_values import (
    SettingsError,
    isolation_level,
    normalise_database_url,
    parse_duration,
    trusted_proxies,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ordergraph.db"
# The addresses a reverse proxy on this host connects from; anything else must be listed.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    database_isolation_level: str = "READ COMMITTED"
    database_pool_size: int = 10
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)
    jwt_expiration: timedelta = timedelta(days=1)
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_publishable_key: str | None = None
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    stripe_js_url: str | None = None
    stripe_webhook_url: str | None = None
    broadcast_url: str = "memory://"
    broadcast_prefix: str = ""
    reservation_ttl: timedelta = timedelta(minutes=15)
    # What one customer may hold unpaid at once (0: no limit).
    # A checkout waits this long for the provider (retries included); shorter than the
    # graceful shutdown, so a deploy lets every checkout finish cleanly.
    payment_provider_deadline: timedelta = timedelta(seconds=8)
    shutdown_timeout: timedelta = timedelta(seconds=10)
    max_unpaid_orders: int = 5
    max_unpaid_units: int = 1000
    # Namespaces our intents and idempotency keys at the provider; unset: the id the
    # database generated for this installation (see db/installation.py).
    installation_id: str | None = None
    sweep_interval: timedelta = timedelta(seconds=30)
    cors_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips): the client
    # address that throttling and logs see is the first untrusted one from the right.
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    currency: str = "usd"
    # Shipping, in the currency's minor units: a flat rate per shipped order (0: free), free
    # from a subtotal on (None: never free by subtotal); `shipping_required`: every checkout
    # must give an address.
    shipping_flat_cents: int = 0
    free_shipping_over_cents: int | None = None
    shipping_required: bool = False
    graphiql: bool = True
    introspection: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    # Login and registration throttling (adapters/ratelimit.py; README "Abuse limits").
    login_free_failures_per_email: int = 5
    login_free_failures_per_address: int = 20
    login_first_block: timedelta = timedelta(seconds=2)
    login_max_block: timedelta = timedelta(minutes=15)
    login_window: timedelta = timedelta(minutes=15)
    register_per_address: int = 20
    register_window: timedelta = timedelta(hours=1)
    register_first_block: timedelta = timedelta(seconds=30)
    register_max_block: timedelta = timedelta(hours=1)
    # Observability (README "Operating it"): /metrics behind a bearer token, or on a port of
    # its own; OpenTelemetry tracing when an OTLP endpoint is named.
    metrics_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    otel_endpoint: str | None = None
    build_commit: str = "unknown"
    # Customer email: unset SMTP_URL outside production is local mail mode (the app's own
    # SMTP sink, read on the admin Mail page).
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "ordergraph <no-reply@localhost>"
    public_url: str | None = None  # base of links in emails; default http://HOST:PORT

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def local_payments(self) -> bool:
        """No Stripe key: payments go to the local emulator (`ordergraph serve` starts one)."""
        return self.stripe_secret_key is None

    @property
    def local_mail(self) -> bool:
        """No SMTP_URL (never in production): email goes to the app's own SMTP sink."""
        return self.smtp_url is None and not self.is_production

    @property
    def links_base(self) -> str:
        """Where links in emails point: PUBLIC_URL, or this server's own address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 dotenv_path: str | None = ".env", database_only: bool = False) -> Settings:
        """Settings from `environ` (default os.environ) over a `.env` file, validated: all of
        them, or with `database_only` just what a database command (migrate, seed) uses, so
        a release step needs no JWT or Stripe secret."""
        values: dict[str, str | None] = {}
        if dotenv_path and os.path.exists(dotenv_path):
            values.update(dotenv_values(dotenv_path))
        values.update(os.environ if environ is None else environ)
        settings = cls._from_values(values)
        if database_only:
            settings.check_database()
        else:
            settings.check()
        return settings

    @classmethod
    def _from_values(cls, env: Mapping[str, str | None]) -> Settings:
        def get(name: str) -> str | None:
            value = env.get(name)
            value = value.strip() if isinstance(value, str) else None
            return value or None

        def integer(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{name}: {raw!r} is not a whole number") from None

        def flag(name: str, default: bool) -> bool:
            raw = get(name)
            if raw is None:
                return default
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise SettingsError(f"{name}: {raw!r} is not true or false")

        def duration(name: str, default: str) -> timedelta:
            return parse_duration(get(name) or default, name=name)

        environment = (get("ORDERGRAPH_ENV") or "development").lower()
        if environment not in {"development", "production", "test"}:
            raise SettingsError(
                f"ORDERGRAPH_ENV: {environment!r} is not development, production or test")
        development = environment != "production"
        kwargs: dict[str, object] = {
            "database_url": normalise_database_url(get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            "database_isolation_level": isolation_level(
                get("DATABASE_ISOLATION_LEVEL") or "READ COMMITTED"),
            "database_pool_size": integer("DATABASE_POOL_SIZE", 10),
            "jwt_expiration": parse_duration(get("JWT_EXPIRATION") or "1d",
                                             name="JWT_EXPIRATION"),
            "stripe_secret_key": get("STRIPE_SECRET_KEY"),
            "stripe_publishable_key": get("STRIPE_PUBLISHABLE_KEY"),
            "stripe_webhook_secret": get("STRIPE_WEBHOOK_SECRET"),
            "stripe_api_base": (get("STRIPE_API_BASE") or "").rstrip("/") or None,
            "stripe_js_url": get("STRIPE_JS_URL"),
            "stripe_webhook_url": get("STRIPE_WEBHOOK_URL"),
            "broadcast_url": get("BROADCAST_URL") or "memory://",
            "broadcast_prefix": get("BROADCAST_PREFIX") or "",
            "reservation_ttl": parse_duration(get("RESERVATION_TTL") or "15m",
                                              name="RESERVATION_TTL"),
            "payment_provider_deadline": parse_duration(
                get("PAYMENT_PROVIDER_DEADLINE") or "8s", name="PAYMENT_PROVIDER_DEADLINE"),
            "shutdown_timeout": parse_duration(get("SHUTDOWN_TIMEOUT") or "10s",
                                               name="SHUTDOWN_TIMEOUT"),
            "max_unpaid_orders": integer("MAX_UNPAID_ORDERS", 5),
            "max_unpaid_units": integer("MAX_UNPAID_UNITS", 1000),
            "installation_id": get("INSTALLATION_ID"),
            "sweep_interval": parse_duration(get("SWEEP_INTERVAL") or "30s",
                                             name="SWEEP_INTERVAL"),
            "cors_origins": tuple(origin.strip() for origin in
                                  (get("CORS_ORIGINS") or "").split(",") if origin.strip()),
            "trusted_proxies": trusted_proxies(
                # uvicorn's own name for it is honoured when ours is not set.
                get("TRUSTED_PROXIES") or get("FORWARDED_ALLOW_IPS")
                or ",".join(DEFAULT_TRUSTED_PROXIES)),
            "environment": environment,
            "host": get("HOST") or "127.0.0.1",
            "port": integer("PORT", 8000),
            "workers": integer("WEB_CONCURRENCY", 1),
            "currency": (get("CURRENCY") or "usd").lower(),
            "shipping_flat_cents": integer("SHIPPING_FLAT_CENTS", 0),
            "free_shipping_over_cents": None if get("FREE_SHIPPING_OVER_CENTS") is None
            else integer("FREE_SHIPPING_OVER_CENTS", 0),
            "shipping_required": flag("SHIPPING_REQUIRED", False),
            "graphiql": flag("GRAPHIQL", development),
            "introspection": flag("INTROSPECTION", development),
            "log_level": (get("LOG_LEVEL") or "INFO").upper(),
            "log_format": (get("LOG_FORMAT") or ("text" if development else "json")).lower(),
            "login_free_failures_per_email": integer("LOGIN_FREE_FAILURES_PER_EMAIL", 5),
            "login_free_failures_per_address": integer("LOGIN_FREE_FAILURES_PER_ADDRESS", 20),
            "login_first_block": duration("LOGIN_FIRST_BLOCK", "2s"),
            "login_max_block": duration("LOGIN_MAX_BLOCK", "15m"),
            "login_window": duration("LOGIN_WINDOW", "15m"),
            "register_per_address": integer("REGISTER_PER_ADDRESS", 20),
            "register_window": duration("REGISTER_WINDOW", "1h"),
            "register_first_block": duration("REGISTER_FIRST_BLOCK", "30s"),
            "register_max_block": duration("REGISTER_MAX_BLOCK", "1h"),
            "metrics_token": get("METRICS_TOKEN"),
            "metrics_port": integer("METRICS_PORT", 0) or None,
            "otel_endpoint": get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            # Render sets RENDER_GIT_COMMIT; an image can be built with GIT_COMMIT.
            "build_commit": get("GIT_COMMIT") or get("RENDER_GIT_COMMIT") or "unknown",
            "smtp_url": get("SMTP_URL"),
            "mail_from": get("MAIL_FROM") or "ordergraph <no-reply@localhost>",
            "public_url": get("PUBLIC_URL"),
        }
        secret = get("JWT_SECRET")
        if secret is not None:
            kwargs["jwt_secret"] = secret
        elif not development:
            kwargs["jwt_secret"] = ""  # never a random one in production: check() says so
        return cls(**kwargs)  # type: ignore[arg-type]

    def check_database(self) -> None:
        """What every command needs: a database it may use (setting_checks.py)."""
        setting_checks.check_database(self)

    def check(self) -> None:
        """Everything `serve` (and `sweep`) needs; each refusal has a one-line reason
        (setting_checks.py)."""
        setting_checks.check(self)

"""Typed settings, read once from the environment (and a `.env` file), then passed down."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlparse

from dotenv import dotenv_values

from ordergraph.setting_values import (
    SettingsError,
    installed,
    isolation_level,
    normalise_database_url,
    parse_duration,
    trusted_proxies,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ordergraph.db"
MIN_JWT_SECRET_BYTES = 32
MAX_SHIPPING_CENTS = 99_999_999  # as a product's price
MAX_GRAPHQL_INT = 2**31 - 1
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
        """What every command needs: a database it may use."""
        if self.is_production and self.database_url.startswith("sqlite"):
            raise SettingsError("production needs PostgreSQL: DATABASE_URL is SQLite")

    def check(self) -> None:
        """Everything `serve` (and `sweep`) needs; each refusal has a one-line reason."""
        self.check_database()
        if self.is_production and not self.jwt_secret:
            raise SettingsError(
                "JWT_SECRET is required in production (at least 32 random bytes)")
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise SettingsError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
        if self.reservation_ttl <= timedelta(0):
            raise SettingsError("RESERVATION_TTL must be positive")
        if not timedelta(0) < self.payment_provider_deadline < self.shutdown_timeout:
            raise SettingsError("PAYMENT_PROVIDER_DEADLINE must be positive and shorter than "
                                "SHUTDOWN_TIMEOUT (a deploy must not cut a checkout in half)")
        if self.max_unpaid_orders < 0 or self.max_unpaid_units < 0:
            raise SettingsError("MAX_UNPAID_ORDERS and MAX_UNPAID_UNITS must be 0 (no limit) "
                                "or more")
        if self.installation_id is not None and \
                not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", self.installation_id):
            raise SettingsError("INSTALLATION_ID: use 1 to 40 letters, digits, '-' or '_'")
        if self.sweep_interval <= timedelta(0):
            raise SettingsError("SWEEP_INTERVAL must be positive")
        self._check_throttles()
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise SettingsError(f"METRICS_PORT: {self.metrics_port} is not a TCP port")
        if self.metrics_port is not None and self.workers > 1:
            raise SettingsError("METRICS_PORT needs WEB_CONCURRENCY=1: workers cannot share "
                                "one metrics port (run one worker per container)")
        if self.otel_endpoint is not None and not installed("opentelemetry.sdk"):
            raise SettingsError("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not "
                                "installed: install the otel extra (ordergraph[otel])")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"LOG_FORMAT: {self.log_format!r} is not json or text")
        if not 0 <= self.shipping_flat_cents <= MAX_SHIPPING_CENTS:
            raise SettingsError(f"SHIPPING_FLAT_CENTS must be 0 (free) to {MAX_SHIPPING_CENTS}")
        if self.free_shipping_over_cents is not None and \
                not 0 <= self.free_shipping_over_cents <= MAX_GRAPHQL_INT:
            raise SettingsError("FREE_SHIPPING_OVER_CENTS must be 0 or more (unset: never free)")
        if not re.fullmatch(r"[a-z]{3}", self.currency):
            raise SettingsError(f"CURRENCY: {self.currency!r} is not an ISO-4217 code")
        if self.is_production and (self.stripe_secret_key is None
                                   or self.stripe_webhook_secret is None):
            raise SettingsError("production needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")

    def _check_throttles(self) -> None:
        for name, count in (("LOGIN_FREE_FAILURES_PER_EMAIL", self.login_free_failures_per_email),
                            ("LOGIN_FREE_FAILURES_PER_ADDRESS",
                             self.login_free_failures_per_address),
                            ("REGISTER_PER_ADDRESS", self.register_per_address)):
            if count < 0:
                raise SettingsError(f"{name} must be 0 or more")
        for prefix, first, longest, window in (
                ("LOGIN", self.login_first_block, self.login_max_block, self.login_window),
                ("REGISTER", self.register_first_block, self.register_max_block,
                 self.register_window)):
            # Redis expires keys in whole seconds.
            if min(first, longest, window) < timedelta(seconds=1):
                raise SettingsError(f"{prefix}_FIRST_BLOCK, {prefix}_MAX_BLOCK and "
                                    f"{prefix}_WINDOW must be at least 1s")
            if first > longest:
                raise SettingsError(f"{prefix}_FIRST_BLOCK must not exceed {prefix}_MAX_BLOCK")
        self._check_mail()

    def _check_mail(self) -> None:
        if self.smtp_url is not None:
            parsed = urlparse(self.smtp_url)
            try:
                parsed.port  # noqa: B018 - raises on a malformed port
            except ValueError:
                parsed = parsed._replace(netloc="")
            if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
                raise SettingsError("SMTP_URL: not smtp://user:pass@host:587 or "
                                    "smtps://user:pass@host:465")
        if self.public_url is not None and \
                urlparse(self.public_url).scheme not in ("http", "https"):
            raise SettingsError(f"PUBLIC_URL: {self.public_url!r} is not an http(s) URL")
        if "@" not in self.mail_from:
            raise SettingsError(f"MAIL_FROM: {self.mail_from!r} has no email address")
        if self.is_production:
            # A shop that cannot email cannot confirm an order or let a customer back in:
            # refuse to start rather than queue mail nobody will ever send.
            if self.smtp_url is None:
                raise SettingsError("production needs SMTP_URL (customer email and "
                                    "password reset)")
            if self.public_url is None:
                raise SettingsError("production needs PUBLIC_URL (the base of links in "
                                    "emails, e.g. https://shop.example.com)")
            if "@localhost" in self.mail_from:
                raise SettingsError("production needs MAIL_FROM (e.g. Shop "
                                    "<orders@shop.example.com>)")

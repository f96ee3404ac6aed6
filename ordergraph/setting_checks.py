"""Whether a Settings may run: `check_database` (what every command needs) and `check`
(everything `serve` and `sweep` need), each refusal a SettingsError with a one-line reason.
`Settings.check()` and `Settings.check_database()` (settings.py) call these.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ordergraph.setting_values import SettingsError, installed

if TYPE_CHECKING:
    from ordergraph.settings import Settings

MIN_JWT_SECRET_BYTES = 32
MAX_SHIPPING_CENTS = 99_999_999  # as a product's price
MAX_GRAPHQL_INT = 2**31 - 1


def check_database(settings: Settings) -> None:
    """What every command needs: a database it may use."""
    if settings.is_production and settings.database_url.startswith("sqlite"):
        raise SettingsError("production needs PostgreSQL: DATABASE_URL is SQLite")


def check(settings: Settings) -> None:
    """Everything `serve` (and `sweep`) needs; each refusal has a one-line reason."""
    check_database(settings)
    if settings.is_production and not settings.jwt_secret:
        raise SettingsError(
            "JWT_SECRET is required in production (at least 32 random bytes)")
    if len(settings.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
        raise SettingsError(f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")
    if settings.reservation_ttl <= timedelta(0):
        raise SettingsError("RESERVATION_TTL must be positive")
    if not timedelta(0) < settings.payment_provider_deadline < settings.shutdown_timeout:
        raise SettingsError("PAYMENT_PROVIDER_DEADLINE must be positive and shorter than "
                            "SHUTDOWN_TIMEOUT (a deploy must not cut a checkout in half)")
    if settings.max_unpaid_orders < 0 or settings.max_unpaid_units < 0:
        raise SettingsError("MAX_UNPAID_ORDERS and MAX_UNPAID_UNITS must be 0 (no limit) "
                            "or more")
    if settings.installation_id is not None and \
            not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", settings.installation_id):
        raise SettingsError("INSTALLATION_ID: use 1 to 40 letters, digits, '-' or '_'")
    if settings.sweep_interval <= timedelta(0):
        raise SettingsError("SWEEP_INTERVAL must be positive")
    _check_throttles(settings)
    if settings.metrics_port is not None and not 0 < settings.metrics_port < 65536:
        raise SettingsError(f"METRICS_PORT: {settings.metrics_port} is not a TCP port")
    if settings.metrics_port is not None and settings.workers > 1:
        raise SettingsError("METRICS_PORT needs WEB_CONCURRENCY=1: workers cannot share "
                            "one metrics port (run one worker per container)")
    if settings.otel_endpoint is not None and not installed("opentelemetry.sdk"):
        raise SettingsError("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not "
                            "installed: install the otel extra (ordergraph[otel])")
    if settings.log_format not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT: {settings.log_format!r} is not json or text")
    if not 0 <= settings.shipping_flat_cents <= MAX_SHIPPING_CENTS:
        raise SettingsError(f"SHIPPING_FLAT_CENTS must be 0 (free) to {MAX_SHIPPING_CENTS}")
    if settings.free_shipping_over_cents is not None and \
            not 0 <= settings.free_shipping_over_cents <= MAX_GRAPHQL_INT:
        raise SettingsError("FREE_SHIPPING_OVER_CENTS must be 0 or more (unset: never free)")
    if not re.fullmatch(r"[a-z]{3}", settings.currency):
        raise SettingsError(f"CURRENCY: {settings.currency!r} is not an ISO-4217 code")
    if settings.is_production and (settings.stripe_secret_key is None
                               or settings.stripe_webhook_secret is None):
        raise SettingsError("production needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET")


def _check_throttles(settings: Settings) -> None:
    for name, count in (("LOGIN_FREE_FAILURES_PER_EMAIL", settings.login_free_failures_per_email),
                        ("LOGIN_FREE_FAILURES_PER_ADDRESS",
                         settings.login_free_failures_per_address),
                        ("REGISTER_PER_ADDRESS", settings.register_per_address)):
        if count < 0:
            raise SettingsError(f"{name} must be 0 or more")
    for prefix, first, longest, window in (
            ("LOGIN", settings.login_first_block, settings.login_max_block, settings.login_window),
            ("REGISTER", settings.register_first_block, settings.register_max_block,
             settings.register_window)):
        # Redis expires keys in whole seconds.
        if min(first, longest, window) < timedelta(seconds=1):
            raise SettingsError(f"{prefix}_FIRST_BLOCK, {prefix}_MAX_BLOCK and "
                                f"{prefix}_WINDOW must be at least 1s")
        if first > longest:
            raise SettingsError(f"{prefix}_FIRST_BLOCK must not exceed {prefix}_MAX_BLOCK")
    _check_mail(settings)


def _check_mail(settings: Settings) -> None:
    if settings.smtp_url is not None:
        parsed = urlparse(settings.smtp_url)
        try:
            parsed.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            parsed = parsed._replace(netloc="")
        if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
            raise SettingsError("SMTP_URL: not smtp://user:pass@host:587 or "
                                "smtps://user:pass@host:465")
    if settings.public_url is not None and \
            urlparse(settings.public_url).scheme not in ("http", "https"):
        raise SettingsError(f"PUBLIC_URL: {settings.public_url!r} is not an http(s) URL")
    if "@" not in settings.mail_from:
        raise SettingsError(f"MAIL_FROM: {settings.mail_from!r} has no email address")
    if settings.is_production:
        # A shop that cannot email cannot confirm an order or let a customer back in:
        # refuse to start rather than queue mail nobody will ever send.
        if settings.smtp_url is None:
            raise SettingsError("production needs SMTP_URL (customer email and "
                                "password reset)")
        if settings.public_url is None:
            raise SettingsError("production needs PUBLIC_URL (the base of links in "
                                "emails, e.g. https://shop.example.com)")
        if "@localhost" in settings.mail_from:
            raise SettingsError("production needs MAIL_FROM (e.g. Shop "
                                "<orders@shop.example.com>)")

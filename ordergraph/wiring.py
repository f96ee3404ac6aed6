"""The composition root: Settings in, the concrete adapters out, held by their ports.

The only module that constructs adapters, with wiring_payments.py (the gateways and the
installation id they namespace by). `web/app.py` (the server), `cli.py` (the commands)
and `bench/server.py` all build from here, so a command publishes, meters and pays exactly as
the server does. Tests replace an adapter through `Overrides`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.ext.asyncio import AsyncEngine

from ordergraph import __version__
from ordergraph.adapters.clock import SystemClock
from ordergraph.adapters.live import LiveHub
from ordergraph.adapters.mail.sink import MailSink
from ordergraph.adapters.mail.smtp import SmtpMailer
from ordergraph.adapters.metrics import PrometheusMetrics
from ordergraph.adapters.passwords import Argon2PasswordHasher
from ordergraph.adapters.publisher import BroadcastPublisher
from ordergraph.adapters.ratelimit import MemoryRateLimiter, RedisRateLimiter, throttles_from
from ordergraph.adapters.stripe.webhooks import SIGNALS as STRIPE_EVENTS
from ordergraph.adapters.tokens import JwtTokenIssuer
from ordergraph.adapters.tracing import Tracing
from ordergraph.adapters.tracing import build_tracing as tracing_from
from ordergraph.db.engine import create_engine
from ordergraph.db.readstore import SqlReadStore
from ordergraph.db.uow import NullPublisher, SqlAlchemyUnitOfWork
from ordergraph.domain.auth_ports import PasswordHasher, RateLimiter
from ordergraph.domain.ports import (
    Clock,
    EventPublisher,
    Gateways,
    Mailer,
    PaymentGateway,
    UnitOfWork,
)
from ordergraph.domain.services.checkout import CheckoutLimits
from ordergraph.domain.shipping import ShippingRates
from ordergraph.resolvers.deps import Deps, Loaders
from ordergraph.resolvers.live_access import SubscriptionSlots
from ordergraph.settings import Settings
from ordergraph.wiring_payments import (
    adopt_installation,
    build_gateways,
    installation_or_none,
    load_installation_id,
    payment_settings,
)

log = logging.getLogger(__name__)

@dataclass
class Overrides:
    """Test seams: replace an adapter without touching the composition."""

    gateway: PaymentGateway | None = None
    clock: Clock | None = None
    passwords: PasswordHasher | None = None
    rate_limiter: RateLimiter | None = None
    # Load tests open hundreds of subscriptions from one address.
    subscription_slots: SubscriptionSlots | None = None
    run_sweeper: bool = True
    # Tracing to this (in-memory) span exporter, whatever the settings say.
    span_exporter: Any = None
    run_mail_sender: bool | None = None  # None: as run_sweeper
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Adapters:
    """The concrete adapters of one process, held by their ports (and what must be closed)."""

    engine: AsyncEngine
    clock: Clock
    publisher: EventPublisher
    metrics: PrometheusMetrics
    hub: LiveHub | None = None
    gateway: Gateways | None = None  # every provider's, by name; itself the default one
    rate_limiter: RateLimiter | None = None
    mailer: Mailer | None = None
    mail_sink: MailSink | None = None
    installation_id: str | None = ""

    def uow(self) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(self.engine, self.publisher,
                                    on_conflict=self.metrics.transaction_retried)


def build_metrics() -> PrometheusMetrics:
    """One per process (the collectors are the process's registry)."""
    return PrometheusMetrics(webhook_types=STRIPE_EVENTS)


def build_tracing(settings: Settings, overrides: Overrides | None = None) -> Tracing | None:
    """OpenTelemetry when OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test's span exporter)."""
    exporter = overrides.span_exporter if overrides is not None else None
    return tracing_from(endpoint=settings.otel_endpoint, service_version=__version__,
                        exporter=exporter)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis when the instances share Redis; per process otherwise."""
    throttles = throttles_from(settings)
    if urlparse(settings.broadcast_url).scheme in ("redis", "rediss"):
        return RedisRateLimiter(settings.broadcast_url, throttles=throttles,
                                prefix=f"{settings.broadcast_prefix}ratelimit:")
    return MemoryRateLimiter(throttles)


async def _start_local_mail() -> MailSink | None:
    """Local mail mode: like the Stripe emulator, the same path as production (the outbox
    over real SMTP), to a sink of our own that the admin Mail page reads."""
    sink = MailSink()
    try:
        await sink.start()
    except ImportError:
        log.warning("local mail mode needs aiosmtpd (the `local` extra): customer email "
                    "stays in the outbox until SMTP_URL is set")
        return None
    return sink


@contextlib.asynccontextmanager
async def open_adapters(settings: Settings, overrides: Overrides | None = None, *,
                        server: bool = False, live: bool = False, payments: bool = False,
                        metrics: PrometheusMetrics | None = None, tracing: Tracing | None = None,
                        pool_size: int | None = None) -> AsyncIterator[Adapters]:
    """Open the adapters a process needs and close them on the way out.

    `server`: everything the web app holds (implies `live` and `payments`, the rate limiter,
    local mail mode, and a database that may be away at start: the installation id is learnt
    later). `live`: publish changes on the broadcast like the server does, so what a command
    changes reaches every instance's subscribers; otherwise a null publisher. `payments`: a
    gateway, for this installation (a command needs the database to read it)."""
    overrides = overrides or Overrides()
    live, payments = live or server, payments or server
    metrics = metrics or build_metrics()
    engine = create_engine(settings.database_url,
                           isolation_level=settings.database_isolation_level,
                           pool_size=pool_size or settings.database_pool_size)
    if tracing is not None:
        tracing.instrument_engine(engine)
    metrics.watch_pool(engine.pool)
    adapters = Adapters(engine=engine, clock=overrides.clock or SystemClock(),
                        publisher=NullPublisher(), metrics=metrics)
    try:
        if live:
            hub = adapters.hub = LiveHub(settings.broadcast_url,
                                         prefix=settings.broadcast_prefix)
            await hub.start()
            adapters.publisher = BroadcastPublisher(hub, prefix=settings.broadcast_prefix)
            metrics.watch_subscriptions(lambda: hub.subscriber_count)
        if payments:
            found = await installation_or_none(settings, engine) if server \
                else await load_installation_id(settings, engine)
            adapters.gateway = registry = build_gateways(settings, found, overrides)
            adopt_installation(adapters, None, found)
            for gateway in registry.gateways.values():
                http_client = getattr(gateway, "http_client", None)
                if tracing is not None and http_client is not None:
                    tracing.instrument_http_client(http_client)
        if server:
            adapters.rate_limiter = overrides.rate_limiter or build_rate_limiter(settings)
            if settings.local_mail:
                adapters.mail_sink = await _start_local_mail()
        mail_url = adapters.mail_sink.url if adapters.mail_sink is not None \
            else settings.smtp_url
        if mail_url is not None:
            adapters.mailer = SmtpMailer(mail_url, sender=settings.mail_from,
                                         public_url=settings.links_base)
        yield adapters
    finally:
        if adapters.hub is not None:
            await adapters.hub.stop()
        if adapters.mail_sink is not None:
            await adapters.mail_sink.stop()
        for closeable in (adapters.gateway, adapters.rate_limiter):
            close = getattr(closeable, "aclose", None)
            if close is not None:
                await close()
        await engine.dispose()


def build_deps(settings: Settings, adapters: Adapters, overrides: Overrides | None = None, *,
               make_loaders: Callable[[SqlReadStore], Loaders]) -> Deps:
    """What the resolvers and the web routes call, over the server's open adapters."""
    overrides = overrides or Overrides()
    assert adapters.hub is not None and adapters.gateway is not None, "the server's adapters"
    reader = SqlReadStore(adapters.engine)
    return Deps(
        uow=adapters.uow,
        reader=reader,
        gateway=adapters.gateway,
        installation_id=adapters.installation_id,
        clock=adapters.clock,
        passwords=overrides.passwords or Argon2PasswordHasher(),
        # Tokens live on real time even when tests move the services' clock.
        tokens=JwtTokenIssuer(settings.jwt_secret, lifetime=settings.jwt_expiration,
                              clock=SystemClock()),
        reservation_ttl=settings.reservation_ttl,
        checkout_limits=CheckoutLimits(max_open_orders=settings.max_unpaid_orders,
                                       max_reserved_units=settings.max_unpaid_units),
        payment_provider_deadline=settings.payment_provider_deadline,
        shipping=ShippingRates(flat_cents=settings.shipping_flat_cents,
                               free_over_cents=settings.free_shipping_over_cents,
                               required=settings.shipping_required),
        currency=settings.currency,
        payment=payment_settings(settings),
        make_loaders=lambda: make_loaders(reader),
        live=adapters.hub,
        metrics=adapters.metrics,
        rate_limiter=adapters.rate_limiter,
        subscription_slots=overrides.subscription_slots or SubscriptionSlots(),
        extras=dict(overrides.extras),
        mailer=adapters.mailer,
        local_mailbox=adapters.mail_sink,
    )


def password_hasher() -> PasswordHasher:
    """For the commands that create accounts (seed, create-admin)."""
    return Argon2PasswordHasher()

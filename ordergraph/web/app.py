"""The app factory: the composition root. Engines and clients are built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from ordergraph import __version__
from ordergraph.adapters import localstripe
from ordergraph.adapters.clock import SystemClock
from ordergraph.adapters.live import LiveHub
from ordergraph.adapters.logs import configure_logging
from ordergraph.adapters.mail.sink import MailSink
from ordergraph.adapters.mail.smtp import SmtpMailer
from ordergraph.adapters.metrics import PrometheusMetrics, authorized, exposition, serve_metrics
from ordergraph.adapters.passwords import Argon2PasswordHasher
from ordergraph.adapters.publisher import BroadcastPublisher
from ordergraph.adapters.ratelimit import MemoryRateLimiter, RedisRateLimiter, throttles_from
from ordergraph.adapters.stripe_gateway import StripeGateway
from ordergraph.adapters.tokens import JwtTokenIssuer
from ordergraph.adapters.tracing import build_tracing
from ordergraph.db.engine import create_engine
from ordergraph.db.installation import installation_id
from ordergraph.db.readstore import SqlReadStore
from ordergraph.db.uow import SqlAlchemyUnitOfWork
from ordergraph.domain.ports import Clock, PasswordHasher, PaymentGateway, RateLimiter
from ordergraph.domain.services.checkout import CheckoutLimits
from ordergraph.domain.shipping import ShippingRates
from ordergraph.resolvers.context import PaymentSettings, Services
from ordergraph.resolvers.live_access import SubscriptionSlots
from ordergraph.schema.schema import build_schema
from ordergraph.settings import Settings
from ordergraph.web.background import background
from ordergraph.web.graphql import GraphQLApp
from ordergraph.web.loaders import make_loaders
from ordergraph.web.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    origin_of,
    web_client_policy,
)
from ordergraph.web.request_id import RequestIdMiddleware
from ordergraph.web.response_cache import ResponseCache
from ordergraph.web.webhooks import stripe_webhook

log = logging.getLogger(__name__)

STRIPE_JS_URL = "https://js.stripe.com/v3/"
STATIC_DIR = Path(__file__).parent / "static"


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


def payment_settings(settings: Settings) -> PaymentSettings:
    if settings.local_payments:
        api_base = settings.stripe_api_base or ""
        return PaymentSettings(provider="stripe", mode="local",
                               publishable_key=localstripe.PUBLISHABLE_KEY,
                               stripe_js_url=settings.stripe_js_url or
                               f"{api_base}/js.stripe.com/v3/",
                               webhook_secret=settings.stripe_webhook_secret)
    return PaymentSettings(provider="stripe", mode="stripe",
                           publishable_key=settings.stripe_publishable_key,
                           stripe_js_url=settings.stripe_js_url or STRIPE_JS_URL,
                           webhook_secret=settings.stripe_webhook_secret)


def build_gateway(settings: Settings, installation: str | None) -> StripeGateway:
    if settings.local_payments and not settings.stripe_api_base:
        log.warning("no STRIPE_SECRET_KEY and no STRIPE_API_BASE: payments cannot work; "
                    "`ordergraph serve` starts the local Stripe emulator for you")
    key = settings.stripe_secret_key or localstripe.SECRET_KEY
    return StripeGateway(key, installation_id=installation, api_base=settings.stripe_api_base)


async def load_installation_id(settings: Settings, engine: AsyncEngine) -> str:
    return settings.installation_id or await installation_id(engine)


async def _installation_or_none(settings: Settings, engine: AsyncEngine) -> str | None:
    """The id, or None while the database cannot be reached (the app still starts)."""
    try:
        return await load_installation_id(settings, engine)
    except Exception as error:  # any database failure: learn it later
        log.warning("installation id not readable yet (%s); payments wait for it", error)
        return None


async def _learn_installation_id(settings: Settings, engine: AsyncEngine,
                                 services: Services) -> None:
    """Started without the database: read the id once it answers, then hand it out."""
    while services.installation_id is None:
        await asyncio.sleep(1.0)
        found = await _installation_or_none(settings, engine)
        if found is not None:
            services.installation_id = found
            if isinstance(services.gateway, StripeGateway):
                services.gateway.installation_id = found


def build_rate_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis when the instances share Redis; per process otherwise."""
    throttles = throttles_from(settings)
    if urlparse(settings.broadcast_url).scheme in ("redis", "rediss"):
        return RedisRateLimiter(settings.broadcast_url, throttles=throttles,
                                prefix=f"{settings.broadcast_prefix}ratelimit:")
    return MemoryRateLimiter(throttles)


def build_services(settings: Settings, engine: AsyncEngine, hub: LiveHub,
                   overrides: Overrides, *, installation: str | None) -> Services:
    clock = overrides.clock or SystemClock()
    reader = SqlReadStore(engine)
    gateway = overrides.gateway or build_gateway(settings, installation)
    if isinstance(gateway, StripeGateway):  # a test's own: it works for this installation too
        gateway.installation_id = installation
    publisher = BroadcastPublisher(hub, prefix=settings.broadcast_prefix)
    return Services(
        uow=lambda: SqlAlchemyUnitOfWork(engine, publisher),
        reader=reader,
        gateway=gateway,
        installation_id=installation,
        clock=clock,
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
        live=hub,
        metrics=PrometheusMetrics(),
        rate_limiter=overrides.rate_limiter or build_rate_limiter(settings),
        subscription_slots=overrides.subscription_slots or SubscriptionSlots(),
        extras=dict(overrides.extras),
    )


async def _start_local_mail(settings: Settings) -> MailSink | None:
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
async def _running(app: Starlette, settings: Settings, overrides: Overrides
                   ) -> AsyncIterator[None]:
    """Everything the app holds open: database pool, live hub, clients, the sweeper."""
    engine = create_engine(settings.database_url,
                           isolation_level=settings.database_isolation_level,
                           pool_size=settings.database_pool_size)
    tracing = app.state.tracing
    if tracing is not None:
        tracing.instrument_engine(engine)
    PrometheusMetrics().watch_pool(engine.pool)
    hub = LiveHub(settings.broadcast_url, prefix=settings.broadcast_prefix)
    await hub.start()
    installation = await _installation_or_none(settings, engine)
    services = build_services(settings, engine, hub, overrides, installation=installation)
    if tracing is not None and getattr(services.gateway, "http_client", None) is not None:
        tracing.instrument_http_client(services.gateway.http_client)  # type: ignore[attr-defined]
    sink = await _start_local_mail(settings) if settings.local_mail else None
    mail_url = sink.url if sink is not None else settings.smtp_url
    if sink is not None:
        services.local_mailbox = sink
    if mail_url is not None:
        services.mailer = SmtpMailer(mail_url, sender=settings.mail_from,
                                     public_url=settings.links_base)
    learning = None if installation is not None else \
        asyncio.create_task(_learn_installation_id(settings, engine, services))
    # Role changes from every instance: live subscribers' rights are re-checked on the next
    # event (a demoted admin stops seeing everyone's orders at once).
    hub.on_event("users", lambda change: services.role_changes.heard(int(change["user_id"])))
    PrometheusMetrics().watch_subscriptions(lambda: hub.subscriber_count)
    # Anonymous catalog reads are answered from memory until a stock or product change.
    app.state.response_cache = ResponseCache()
    hub.on_change({"stock", "products"}, app.state.response_cache.invalidate)
    app.state.engine, app.state.hub, app.state.services = engine, hub, services
    stop_metrics = None if settings.metrics_port is None else \
        serve_metrics(settings.host, settings.metrics_port, settings.metrics_token)
    run_mail = overrides.run_sweeper if overrides.run_mail_sender is None \
        else overrides.run_mail_sender
    try:
        async with background(services, settings.sweep_interval,
                              sweeper=overrides.run_sweeper, mail=run_mail):
            yield
    finally:
        # In-flight requests have finished (uvicorn waits for them); close what we opened.
        if learning is not None:
            learning.cancel()
        await hub.stop()
        if sink is not None:
            await sink.stop()
        for closeable in (services.gateway, services.rate_limiter):
            close = getattr(closeable, "aclose", None)
            if close is not None:
                await close()
        await engine.dispose()
        if stop_metrics is not None:
            stop_metrics()
        if tracing is not None:
            tracing.shutdown()


class WebClientFiles(StaticFiles):
    """The web client's files, revalidated on every load (ETag), so a deploy is never half
    seen: ES modules are fetched separately and must all come from the same release."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "no-cache"
        return response


async def healthz(request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready for traffic: the database answers and the live hub runs.

    A live hub that is reconnecting (Redis down) is "degraded", not unready: checkouts,
    payments and logins go on without Redis, and every instance shares the one Redis, so
    answering 503 would take the whole fleet out of the load balancer at once for an outage
    that only pauses live updates. The details say what is wrong."""
    checks = {"database": "up", "broadcast": "up"}
    try:
        await request.app.state.services.reader.ping()
    except Exception as error:
        log.warning("not ready: database: %s", error)
        checks["database"] = "down"
    hub = request.app.state.hub.status()
    checks["broadcast"] = hub["state"]
    ready = "down" not in checks.values()
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", **checks}
    if hub["state"] != "up":
        body["details"] = {"broadcast": hub}
        if ready:
            body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text; with METRICS_TOKEN only for `Authorization: Bearer <token>`."""
    if not authorized(request.headers.get("authorization"),
                      request.app.state.settings.metrics_token):
        return Response("unauthorized\n", status_code=401,
                        headers={"www-authenticate": "Bearer"})
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def create_app(settings: Settings | None = None, overrides: Overrides | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with _running(app, settings, overrides):
            yield

    tracing = build_tracing(endpoint=settings.otel_endpoint, service_version=__version__,
                            exporter=overrides.span_exporter)
    PrometheusMetrics().build(version=__version__, commit=settings.build_commit)
    schema = build_schema(introspection=settings.introspection,
                          tracing=tracing.schema_extension() if tracing else None)
    graphql = GraphQLApp(schema, graphiql=settings.graphiql,
                         allowed_origins=tuple(settings.cors_origins))
    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        # With METRICS_PORT, /metrics is served there instead (adapters/metrics.py).
        *([] if settings.metrics_port else [Route("/metrics", metrics)]),
        # The web client: plain HTML, CSS and ES modules, a client of the public API only.
        Mount("/", WebClientFiles(directory=STATIC_DIR, html=True, check_dir=False),
              name="web-client"),
    ]
    payment = payment_settings(settings)
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=settings.is_production,
                   policy=web_client_policy(stripe_js_url=payment.stripe_js_url,
                                            real_stripe=payment.mode == "stripe"),
                   payment_origin=origin_of(payment.stripe_js_url)),
        Middleware(AccessLogMiddleware, record=PrometheusMetrics().http),
        Middleware(BodyLimitMiddleware),
    ]
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"]))
    if tracing is not None:  # outermost: the HTTP span holds everything else
        middleware_class, options = tracing.asgi_middleware()
        middleware.insert(0, Middleware(middleware_class, **options))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings, app.state.tracing = settings, tracing
    return app


def tune_gc() -> None:
    """Fewer, cheaper cyclic collections for a long-running server process.

    What exists at startup (modules, the schema) leaves the collector's generations, and a
    collection waits for 10,000 new container objects instead of 700: one live event fanned
    out to 1,000 subscribers allocates a few hundred thousand objects, and at the default
    threshold the collector kept re-traversing every open subscription (half the fan-out's
    CPU, bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)


def serve_app() -> Starlette:
    """The factory `ordergraph serve` gives uvicorn: settings and logging from the
    environment (each worker process calls it)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    app = create_app(settings)
    tune_gc()
    return app

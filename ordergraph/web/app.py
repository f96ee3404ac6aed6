"""The app factory: the composition root. Engines and clients are built in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcaster import Broadcast
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from ordergraph.adapters import localstripe
from ordergraph.adapters.broadcast import create_broadcast
from ordergraph.adapters.clock import SystemClock
from ordergraph.adapters.live import LiveHub
from ordergraph.adapters.passwords import Argon2PasswordHasher
from ordergraph.adapters.publisher import BroadcastPublisher
from ordergraph.adapters.stripe_gateway import StripeGateway
from ordergraph.adapters.tokens import JwtTokenIssuer
from ordergraph.db.engine import create_engine
from ordergraph.db.readstore import SqlReadStore
from ordergraph.db.uow import SqlAlchemyUnitOfWork
from ordergraph.domain.ports import Clock, PasswordHasher, PaymentGateway
from ordergraph.resolvers.context import PaymentSettings, Services
from ordergraph.schema.schema import build_schema
from ordergraph.settings import Settings
from ordergraph.web.background import background
from ordergraph.web.graphql import GraphQLApp
from ordergraph.web.loaders import make_loaders
from ordergraph.web.request_id import RequestIdMiddleware
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
    run_sweeper: bool = True
    extras: dict[str, Any] = field(default_factory=dict)


def payment_settings(settings: Settings) -> PaymentSettings:
    if settings.local_payments:
        api_base = settings.stripe_api_base or ""
        return PaymentSettings(provider="stripe", mode="local",
                               publishable_key=localstripe.PUBLISHABLE_KEY,
                               stripe_js_url=f"{api_base}/js.stripe.com/v3/",
                               webhook_secret=settings.stripe_webhook_secret)
    return PaymentSettings(provider="stripe", mode="stripe",
                           publishable_key=settings.stripe_publishable_key,
                           stripe_js_url=STRIPE_JS_URL,
                           webhook_secret=settings.stripe_webhook_secret)


def build_gateway(settings: Settings) -> PaymentGateway:
    if settings.local_payments and not settings.stripe_api_base:
        log.warning("no STRIPE_SECRET_KEY and no STRIPE_API_BASE: payments cannot work; "
                    "`ordergraph serve` starts the local Stripe emulator for you")
    key = settings.stripe_secret_key or localstripe.SECRET_KEY
    return StripeGateway(key, api_base=settings.stripe_api_base)


def build_services(settings: Settings, engine: AsyncEngine, broadcast: Broadcast,
                   hub: LiveHub, overrides: Overrides) -> Services:
    clock = overrides.clock or SystemClock()
    reader = SqlReadStore(engine)
    publisher = BroadcastPublisher(broadcast, prefix=settings.broadcast_prefix)
    return Services(
        uow=lambda: SqlAlchemyUnitOfWork(engine, publisher),
        reader=reader,
        gateway=overrides.gateway or build_gateway(settings),
        clock=clock,
        passwords=overrides.passwords or Argon2PasswordHasher(),
        # Tokens live on real time even when tests move the services' clock.
        tokens=JwtTokenIssuer(settings.jwt_secret, lifetime=settings.jwt_expiration,
                              clock=SystemClock()),
        reservation_ttl=settings.reservation_ttl,
        currency=settings.currency,
        payment=payment_settings(settings),
        make_loaders=lambda: make_loaders(reader),
        live=hub,
        extras=dict(overrides.extras),
    )


def create_app(settings: Settings | None = None, overrides: Overrides | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    overrides = overrides or Overrides()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url,
                               isolation_level=settings.database_isolation_level,
                               pool_size=settings.database_pool_size)
        broadcast = create_broadcast(settings.broadcast_url)
        await broadcast.connect()
        hub = LiveHub(broadcast, prefix=settings.broadcast_prefix)
        await hub.start()
        app.state.engine = engine
        app.state.broadcast = broadcast
        app.state.hub = hub
        app.state.services = build_services(settings, engine, broadcast, hub, overrides)
        try:
            if overrides.run_sweeper:
                async with background(app.state.services, settings.sweep_interval):
                    yield
            else:
                yield
        finally:
            close_gateway = getattr(app.state.services.gateway, "aclose", None)
            if close_gateway is not None:
                await close_gateway()
            await hub.stop()
            await broadcast.disconnect()
            await engine.dispose()

    schema = build_schema(introspection=settings.introspection)
    graphql = GraphQLApp(schema, graphiql=settings.graphiql,
                         allowed_origins=tuple(settings.cors_origins))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        try:
            await request.app.state.services.reader.ping()
        except Exception as error:
            log.warning("not ready: %s", error)
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        # The web client: plain HTML, CSS and ES modules, a client of the public API only.
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False),
              name="web-client"),
    ]
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    return app

"""The app factory: routes and middleware over the adapters ordergraph/wiring.py builds (in
the lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from ordergraph import __version__
from ordergraph.adapters.logs import configure_logging
from ordergraph.adapters.metrics import (
    authorized,
    exposition,
    serve_metrics,
    watch_collector_pauses,
)
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
from ordergraph.wiring import (
    Overrides,
    build_deps,
    build_metrics,
    build_tracing,
    open_adapters,
)
from ordergraph.wiring_payments import learn_installation_id, payment_settings

__all__ = ["Overrides", "create_app", "serve_app"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


@contextlib.asynccontextmanager
async def _running(app: Starlette, settings: Settings, overrides: Overrides
                   ) -> AsyncIterator[None]:
    """Everything the app holds open: the adapters (ordergraph/wiring.py), the sweeper and
    the mail sender."""
    tracing = app.state.tracing
    async with open_adapters(settings, overrides, server=True, metrics=app.state.metrics,
                             tracing=tracing) as adapters:
        deps = build_deps(settings, adapters, overrides, make_loaders=make_loaders)
        learning = None if adapters.installation_id is not None else \
            asyncio.create_task(learn_installation_id(settings, adapters, deps))
        # Role changes from every instance: live subscribers' rights are re-checked on the
        # next event (a demoted admin stops seeing everyone's orders at once).
        assert adapters.hub is not None
        adapters.hub.on_event("users",
                              lambda change: deps.role_changes.heard(int(change["user_id"])))
        # Anonymous catalog reads are answered from memory until a stock or product change.
        hub = adapters.hub
        app.state.response_cache = ResponseCache(
            hearing=lambda: hub.reconnects if hub.healthy else None)
        hub.on_change({"stock", "products"}, app.state.response_cache.invalidate)
        app.state.engine, app.state.hub, app.state.deps = \
            adapters.engine, adapters.hub, deps
        stop_metrics = None if settings.metrics_port is None else \
            serve_metrics(settings.host, settings.metrics_port, settings.metrics_token)
        run_mail = overrides.run_sweeper if overrides.run_mail_sender is None \
            else overrides.run_mail_sender
        try:
            async with background(deps, settings.sweep_interval,
                                  sweeper=overrides.run_sweeper, mail=run_mail):
                yield
        finally:
            # In-flight requests have finished (uvicorn waits for them); the adapters close
            # as open_adapters exits.
            if learning is not None:
                learning.cancel()
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
        await request.app.state.deps.reader.ping()
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

    tracing = build_tracing(settings, overrides)
    meter = build_metrics()
    meter.build(version=__version__, commit=settings.build_commit)
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
        Middleware(AccessLogMiddleware, record=meter.http),
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
    app.state.settings, app.state.tracing, app.state.metrics = settings, tracing, meter
    return app


# The cyclic collector's thresholds for a server process (gc.set_threshold): see tune_gc.
GC_THRESHOLDS = (10_000, 5, 10_000)


def tune_gc() -> None:
    """Fewer, cheaper and shorter cyclic collections for a long-running server process.

    What exists at startup (modules, the schema) leaves the collector's generations, and a
    collection waits for 10,000 new container objects instead of 700: one live event fanned
    out to 1,000 subscribers allocates a few hundred thousand objects, and at the default
    threshold the collector kept re-traversing every open subscription (half the fan-out's
    CPU, bench/RESULTS.md). The middle generation is collected every 5 young collections:
    it holds what a crowd of watchers arriving at once is made of (~360 objects each) until
    then, and every 50 (as before) meant one 180 ms stop of the event loop, every checkout
    in flight with it, right as a flash sale started (bench/RESULTS.md). A full collection
    still comes as rarely as before: after 50,000 young ones. How long each collection
    stops the loop: `ordergraph_gc_pause_seconds`.
    """
    watch_collector_pauses()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve_app() -> Starlette:
    """The factory `ordergraph serve` gives uvicorn: settings and logging from the
    environment (each worker process calls it)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    app = create_app(settings)
    tune_gc()
    return app

"""OpenTelemetry tracing, from the optional `otel` extra; off unless OTEL_EXPORTER_OTLP_ENDPOINT
is set (README "Operating it").

One tracer provider per app, handed to each instrumentation explicitly (never the global one,
so an app and its tests own their spans): the ASGI middleware opens the HTTP server span,
Strawberry's extension the GraphQL operation and resolver spans, the SQLAlchemy engine tracer
one span per statement, and the Stripe client's httpx transport one span per provider call.
Nothing here is imported unless tracing is on: production without the extra never needs it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ordergraph.db.driver import trace_statements

log = logging.getLogger(__name__)

# Probes and scrapes would be most of the traces and say nothing.
EXCLUDED_PATHS = "healthz,readyz,metrics"


class TracingUnavailable(RuntimeError):
    """OTEL_EXPORTER_OTLP_ENDPOINT is set but the `otel` extra is not installed."""


class Tracing:
    """The app's tracer provider and what instruments each layer with it."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def asgi_middleware(self) -> tuple[type, dict[str, Any]]:
        """The outermost ASGI middleware (class, options): the HTTP server span."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.metrics import NoOpMeterProvider

        return OpenTelemetryMiddleware, {
            "tracer_provider": self.provider, "meter_provider": NoOpMeterProvider(),
            "excluded_urls": EXCLUDED_PATHS, "exclude_spans": ["receive", "send"]}

    def schema_extension(self) -> Callable[[], Any]:
        """A factory for Strawberry's extension (one instance per operation)."""
        from strawberry.extensions.tracing import OpenTelemetryExtension

        return lambda: OpenTelemetryExtension(tracer_provider=self.provider)

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """One span per SQL statement on this engine (and on no other): SQLAlchemy's, and
        those db/driver.py sends to psycopg itself, named and labelled alike."""
        from opentelemetry.instrumentation.sqlalchemy import __version__
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import SpanKind, get_tracer

        tracer = get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__,
                            self.provider)
        usage = NoOpMeterProvider().get_meter("ordergraph").create_up_down_counter("unused")
        EngineTracer(tracer, engine.sync_engine, usage)
        database = engine.url.database or ""

        def statement_span(sql: str) -> Any:
            return tracer.start_as_current_span(
                f"{sql.split(None, 1)[0]} {database}".strip(), kind=SpanKind.CLIENT,
                attributes={"db.system": engine.dialect.name, "db.name": database,
                            "db.statement": sql})

        trace_statements(engine, statement_span)

    def instrument_http_client(self, client: Any) -> None:
        """One client span per request on this httpx client (the Stripe SDK's)."""
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider,
                                                  meter_provider=NoOpMeterProvider())

    def shutdown(self) -> None:
        """Send what is still buffered (app shutdown)."""
        self.provider.shutdown()


def build_tracing(*, endpoint: str | None, service_version: str,
                  exporter: Any = None) -> Tracing | None:
    """Tracing to the OTLP/HTTP `endpoint` (spans batched), or to `exporter` (a test's
    in-memory one, spans sent as they end); None when neither is given."""
    if endpoint is None and exporter is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as error:
        raise TracingUnavailable(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: install "
            "the otel extra (uv sync --extra otel, or pip install 'ordergraph[otel]')"
        ) from error
    # OTEL_RESOURCE_ATTRIBUTES is read too; OTEL_SERVICE_NAME renames the service.
    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "ordergraph",
         "service.version": service_version}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The variable names the collector's base URL; traces go to its /v1/traces.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=f"{(endpoint or '').rstrip('/')}/v1/traces")))
        log.info("tracing: OpenTelemetry spans to %s", endpoint)
    return Tracing(provider)

"""OpenTelemetry tracing (the `otel` extra): a checkout over HTTP is one trace, HTTP ->
GraphQL -> SQL and -> Stripe, seen through an in-memory exporter; without
OTEL_EXPORTER_OTLP_ENDPOINT nothing is traced and nothing of OpenTelemetry is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.web.app import Overrides
from tests.support import running_api, settings_for


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names, parent = [], span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


async def test_a_checkout_is_one_trace_http_graphql_sql_stripe(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    exporter = InMemorySpanExporter()
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(run_sweeper=False, span_exporter=exporter)) \
            as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="traced", stock=3)
        customer = await api.register("traced@example.com")
        exporter.clear()
        result = await api.checkout(customer, [(product, 1)])
        assert result["__typename"] == "CheckoutPayload", result

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    (http,) = [s for s in spans if s.kind == SpanKind.SERVER and s.parent is None]
    assert http.name == "POST /graphql"
    assert {span.context.trace_id for span in spans} == {http.context.trace_id}

    (operation,) = [s for s in spans if s.name == "GraphQL Query: Checkout"]
    assert operation.parent is not None
    assert operation.parent.span_id == http.context.span_id
    (resolver,) = [s for s in spans if s.name == "GraphQL Resolving: checkout"]
    assert ancestors(resolver, by_id)[:1] == ["GraphQL Query: Checkout"]

    sql = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"
           or (s.attributes or {}).get("db.system.name") == "postgresql"]
    # A span is named by its statement's first keyword, and the checkout's writes start
    # with WITH (one statement inserts the order and its lines); the text says what it does.
    statements = " ".join(str((s.attributes or {}).get("db.statement", s.name)) for s in sql)
    assert "INSERT INTO orders" in statements, statements
    assert "INSERT INTO audit_log" in statements, statements
    assert "SELECT" in statements, statements
    for span in sql:
        assert ancestors(span, by_id)[-3:] == [
            "GraphQL Resolving: checkout", "GraphQL Query: Checkout", "POST /graphql"], span.name

    stripe = [s for s in spans if s.kind == SpanKind.CLIENT and "payment_intents" in str(
        (s.attributes or {}).get("url.full") or (s.attributes or {}).get("http.url"))]
    assert stripe, [s.name for s in spans]
    assert stripe[0].name == "POST"
    assert ancestors(stripe[0], by_id)[-3:] == [
        "GraphQL Resolving: checkout", "GraphQL Query: Checkout", "POST /graphql"]


async def test_tracing_is_off_by_default(pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    assert settings.otel_endpoint is None
    async with running_api(settings) as api:
        assert api.app.state.tracing is None
        assert (await api.post("{ __typename }")).status_code == 200


BLOCK_OPENTELEMETRY = textwrap.dedent("""
    import importlib.abc, sys

    class NoOpenTelemetry(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "opentelemetry" or name == "strawberry.extensions.tracing":
                raise ImportError(f"{name} is not installed")
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())
""")


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-c", BLOCK_OPENTELEMETRY + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def test_without_the_extra_the_app_runs_untraced() -> None:
    result = python("""
        from ordergraph.cli import build_parser
        from ordergraph.settings import Settings
        from ordergraph.web.app import create_app
        app = create_app(Settings(environment="test"))
        assert app.state.tracing is None
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        print("untraced")
    """)
    assert (result.returncode, result.stdout) == (0, "untraced\n"), result.stderr


def test_an_endpoint_without_the_extra_is_refused_with_one_line() -> None:
    result = python("""
        from ordergraph.adapters.tracing import TracingUnavailable
        from ordergraph.settings import Settings
        from ordergraph.web.app import create_app
        try:
            create_app(Settings(environment="test", otel_endpoint="http://127.0.0.1:4318"))
        except TracingUnavailable as error:
            print(error)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is "
                                    "not installed"), result.stdout


def test_serve_without_the_extra_refuses_an_endpoint_in_one_line() -> None:
    result = python("""
        from ordergraph.cli import main
        sys.exit(main(["sweep"]))
    """, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
              "DATABASE_URL": "sqlite+aiosqlite:///unused.db"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "ordergraph: configuration error: OTEL_EXPORTER_OTLP_ENDPOINT is set but "
        "OpenTelemetry is not installed: install the otel extra (ordergraph[otel])"]

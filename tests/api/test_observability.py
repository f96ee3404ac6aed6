"""What an operator scrapes and reads: latency histograms per route, GraphQL operation and
Stripe method, provider errors by kind, pool gauges, process and GC collectors, build info;
/metrics behind METRICS_TOKEN or on METRICS_PORT; the request id on every log line."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ordergraph import __version__
from ordergraph.adapters.metrics import watch_collector_pauses
from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from tests.api.test_cli import ORDERGRAPH, _wait_for, run
from tests.support import (
    CARD_DECLINED,
    PAY,
    TEST_JWT_SECRET,
    TEST_WEBHOOK_SECRET,
    Api,
    Customer,
    running_api,
    settings_for,
)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when it is not there yet)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


async def scrape(api: Api, **headers: str) -> str:
    response = await api.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


async def test_latency_histograms_provider_errors_and_pool(
        pg_url: str, stripe_emulator: LocalStripe, customer_side: Customer) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            database_pool_size=3, build_commit="0123abc")
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="observed", stock=5)
        customer = await api.register("observed@example.com")
        before = await scrape(api)
        order = (await api.checkout(customer, [(product, 1)]))["order"]
        declined = (await api.gql(PAY, {"id": order["id"],
                                        "pm": await customer_side.card(CARD_DECLINED)},
                                  token=customer))["payOrder"]
        assert declined["code"] == "PAYMENT_DECLINED"
        await api.post("query Storefront { products { totalCount } }")
        after = await scrape(api)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("ordergraph_http_request_duration_seconds_count", route="/graphql") == 3
    assert grew("ordergraph_graphql_request_duration_seconds_count", operation="Checkout") == 1
    assert grew("ordergraph_graphql_request_duration_seconds_count",
                operation="Storefront") == 1
    assert grew("ordergraph_stripe_request_duration_seconds_count", method="create_intent") == 1
    assert grew("ordergraph_stripe_request_duration_seconds_count",
                method="confirm_intent") == 1
    assert grew("ordergraph_stripe_errors_total", method="confirm_intent", kind="declined") == 1
    assert grew("ordergraph_stripe_errors_total", method="create_intent",
                kind="provider_error") == 0
    # The seconds are real: a checkout's provider call takes some time.
    assert grew("ordergraph_stripe_request_duration_seconds_sum", method="create_intent") > 0

    assert sample(after, "ordergraph_db_pool_size") == 3
    assert sample(after, "ordergraph_db_pool_max_connections") == 6
    assert sample(after, "ordergraph_db_pool_connections_in_use") == 0  # between requests
    assert sample(after, "ordergraph_build_info", version=__version__, commit="0123abc") == 1
    assert sample(after, "process_resident_memory_bytes") > 0
    assert sample(after, "process_cpu_seconds_total") > 0
    assert "python_gc_collections_total" in after
    assert sample(after, "python_info", implementation="CPython") == 1


async def test_each_collection_is_timed_by_generation(api: Api) -> None:
    watch_collector_pauses()  # as every server process does (web/app.py: tune_gc)
    watch_collector_pauses()  # once, however often asked
    before = await scrape(api)

    gc.collect(1)

    after = await scrape(api)
    grown = sample(after, "ordergraph_gc_pause_seconds_count", generation="1") - \
        sample(before, "ordergraph_gc_pause_seconds_count", generation="1")
    assert grown >= 1  # ours (and any the scrape itself set off)
    assert sample(after, "ordergraph_gc_pause_seconds_sum", generation="1") > 0


async def test_a_pool_connection_in_use_is_counted(api: Api) -> None:
    engine = api.app.state.engine
    async with engine.connect():
        text = await scrape(api)
    assert sample(text, "ordergraph_db_pool_connections_in_use") >= 1


async def test_metrics_token_asks_for_the_bearer(pg_url: str,
                                                 stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            metrics_token="scrape-me-0123456789")
    async with running_api(settings) as api:
        refused = await api.client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await api.client.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        text = await scrape(api, authorization="Bearer scrape-me-0123456789")
        assert "ordergraph_http_requests_total" in text


def test_metrics_port_and_token_from_the_environment(tmp_path: Path,
                                                     stripe_emulator: LocalStripe) -> None:
    """`ordergraph serve` with METRICS_PORT: /metrics moves there, the token guards it; with
    LOG_FORMAT=json every line logged in a request carries its request id."""
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/shop.db",
           "STRIPE_SECRET_KEY": "sk_test_observed", "STRIPE_API_BASE": stripe_emulator.api_base,
           "STRIPE_WEBHOOK_SECRET": TEST_WEBHOOK_SECRET, "JWT_SECRET": TEST_JWT_SECRET,
           "BROADCAST_URL": "", "LOG_FORMAT": "json", "METRICS_PORT": str(free_port()),
           "METRICS_TOKEN": "scrape-me-0123456789", "GIT_COMMIT": "feedbee"}
    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    port = free_port()
    with subprocess.Popen([*ORDERGRAPH, "serve", "--port", str(port)],
                          env={**os.environ, **env}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as server:
        try:
            _wait_for(f"http://127.0.0.1:{port}/healthz", server)
            assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
            metrics_url = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
            assert httpx.get(metrics_url).status_code == 401
            scraped = httpx.get(metrics_url,
                                headers={"authorization": "Bearer scrape-me-0123456789"})
            assert scraped.status_code == 200
            assert 'ordergraph_build_info{commit="feedbee"' in scraped.text
            # The server's collector settings, and the full collection it starts with, timed.
            assert sample(scraped.text, "ordergraph_gc_pause_seconds_count",
                          generation="2") >= 1
            # A webhook with a bad signature: a warning inside the request, then the access line.
            refused = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=b"{}",
                                 headers={"stripe-signature": "t=1,v1=forged",
                                          "x-request-id": "req-forged-hook"})
            assert refused.status_code == 400
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
        lines = [json.loads(line) for line in (server.stderr.read() if server.stderr
                                               else "").splitlines() if line.startswith("{")]
    of_request = [line for line in lines if line.get("request_id") == "req-forged-hook"]
    assert [line["logger"] for line in of_request] == ["ordergraph.web.webhooks",
                                                        "ordergraph.access"], lines
    assert of_request[0]["message"].startswith("refused a webhook")
    # Lines outside any request carry none.
    assert any(line["logger"] == "uvicorn.error" and "request_id" not in line
               for line in lines), lines


def test_text_logs_name_the_request(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from ordergraph.adapters.logs import RequestIdFilter, TextFormatter, request_id_var

    record = logging.LogRecord("ordergraph.x", logging.WARNING, __file__, 1, "hello", (), None)
    token = request_id_var.set("abc123")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert "ordergraph.x [abc123]: hello" in TextFormatter().format(record)


def test_a_metrics_port_needs_one_worker(tmp_path: Path) -> None:
    from ordergraph.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="METRICS_PORT needs WEB_CONCURRENCY=1"):
        Settings.from_env({"METRICS_PORT": "9100", "WEB_CONCURRENCY": "2"}, dotenv_path=None)
    result = run(["serve", "--workers", "2"], {"METRICS_PORT": "9100"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "ordergraph: configuration error: METRICS_PORT needs one worker: workers cannot share "
        "one metrics port (run one worker per container)"]

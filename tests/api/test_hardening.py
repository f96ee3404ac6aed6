"""Abuse limits and operations, through HTTP against the app."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from ordergraph.adapters.ratelimit import MemoryRateLimiter, RedisRateLimiter
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.web.app import Overrides
from tests.support import (
    CHECKOUT,
    CREATE_PRODUCT,
    LOGIN,
    ORDER,
    REGISTER,
    Api,
    running_api,
    settings_for,
)

PRODUCT_FIELDS = ("id sku name description active createdAt updatedAt price { amount currency "
                  "formatted } stock { productId available reserved updatedAt }")


def codes(body: dict) -> list[str]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


# ---- query limits --------------------------------------------------------------------------

async def test_deep_queries_are_refused(api: Api) -> None:
    deep = "{ " + " { ".join(f"f{i}" for i in range(15)) + " }" * 15
    body = await api.raw(deep)
    assert "QUERY_TOO_COMPLEX" in codes(body)
    assert any("levels deep" in error["message"] for error in body["errors"])


async def test_too_many_aliases_are_refused(api: Api) -> None:
    aliased = "{ " + " ".join(f"a{i}: products(first: 1) {{ totalCount }}"
                              for i in range(16)) + " }"
    body = await api.raw(aliased)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "16 aliases" in body["errors"][0]["message"]
    fine = "{ " + " ".join(f"a{i}: products(first: 1) {{ totalCount }}"
                           for i in range(5)) + " }"
    assert "errors" not in await api.raw(fine)


async def test_costly_queries_count_page_sizes(api: Api) -> None:
    page = f"products(first: 100) {{ edges {{ node {{ {PRODUCT_FIELDS} }} }} }}"
    costly = "{ " + " ".join(f"p{i}: {page}" for i in range(4)) + " }"
    body = await api.raw(costly)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "would cost" in body["errors"][0]["message"]
    # One such page is fine; and a variable page size is costed at the cap.
    assert "errors" not in await api.raw("{ " + page + " }")


async def test_huge_documents_are_refused_by_token_count(api: Api) -> None:
    body = await api.raw("{ " + "__typename " * 2100 + "}")
    assert body["errors"]
    assert "tokens" in body["errors"][0]["message"]


async def test_cyclic_and_unknown_fragments_are_refused(api: Api) -> None:
    cyclic = await api.raw("{ products { ...A } } fragment A on ProductConnection { ...B } "
                           "fragment B on ProductConnection { ...A }")
    assert any("cannot spread fragment" in e["message"].lower() for e in cyclic["errors"])
    unknown = await api.raw("{ products { ...Missing } }")
    assert any("Unknown fragment" in e["message"] for e in unknown["errors"])


async def test_refusals_are_graphql_errors_not_500s(api: Api) -> None:
    for query in ["{", "{ nope }", "query { products(first: \"x\") { totalCount } }",
                  "{ " + "__typename " * 2100 + "}"]:
        response = await api.post(query)
        assert response.status_code in (200, 400), (query, response.status_code)
        assert response.json()["errors"]


async def test_everyday_queries_stay_inside_the_limits(api: Api, admin: str) -> None:
    """What the clients actually send (tests' documents here; the web client's module in
    tests/e2e) passes the limits with room to spare."""
    from graphql import parse

    from ordergraph.schema.limits import QueryLimits, _Measure

    documents = [REGISTER, LOGIN, CREATE_PRODUCT, CHECKOUT, ORDER,
                 "query { orders(first: 100) { edges { node { id status total { formatted } "
                 "customer { email } items { quantity product { name sku } } "
                 "history { action at actorKind actor { email } } } } } }",
                 "query { products(first: 100) { edges { node { " + PRODUCT_FIELDS + " } } } }"]
    limits = QueryLimits()
    for document in documents:
        assert "QUERY_TOO_COMPLEX" not in codes(await api.raw(document, {}, token=admin))
        operation = parse(document).definitions[0]
        measure = _Measure(None)  # type: ignore[arg-type]
        depth, cost = measure.selection_set(operation.selection_set, depth=0, stack=())
        assert depth <= limits.max_depth // 2 + 2
        assert cost <= limits.max_cost // 2


# ---- request bodies ------------------------------------------------------------------------

async def test_big_bodies_get_413_without_being_read_whole(api: Api) -> None:
    big = b'{"query": "' + b" " * (1024 * 1024) + b'{ __typename }"}'
    declared = await api.client.post("/graphql", content=big,
                                     headers={"content-type": "application/json"})
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # no Content-Length: counted as it arrives

    streamed = await api.client.post("/graphql", content=chunks(),
                                     headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_malformed_json_gets_400(api: Api) -> None:
    response = await api.client.post("/graphql", content=b'{"query": ',
                                     headers={"content-type": "application/json"})
    assert response.status_code == 400


# ---- throttling ----------------------------------------------------------------------------

class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def throttled(pg_url: str, stripe_emulator: LocalStripe,
                    fake_time: FakeTime) -> AsyncIterator[Api]:
    limiter = MemoryRateLimiter(clock=fake_time)
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(rate_limiter=limiter, run_sweeper=False)) as api:
        yield api


async def login(api: Api, email: str, password: str) -> dict:
    return (await api.gql(LOGIN, {"email": email, "password": password}))["login"]


async def test_failed_logins_are_throttled_with_a_growing_window(throttled: Api,
                                                                 fake_time: FakeTime) -> None:
    api = throttled
    await api.register("target@example.com", "correct-password")
    for _ in range(5):
        assert (await login(api, "target@example.com", "wrong"))["code"] == \
            "INVALID_CREDENTIALS"
    sixth = await login(api, "target@example.com", "wrong")
    assert sixth["code"] == "INVALID_CREDENTIALS"  # the sixth failure starts a block
    blocked = await login(api, "target@example.com", "correct-password")
    assert (blocked["__typename"], blocked["code"]) == ("RateLimitedError", "RATE_LIMITED")
    assert blocked["retryAfterSeconds"] == 2

    fake_time.now += 3
    assert (await login(api, "TARGET@example.com", "wrong"))["code"] == "INVALID_CREDENTIALS"
    assert (await login(api, "target@example.com", "x"))["retryAfterSeconds"] == 4  # doubled

    fake_time.now += 5
    assert (await login(api, "target@example.com", "correct-password"))["__typename"] == \
        "AuthPayload"
    # A success resets the count.
    assert (await login(api, "target@example.com", "wrong"))["code"] == "INVALID_CREDENTIALS"
    assert (await login(api, "target@example.com", "correct-password"))["__typename"] == \
        "AuthPayload"


async def test_one_address_guessing_many_emails_is_throttled(throttled: Api) -> None:
    api = throttled
    results = [await login(api, f"user{i}@example.com", "guess") for i in range(22)]
    assert [r["code"] for r in results[:21]] == ["INVALID_CREDENTIALS"] * 21
    assert results[21]["code"] == "RATE_LIMITED"


async def test_registrations_are_throttled_per_address(throttled: Api) -> None:
    api = throttled
    results = []
    for i in range(22):
        data = await api.gql(REGISTER, {"input": {"email": f"bot{i}@example.com",
                                                  "password": "password123"}})
        results.append(data["register"]["__typename"])
    assert results[:20] == ["AuthPayload"] * 20
    assert "RateLimitedError" in results[20:]


async def test_throttling_is_shared_by_instances_through_redis(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    import uuid

    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            broadcast_url="redis://127.0.0.1:6379", broadcast_prefix=prefix)
    async with running_api(settings) as first, running_api(settings) as second:
        assert isinstance(first.deps.rate_limiter, RedisRateLimiter)
        await first.register("shared@example.com", "correct-password")
        for instance in [first, second, first, second, first, second]:
            await login(instance, "shared@example.com", "wrong")
        assert (await login(second, "shared@example.com", "correct-password"))["code"] == \
            "RATE_LIMITED"
        assert (await login(first, "shared@example.com", "correct-password"))["code"] == \
            "RATE_LIMITED"


# ---- operations ----------------------------------------------------------------------------

async def test_metrics_in_prometheus_format(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="counted", stock=1)
    customer = await api.register("metered@example.com")
    await api.checkout(customer, [(product, 1)])
    await api.checkout(customer, [(product, 1)])  # sold out
    await api.post("query ShopFront { products { totalCount } }")
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for expected in ['ordergraph_checkouts_total{result="ok"}',
                     'ordergraph_checkouts_total{result="INSUFFICIENT_STOCK"}',
                     'ordergraph_graphql_requests_total{operation="ShopFront",outcome="ok"}',
                     "ordergraph_graphql_request_duration_seconds_bucket",
                     "ordergraph_transaction_retries_total", "ordergraph_live_subscriptions",
                     "ordergraph_webhook_events_total", "ordergraph_sweeper_runs_total",
                     'ordergraph_http_requests_total{route="/graphql",status="200"}']:
        assert expected in text, expected


async def test_one_log_line_per_request_with_its_request_id(
        api: Api, admin: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ordergraph.access")
    response = await api.post("query Catalog { products { totalCount } }", token=admin,
                              headers={"x-request-id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    (line,) = [r for r in caplog.records if r.name == "ordergraph.access"
               and getattr(r, "request_id", None) == "trace-123"]
    assert (line.operation, line.outcome, line.status) == ("Catalog", "ok", 200)  # type: ignore[attr-defined]
    assert line.user_id is not None  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]

    from ordergraph.adapters.logs import JsonFormatter

    rendered = json.loads(JsonFormatter().format(line))
    assert rendered["request_id"] == "trace-123"
    assert rendered["operation"] == "Catalog"


class BrokenHasher:
    async def hash(self, password: str) -> str:
        raise RuntimeError("the hashing service fell over")

    async def verify(self, password_hash: str, password: str) -> bool:
        raise RuntimeError("the hashing service fell over")

    def needs_rehash(self, password_hash: str) -> bool:
        return False


async def test_unexpected_errors_are_masked_with_the_request_id(
        pg_url: str, stripe_emulator: LocalStripe, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(passwords=BrokenHasher(),
                                               run_sweeper=False)) as api:
        response = await api.post(REGISTER, {"input": {"email": "x@example.com",
                                                       "password": "password123"}})
        request_id = response.headers["x-request-id"]
        error = response.json()["errors"][0]
        assert error["message"] == f"Unexpected error. Request id: {request_id}."
        assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR",
                                       "requestId": request_id}
        assert "fell over" not in response.text
        assert any(request_id in record.getMessage() and record.exc_info
                   for record in caplog.records)


async def test_unexpected_errors_are_masked_over_a_websocket_too(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    """A mutation sent over the WebSocket gets the same error policy as over HTTP: a bug's
    message stays in the log, the client gets INTERNAL_SERVER_ERROR with the request id."""
    from tests.support import live_server
    from tests.ws import GraphQLWebSocket, SubscriptionError

    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with live_server(settings, Overrides(passwords=BrokenHasher(),
                                               run_sweeper=False)) as (address, _):
        socket = await GraphQLWebSocket.open(address)
        try:
            operation = await socket.subscribe(REGISTER, {"input": {
                "email": "ws@example.com", "password": "password123"}})
            with pytest.raises(SubscriptionError) as refused:
                await socket.next(operation)
        finally:
            await socket.connection.close()

    error = refused.value.errors[0]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR", error
    assert error["message"].startswith("Unexpected error.")
    assert "fell over" not in json.dumps(refused.value.errors)


async def test_readiness_follows_the_live_hub(api: Api) -> None:
    assert (await api.client.get("/readyz")).json() == {"status": "ok", "database": "up",
                                                        "broadcast": "up"}
    await api.app.state.hub.stop()
    not_ready = await api.client.get("/readyz")
    assert (not_ready.status_code, not_ready.json()["broadcast"]) == (503, "down")
    assert (await api.client.get("/healthz")).status_code == 200


async def test_graphiql_and_introspection_can_be_turned_off(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base, graphiql=False,
                            introspection=False)
    async with running_api(settings) as api:
        ide = await api.client.get("/graphql", headers={"accept": "text/html"})
        assert ide.status_code == 404
        body = await api.raw("{ __schema { types { name } } }")
        assert body["errors"]
        assert "introspection" in body["errors"][0]["message"].lower()
        assert (await api.raw("{ products { totalCount } }"))["data"]
    async with running_api(settings_for(pg_url)) as api:
        ide = await api.client.get("/graphql", headers={"accept": "text/html"})
        assert ide.status_code == 200
        assert (await api.raw("{ __schema { queryType { name } } }"))["data"]


async def test_a_provider_crash_never_strands_reserved_stock(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    class CrashingGateway:
        provider = "stripe"

        async def create_intent(self, **kwargs: object) -> object:
            raise httpx.ReadTimeout("the provider hung up")

    async with running_api(settings_for(pg_url),
                           Overrides(gateway=CrashingGateway(),  # type: ignore[arg-type]
                                     run_sweeper=False)) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="fragile", stock=2)
        customer = await api.register("unlucky2@example.com")
        result = await api.checkout(customer, [(product, 2)])
        assert result["code"] == "PAYMENT_PROVIDER_ERROR"
        stock = await api.gql("query($id: ID!) { product(id: $id) { stock { available } } }",
                              {"id": product})
        assert stock["product"]["stock"]["available"] == 2


async def test_the_web_client_is_served_and_revalidated(api: Api) -> None:
    page = await api.client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert "<script" in page.text
    module = await api.client.get("/js/api.js")
    assert module.headers["cache-control"] == "no-cache"
    assert "javascript" in module.headers["content-type"]
    again = await api.client.get("/js/api.js", headers={"if-none-match": module.headers["etag"]})
    assert again.status_code == 304

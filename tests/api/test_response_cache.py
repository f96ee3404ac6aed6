"""The anonymous catalog's response cache (web/response_cache.py): ETag and 304, GraphQL over
GET, never stale after a stock or product change, never what someone signed in sees."""

from __future__ import annotations

import json

from ordergraph.web.response_cache import ResponseCache
from tests.support import ADJUST_STOCK, Api, Customer, execute

CATALOG = """
query Catalog($first: Int) {
  products(first: $first) {
    totalCount
    edges { node { id sku name price { amount } stock { productId available reserved } } }
  }
}"""
UPDATE_PRODUCT = """
mutation Update($id: ID!, $input: UpdateProductInput!) {
  updateProduct(id: $id, input: $input) { __typename }
}"""


def _stock(body: dict) -> dict[str, dict]:
    return {edge["node"]["sku"]: edge["node"]["stock"]
            for edge in body["data"]["products"]["edges"]}


async def _get(api: Api, query: str, variables: dict | None = None,
               headers: dict[str, str] | None = None):
    return await api.client.get("/graphql", params={
        "query": query, "variables": json.dumps(variables or {})}, headers=headers or {})


async def test_a_repeat_visit_is_not_modified_and_a_change_is_seen_at_once(
        api: Api, admin: str, customer_side: Customer) -> None:
    product = await api.create_product(admin, sku="lamp", stock=9)
    first = await _get(api, CATALOG, {"first": 20})
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, no-cache"
    assert _stock(first.json())["lamp"] == {"productId": product, "available": 9,
                                           "reserved": None}
    cache = api.app.state.response_cache
    hits = cache.hits
    again = await _get(api, CATALOG, {"first": 20}, {"if-none-match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert cache.hits == hits + 1  # answered from memory
    # The same request over POST is the same cached response, bytes and ETag.
    posted = await api.post(CATALOG, {"first": 20})
    assert (posted.content, posted.headers["etag"]) == (first.content, etag)

    # A checkout changes the stock: the next visit sees it, with a new ETag.
    customer = await api.register("buyer@example.com")
    await api.checkout(customer, [(product, 2)])
    after = await _get(api, CATALOG, {"first": 20}, {"if-none-match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert _stock(after.json())["lamp"]["available"] == 7
    # So does an admin's stock adjustment, and a product change.
    await api.gql(ADJUST_STOCK, {"productId": product, "delta": 5, "reason": "count"},
                  token=admin)
    assert _stock((await _get(api, CATALOG, {"first": 20})).json())["lamp"]["available"] == 12
    await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"priceCents": 4321}}, token=admin)
    page = (await _get(api, CATALOG, {"first": 20})).json()
    assert page["data"]["products"]["edges"][0]["node"]["price"]["amount"] == 4321
    await api.gql(UPDATE_PRODUCT, {"id": product, "input": {"active": False}}, token=admin)
    assert (await _get(api, CATALOG, {"first": 20})).json()["data"]["products"][
        "totalCount"] == 0


async def test_what_an_admin_sees_never_reaches_the_cache_or_anyone_else(
        api: Api, admin: str, customer_side: Customer) -> None:
    product = await api.create_product(admin, sku="mug", stock=4)
    customer = await api.register("buyer@example.com")
    await api.checkout(customer, [(product, 1)])
    anonymous = await api.post(CATALOG, {"first": 20})
    assert _stock(anonymous.json())["mug"]["reserved"] is None
    staff = await api.post(CATALOG, {"first": 20}, token=admin)
    assert _stock(staff.json())["mug"]["reserved"] == 1  # the admin's own, not the cached one
    assert "etag" not in staff.headers
    signed_in = await api.post(CATALOG, {"first": 20}, token=customer)
    assert "etag" not in signed_in.headers
    again = await api.post(CATALOG, {"first": 20})
    assert again.content == anonymous.content
    assert _stock(again.json())["mug"]["reserved"] is None


async def test_only_catalog_queries_without_errors_are_cached(api: Api, admin: str) -> None:
    await api.create_product(admin, sku="pen", stock=1)
    me = await _get(api, "query { me { id } }")
    assert me.status_code == 200
    assert "etag" not in me.headers
    broken = await _get(api, "query { products(first: 20, after: \"nope\") { totalCount } }")
    assert broken.json()["errors"]
    assert "etag" not in broken.headers
    mutation = await _get(api, 'mutation { login(email: "a@b.c", password: "x") '
                               '{ __typename } }')
    assert mutation.status_code != 200 or "etag" not in mutation.headers


def test_a_response_computed_while_a_change_went_by_is_not_stored() -> None:
    cache = ResponseCache()
    key = ("query { products { totalCount } }", "{}", None)
    started = cache.generation
    cache.invalidate()  # a stock event arrives while the response is being computed
    entry = cache.put(key, started, b'{"data":{"products":{"totalCount":1}}}')
    assert entry.etag.startswith(b'"')
    assert cache.get(key) is None
    cache.put(key, cache.generation, b"{}")
    assert cache.get(key) is not None
    assert cache.cacheable("query { products { totalCount } }", None)
    assert not cache.cacheable("query { products { totalCount } me { id } }", None)
    assert not cache.cacheable("query { ...F } fragment F on Query { me { id } }", None)
    assert not cache.cacheable("mutation { logout }", None)


async def test_while_the_hub_hears_nothing_the_cache_is_bypassed_and_then_starts_empty(
        api: Api, admin: str, monkeypatch) -> None:
    """Another instance's changes reach this one only through the hub: with Redis away they
    go unheard, so a cached page could be stale for as long as the outage lasts."""
    product = await api.create_product(admin, sku="lamp", stock=9)
    url = api.settings.database_url
    hub = api.app.state.hub
    hearing = {"up": True}
    monkeypatch.setattr(type(hub), "healthy", property(lambda self: hearing["up"]))

    async def available() -> int:
        return _stock((await _get(api, CATALOG, {"first": 20})).json())["lamp"]["available"]

    assert await available() == 9
    assert await available() == 9  # cached from here on
    # Redis goes away; another instance sells 2 (this one hears nothing of it).
    hearing["up"] = False
    execute(url, "UPDATE inventory SET available = 7 WHERE product_id = %s", (int(product),))
    assert await available() == 7  # bypassed: read from the database
    execute(url, "UPDATE inventory SET available = 6 WHERE product_id = %s", (int(product),))
    assert await available() == 6  # and nothing read during the outage was kept
    # The hub reconnects: the gap's changes were never heard, so the cache starts empty.
    hub.reconnects += 1
    hearing["up"] = True
    execute(url, "UPDATE inventory SET available = 5 WHERE product_id = %s", (int(product),))
    assert await available() == 5
    assert await available() == 5


def test_a_new_connection_of_the_hub_empties_the_cache() -> None:
    connection = {"id": 0}
    cache = ResponseCache(hearing=lambda: connection["id"])
    key = ("query { products { totalCount } }", "{}", None)
    cache.put(key, cache.generation, b"{}")
    assert cache.get(key) is not None
    connection["id"] = 1  # reconnected since it was stored
    assert cache.get(key) is None


def test_a_response_is_answered_from_memory_for_a_few_seconds_at_most(monkeypatch) -> None:
    """A bound on a change no instance could hear (a cron sweep on the in-memory broadcast)."""
    from ordergraph.web import response_cache

    now = {"t": 1000.0}
    monkeypatch.setattr(response_cache.time, "monotonic", lambda: now["t"])
    cache = ResponseCache()
    key = ("query { products { totalCount } }", "{}", None)
    cache.put(key, cache.generation, b"{}")
    now["t"] += response_cache.MAX_AGE_SECONDS - 0.1
    assert cache.get(key) is not None
    now["t"] += 0.2
    assert cache.get(key) is None

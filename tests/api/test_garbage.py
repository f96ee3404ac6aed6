"""Garbage in, a clear client error out: never INTERNAL_SERVER_ERROR, never a 500, and
nothing changed (README "Abuse limits"; docs/api.graphql "Errors")."""

from __future__ import annotations

import base64
import json

import pytest

from tests.api.test_password_reset import REQUEST, reset, reset_link
from tests.support import (
    ADJUST_STOCK,
    CHECKOUT,
    CREATE_PRODUCT,
    LOGIN,
    REGISTER,
    STOCK,
    Api,
    scalar,
)

NUL = "\u0000"


def codes(body: dict) -> list[str | None]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


# ---- request bodies ------------------------------------------------------------------------

async def test_bodies_that_are_not_a_json_object_get_400_with_a_graphql_error(
        api: Api) -> None:
    for body in [b'{"query": ', b'"hello"', b"42", b"null", b"true", b"[]",
                 b'[{"query": "{ __typename }"}]', b'{"query": "{ __typename \xff }"}',
                 b"\xff\xfe\x00"]:
        response = await api.client.post("/graphql", content=body,
                                         headers={"content-type": "application/json"})
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/json"), body
        assert codes(response.json()) == ["BAD_REQUEST"], body
        assert response.json()["errors"][0]["message"], body
    # The connection is still good: the next request on the same client is answered.
    assert (await api.raw("{ __typename }"))["data"] == {"__typename": "Query"}


async def test_an_unsupported_content_type_is_a_json_400(api: Api) -> None:
    response = await api.client.post("/graphql", content=b'{"query": "{ __typename }"}',
                                     headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]


# ---- subscriptions over HTTP ---------------------------------------------------------------

async def test_a_subscription_over_http_is_a_client_error_pointing_at_the_websocket(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    document = "subscription { stockUpdated { type } }"
    posted = await api.post(document)
    got = await api.client.get("/graphql", params={"query": document})
    for response in (posted, got):
        assert response.status_code == 400, response.text
        body = response.json()
        assert codes(body) == ["BAD_REQUEST"]
        assert "WebSocket" in body["errors"][0]["message"]
        assert "graphql-transport-ws" in body["errors"][0]["message"]
    assert "Traceback" not in caplog.text
    assert "unexpected error" not in caplog.text
    # Queries and mutations over HTTP are unaffected.
    assert (await api.raw("{ __typename }"))["data"] == {"__typename": "Query"}


# ---- NUL characters in strings -------------------------------------------------------------

def refused_for_nul(body: dict, field: str) -> None:
    assert body.get("data") is None, body
    assert codes(body) == ["VALIDATION_FAILED"], body
    assert body["errors"][0]["extensions"]["field"] == field, body
    assert "NUL" in body["errors"][0]["message"]


async def test_a_nul_in_any_string_variable_is_validation_failed_and_changes_nothing(
        api: Api, admin: str, pg_url: str) -> None:
    product = await api.create_product(admin, sku="plain", stock=5)
    customer = await api.register("buyer@example.com")
    users, products = scalar(pg_url, "SELECT count(*) FROM users"), \
        scalar(pg_url, "SELECT count(*) FROM products")
    cases = [
        ("query($s: String) { products(search: $s) { totalCount } }", {"s": f"a{NUL}b"},
         None, "s"),
        ("query($s: String) { product(sku: $s) { id } }", {"s": f"plain{NUL}"}, None, "s"),
        (LOGIN, {"email": f"x{NUL}@example.com", "password": "x"}, None, "email"),
        ("mutation($e: String!) { requestPasswordReset(email: $e) { ok } }",
         {"e": f"buyer{NUL}@example.com"}, None, "e"),
        (REGISTER, {"input": {"email": "new@example.com", "password": "password123",
                              "name": f"N{NUL}"}}, None, "input.name"),
        (CREATE_PRODUCT, {"input": {"sku": "nul", "name": f"Bad{NUL}", "priceCents": 100}},
         admin, "input.name"),
        ("mutation($id: ID!, $d: String) { updateProduct(id: $id, input: {description: $d}) "
         "{ __typename } }", {"id": product, "d": f"x{NUL}"}, admin, "d"),
        (ADJUST_STOCK, {"productId": product, "delta": 1, "reason": f"r{NUL}"}, admin,
         "reason"),
        (CHECKOUT, {"input": {"items": [{"productId": product, "quantity": 1}],
                              "idempotencyKey": f"k{NUL}"}}, customer,
         "input.idempotencyKey"),
        (CHECKOUT, {"input": {"items": [{"productId": f"1{NUL}", "quantity": 1}]}}, customer,
         "input.items.0.productId"),
        (CHECKOUT, {"input": {"items": [{"productId": product, "quantity": 1}],
                              "shippingAddress": {"name": "A", "line1": f"1 Road{NUL}",
                                                  "city": "T", "postalCode": "1",
                                                  "country": "DE"}}}, customer,
         "input.shippingAddress.line1"),
    ]
    for document, variables, token, field in cases:
        refused_for_nul(await api.raw(document, variables, token=token), field)
    assert scalar(pg_url, "SELECT count(*) FROM users") == users
    assert scalar(pg_url, "SELECT count(*) FROM products") == products
    assert scalar(pg_url, "SELECT count(*) FROM orders") == 0
    assert (await api.gql(STOCK, {"id": product}))["product"]["stock"]["available"] == 5
    # The same register without the NUL goes through: the refused one stored nothing.
    await api.register("new@example.com", name="N")


async def test_a_nul_in_a_string_literal_is_validation_failed(api: Api, admin: str) -> None:
    inline = await api.raw('{ products(search: "a\\u0000b") { totalCount } }')
    refused_for_nul(inline, "search")
    nested = await api.raw(
        'mutation { createProduct(input: {sku: "lit", name: "a\\u0000", priceCents: 1}) '
        "{ __typename } }", token=admin)
    refused_for_nul(nested, "input.name")
    default = await api.raw('query($s: String = "\\u0000") { products(search: $s) '
                            "{ totalCount } }")
    refused_for_nul(default, "s")
    # Other control characters are not the storage's problem: searched as they are.
    assert (await api.gql("query($s: String) { products(search: $s) { totalCount } }",
                          {"s": "a\tb\u0001"}))["products"]["totalCount"] == 0


# ---- several operations --------------------------------------------------------------------

async def test_several_operations_without_an_operation_name_are_refused(api: Api) -> None:
    document = "query A { a: __typename } query B { b: __typename }"
    body = await api.raw(document)
    assert body.get("data") is None
    assert body["errors"][0]["message"] == \
        "Must provide operation name if query contains multiple operations."
    # Twice: the prepared-documents cache does not remember the first answer for the text.
    assert (await api.raw(document))["errors"]
    named = await api.client.post("/graphql", json={"query": document, "operationName": "B"})
    assert named.json() == {"data": {"b": "Query"}}
    unknown = await api.client.post("/graphql", json={"query": document,
                                                      "operationName": "C"})
    assert unknown.status_code == 400
    assert codes(unknown.json()) == ["BAD_REQUEST"]
    assert (await api.raw("query A { a: __typename }"))["data"] == {"a": "Query"}


# ---- over-limit documents ------------------------------------------------------------------

async def test_documents_over_the_token_limit_are_query_too_complex(api: Api) -> None:
    for _ in range(2):  # the second time through the prepared-documents cache
        body = await api.raw("{ " + "__typename " * 2100 + "}")
        assert codes(body) == ["QUERY_TOO_COMPLEX"]
        assert "2000 tokens" in body["errors"][0]["message"]


async def test_documents_too_costly_to_validate_are_query_too_complex(api: Api) -> None:
    for _ in range(2):
        body = await api.raw("{ " + "__typename " * 1000 + "}")
        assert body.get("data") is None
        assert codes(body) == ["QUERY_TOO_COMPLEX"], body


# ---- omitted nullable arguments ------------------------------------------------------------

async def test_update_default_address_without_the_argument_forgets_it_as_null_does(
        api: Api) -> None:
    customer = await api.register("home@example.com")
    save = ("mutation($a: AddressInput) { updateDefaultAddress(address: $a) { __typename "
            "... on UserPayload { user { defaultAddress { city } } } } }")
    address = {"name": "A", "line1": "1 Road", "city": "Town", "postalCode": "1",
               "country": "DE"}
    for forget in ("mutation { updateDefaultAddress { __typename "
                   "... on UserPayload { user { defaultAddress { city } } } } }",
                   "mutation { updateDefaultAddress(address: null) { __typename "
                   "... on UserPayload { user { defaultAddress { city } } } } }"):
        saved = await api.gql(save, {"a": address}, token=customer)
        assert saved["updateDefaultAddress"]["user"]["defaultAddress"] == {"city": "Town"}
        forgot = await api.gql(forget, token=customer)
        assert forgot["updateDefaultAddress"] == {"__typename": "UserPayload",
                                                  "user": {"defaultAddress": None}}


ROOTS = """{ __schema {
  queryType { fields { ...F } } mutationType { fields { ...F } } } }
fragment F on __Field { name args { name type { kind name ofType { kind name } } }
  type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }"""
SIMPLE = {"ID": '"1"', "String": '"x"', "Int": "1", "Boolean": "false",
          "DateTime": '"2024-01-01T00:00:00Z"', "Role": "CUSTOMER"}


def _selection(type_: dict) -> str:
    while type_.get("ofType"):
        type_ = type_["ofType"]
    return " { __typename }" if type_["kind"] in ("OBJECT", "UNION", "INTERFACE") else ""


async def test_every_nullable_argument_may_be_omitted_or_null(api: Api, admin: str) -> None:
    """Each root field, its required arguments given (when simple), its nullable ones all
    omitted, then all null: a result or a clear error, never INTERNAL_SERVER_ERROR."""
    schema = (await api.gql(ROOTS, token=admin))["__schema"]
    tried = 0
    for kind, root in (("query", schema["queryType"]), ("mutation", schema["mutationType"])):
        for field in root["fields"]:
            required = [a for a in field["args"] if a["type"]["kind"] == "NON_NULL"]
            nullable = [a for a in field["args"] if a["type"]["kind"] != "NON_NULL"]
            if not nullable or any(a["type"]["ofType"]["name"] not in SIMPLE
                                   for a in required):
                continue
            given = [f'{a["name"]}: {SIMPLE[a["type"]["ofType"]["name"]]}' for a in required]
            for extra in ([], [f'{a["name"]}: null' for a in nullable]):
                arguments = ", ".join(given + extra)
                document = f"{kind} {{ {field['name']}" + (f"({arguments})" if arguments
                                                           else "") + \
                    _selection(field["type"]) + " }"
                body = await api.raw(document, token=admin)
                assert "INTERNAL_SERVER_ERROR" not in codes(body), (document, body)
                tried += 1
    assert tried >= 16  # products, product, orders, ..., updateDefaultAddress


# ---- ids -----------------------------------------------------------------------------------

async def test_ids_are_ascii_digits_only(api: Api, admin: str, pg_url: str) -> None:
    product = await api.create_product(admin, sku="first", stock=5)
    await api.create_product(admin, sku="second", stock=5)
    customer = await api.register("strict@example.com")
    full_width = "".join(chr(0xFF10 + int(d)) for d in product)  # U+FF10 is full-width 0
    spellings = [f" {product}", f"{product} ", f"+{product}", full_width, f"0_{product}",
                 f"{product}\n"]
    for spelling in spellings:
        found = await api.gql("query($id: ID) { product(id: $id) { id } }", {"id": spelling})
        assert found["product"] is None, spelling
        result = (await api.gql(CHECKOUT, {"input": {"items": [
            {"productId": spelling, "quantity": 1}]}}, token=customer))["checkout"]
        assert (result["__typename"], result["field"]) == \
            ("NotFoundError", "items.0.productId"), spelling
    assert scalar(pg_url, "SELECT count(*) FROM orders") == 0
    # The plain spelling names it; so does a cursor only when its id is ASCII digits.
    assert (await api.gql("query($id: ID) { product(id: $id) { id } }",
                          {"id": product}))["product"] == {"id": product}
    page = "query($after: String) { products(first: 1, after: $after) { totalCount } }"
    good = base64.urlsafe_b64encode(f"product:{product}".encode()).decode().rstrip("=")
    assert (await api.gql(page, {"after": good}))["products"]["totalCount"] >= 1
    odd = base64.urlsafe_b64encode(f"product:{full_width}".encode()).decode().rstrip("=")
    assert codes(await api.raw(page, {"after": odd})) == ["VALIDATION_FAILED"]


# ---- the response cache refuses what the endpoint refuses ---------------------------------

async def test_the_response_cache_never_answers_what_the_endpoint_refuses(api: Api) -> None:
    document = "query Catalog { products { totalCount } }"
    body = json.dumps({"query": document}).encode()
    cache = api.app.state.response_cache
    for _ in range(2):  # the second time the document is cached
        assert (await api.client.post("/graphql", content=body, headers={
            "content-type": "application/json"})).status_code == 200
    assert cache.hits >= 1
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        refused = await api.client.post("/graphql", content=body,
                                        headers={"content-type": content_type})
        assert refused.status_code == 400, content_type
        assert codes(refused.json()) == ["BAD_REQUEST"]
    await api.client.get("/graphql", params={"query": document})  # cached for GET too
    # Falsy non-objects as well: the endpoint refuses [], "", 0 and false, and an empty GET
    # parameter, exactly as it refuses "x".
    for field in ("extensions", "variables"):
        for value in ('"x"', "5", "[1]", "[]", '""', "0", "false"):
            bad = f'{{"query": {json.dumps(document)}, "{field}": {value}}}'.encode()
            posted = await api.client.post("/graphql", content=bad,
                                           headers={"content-type": "application/json"})
            assert posted.status_code == 400, (field, value, posted.text)
            got = await api.client.get("/graphql", params={"query": document, field: value})
            assert got.status_code == 400, (field, value, got.text)
        empty = await api.client.get("/graphql", params={"query": document, field: ""})
        assert empty.status_code == 400, (field, empty.text)
    for null in ("null", "{}"):  # what the endpoint takes, the cache takes
        posted = await api.client.post(
            "/graphql", content=f'{{"query": {json.dumps(document)}, "variables": {null}, '
                                f'"extensions": {null}}}'.encode(),
            headers={"content-type": "application/json"})
        assert posted.status_code == 200, (null, posted.text)
    # A parameter is fine: the same answer as plain application/json.
    assert (await api.client.post("/graphql", content=body, headers={
        "content-type": "application/json; charset=utf-8"})).status_code == 200


# ---- passwords -----------------------------------------------------------------------------

async def test_a_password_of_only_whitespace_is_refused_at_register_and_reset(
        api: Api, admin: str, pg_url: str) -> None:
    blanks = [" " * 8, "\t" * 8, " \n \t  \u3000  ", " " * 1024]
    for password in blanks:
        result = (await api.gql(REGISTER, {"input": {"email": "blank@example.com",
                                                     "password": password}}))["register"]
        assert (result["__typename"], result["code"], result["field"]) == \
            ("ValidationError", "VALIDATION_FAILED", "password"), repr(password)
    assert scalar(pg_url, "SELECT count(*) FROM users WHERE email = 'blank@example.com'") == 0
    # Spaces inside a password are fine, as is one that is long enough around them.
    await api.register("spaced@example.com", password="  a b c  ")

    await api.gql(REQUEST, {"e": "spaced@example.com"})
    _, token = await reset_link(api, admin, "spaced@example.com")
    for password in blanks:
        weak = await reset(api, token, password)
        assert (weak["__typename"], weak["field"]) == ("ValidationError", "newPassword")
    assert (await reset(api, token, "a real one"))["__typename"] == "AuthPayload"

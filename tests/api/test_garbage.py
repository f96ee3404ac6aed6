"""Garbage in, a clear client error out: never INTERNAL_SERVER_ERROR, never a 500, and
nothing changed (README "Abuse limits"; docs/api.graphql "Errors")."""

from __future__ import annotations

import pytest

from tests.support import Api


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

"""Holes in the abuse limits (issue 10, item 10): aliases of __typename, bad list arguments,
and login throttling under concurrent attempts, in memory and through Redis."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from ordergraph.adapters.ratelimit import DEFAULT_THROTTLES, MemoryRateLimiter
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.resolvers.catalog import MAX_SEARCH_LENGTH
from ordergraph.web.app import Overrides
from tests.support import LOGIN, Api, running_api, settings_for

REDIS_URL = "redis://127.0.0.1:6379"
FREE_EMAIL_FAILURES = DEFAULT_THROTTLES["login:email"].free_failures
FREE_ADDRESS_FAILURES = DEFAULT_THROTTLES["login:ip"].free_failures


def codes(body: dict) -> list[str]:
    return [(error.get("extensions") or {}).get("code") for error in body.get("errors") or []]


# ---- query limits --------------------------------------------------------------------------

async def test_aliases_of_typename_count_against_the_alias_limit(api: Api) -> None:
    many = "{ " + " ".join(f"t{i}: __typename" for i in range(500)) + " }"
    body = await api.raw(many)
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "500 aliases" in body["errors"][0]["message"]
    # Unaliased __typename stays free (clients add it everywhere).
    assert "errors" not in await api.raw("{ __typename products { __typename } }")


# ---- bad list arguments are the client's fault ---------------------------------------------

PRODUCTS = "query($search: String, $after: String) { products(search: $search, after: $after) " \
           "{ totalCount } }"


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def test_an_overlong_search_is_a_validation_error(api: Api) -> None:
    body = await api.raw(PRODUCTS, {"search": "x" * (MAX_SEARCH_LENGTH + 1)})
    assert codes(body) == ["VALIDATION_FAILED"]
    assert str(MAX_SEARCH_LENGTH) in body["errors"][0]["message"]
    long_but_allowed = await api.raw(PRODUCTS, {"search": "x" * MAX_SEARCH_LENGTH})
    assert long_but_allowed["data"]["products"]["totalCount"] == 0


async def test_very_long_searches_are_refused_before_the_database(api: Api) -> None:
    body = await api.raw(PRODUCTS, {"search": "%_" * 200_000})
    assert codes(body) == ["VALIDATION_FAILED"]


@pytest.mark.parametrize("raw", ["product:" + "9" * 40, "product:99999999999999999999",
                                 "product:-5", "product:" + "9" * 5000])
async def test_cursors_out_of_range_are_validation_errors(api: Api, raw: str) -> None:
    body = await api.raw(PRODUCTS, {"after": cursor(raw)})
    assert codes(body) == ["VALIDATION_FAILED"], body


async def test_huge_cursors_on_every_list_are_validation_errors(api: Api, admin: str) -> None:
    for field, kind in [("myOrders", "order"), ("orders", "order"), ("inventory", "product"),
                        ("auditLog", "audit")]:
        query = f"query($after: String) {{ {field}(after: $after) {{ totalCount }} }}"
        body = await api.raw(query, {"after": cursor(f"{kind}:{'9' * 30}")}, token=admin)
        assert codes(body) == ["VALIDATION_FAILED"], (field, body)


# ---- login throttling: counted before the password check -----------------------------------

@pytest.fixture(params=["memory", "redis"])
async def shop(request: pytest.FixtureRequest, pg_url: str,
               stripe_emulator: LocalStripe) -> AsyncIterator[Api]:
    """The app with its rate limiter in memory, or in Redis (a prefix of this test's own)."""
    if request.param == "memory":
        settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
        overrides = Overrides(rate_limiter=MemoryRateLimiter(), run_sweeper=False)
    else:
        settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                                broadcast_url=REDIS_URL,
                                broadcast_prefix=f"test-{uuid.uuid4().hex[:8]}:")
        overrides = Overrides(run_sweeper=False)
    async with running_api(settings, overrides) as api:
        yield api


async def login(api: Api, email: str, password: str) -> dict:
    return (await api.gql(LOGIN, {"email": email, "password": password}))["login"]


async def test_a_burst_of_wrong_passwords_gets_no_more_guesses_than_one_by_one(
        shop: Api) -> None:
    await shop.register("target@example.com", "correct-password")
    results = await asyncio.gather(*[login(shop, "target@example.com", f"guess-{i}")
                                     for i in range(12)])
    outcomes = Counter(result["code"] for result in results)
    # One by one: the free failures, then one more whose failure starts the block.
    assert outcomes == {"INVALID_CREDENTIALS": FREE_EMAIL_FAILURES + 1,
                        "RATE_LIMITED": 12 - FREE_EMAIL_FAILURES - 1}
    blocked = await login(shop, "target@example.com", "correct-password")
    assert blocked["code"] == "RATE_LIMITED"


async def test_a_burst_from_one_address_over_many_emails_is_capped(shop: Api) -> None:
    burst = FREE_ADDRESS_FAILURES + 10
    results = await asyncio.gather(*[login(shop, f"nobody{i}@example.com", "guess")
                                     for i in range(burst)])
    outcomes = Counter(result["code"] for result in results)
    assert outcomes["INVALID_CREDENTIALS"] == FREE_ADDRESS_FAILURES + 1
    assert outcomes["RATE_LIMITED"] == burst - FREE_ADDRESS_FAILURES - 1


async def test_logging_in_to_ones_own_account_does_not_reset_the_address(shop: Api) -> None:
    await shop.register("attacker@example.com", "attacker-password")
    for round_ in range(2):  # every free failure of the address, with a success after each half
        for i in range(FREE_ADDRESS_FAILURES // 2):
            result = await login(shop, f"victim{round_}-{i}@example.com", "guess")
            assert result["code"] == "INVALID_CREDENTIALS", (round_, i, result)
        own = await login(shop, "attacker@example.com", "attacker-password")
        assert own["__typename"] == "AuthPayload"
    # The address has used its free failures: the next one starts a block.
    assert (await login(shop, "victim-a@example.com", "guess"))["code"] == \
        "INVALID_CREDENTIALS"
    assert (await login(shop, "victim-b@example.com", "guess"))["code"] == "RATE_LIMITED"


async def test_successful_logins_do_not_count_against_the_address(shop: Api) -> None:
    await shop.register("regular@example.com", "regular-password")
    for _ in range(FREE_ADDRESS_FAILURES + 5):
        assert (await login(shop, "regular@example.com", "regular-password"))["__typename"] \
            == "AuthPayload"
    # An office behind one address: logins that succeed leave room for typos.
    assert (await login(shop, "typo@example.com", "oops"))["code"] == "INVALID_CREDENTIALS"

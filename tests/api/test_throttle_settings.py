"""The LOGIN_* and REGISTER_* settings set the throttles, through GraphQL with small limits,
on the in-process limiter and the Redis one; bad values are refused with one line."""

from __future__ import annotations

import uuid

import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.settings import Settings, SettingsError
from tests.support import LOGIN, REGISTER, TEST_JWT_SECRET, Api, running_api

SMALL_LIMITS = {
    "LOGIN_FREE_FAILURES_PER_EMAIL": "2",
    "LOGIN_FREE_FAILURES_PER_ADDRESS": "4",
    "LOGIN_FIRST_BLOCK": "7s",
    "LOGIN_MAX_BLOCK": "1m",
    "REGISTER_PER_ADDRESS": "3",
    "REGISTER_FIRST_BLOCK": "45s",
}


def settings_from_env(pg_url: str, api_base: str, **extra: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": pg_url, "JWT_SECRET": TEST_JWT_SECRET,
                              "STRIPE_API_BASE": api_base, "ORDERGRAPH_ENV": "test",
                              **SMALL_LIMITS, **extra}, dotenv_path=None)


async def login(api: Api, email: str, password: str) -> dict:
    return (await api.gql(LOGIN, {"email": email, "password": password}))["login"]


async def register(api: Api, email: str) -> dict:
    return (await api.gql(REGISTER, {"input": {"email": email,
                                               "password": "password123"}}))["register"]


@pytest.mark.parametrize("broadcast", ["memory://", "redis://127.0.0.1:6379"])
async def test_small_login_limits_from_the_environment(
        pg_url: str, stripe_emulator: LocalStripe, broadcast: str) -> None:
    settings = settings_from_env(pg_url, stripe_emulator.api_base, BROADCAST_URL=broadcast,
                                 BROADCAST_PREFIX=f"test-{uuid.uuid4().hex[:8]}:")
    async with running_api(settings) as api:
        await api.register("owner@example.com", "correct-password")
        # Two free failures, the third starts a block of LOGIN_FIRST_BLOCK.
        for _ in range(3):
            assert (await login(api, "owner@example.com", "wrong"))["code"] == \
                "INVALID_CREDENTIALS"
        blocked = await login(api, "owner@example.com", "correct-password")
        assert (blocked["code"], blocked["retryAfterSeconds"]) == ("RATE_LIMITED", 7)

        # The address: 4 free failures in all (3 made above), the fifth starts its block.
        assert (await login(api, "other@example.com", "guess"))["code"] == \
            "INVALID_CREDENTIALS"
        assert (await login(api, "third@example.com", "guess"))["code"] == \
            "INVALID_CREDENTIALS"
        assert (await login(api, "fourth@example.com", "guess"))["code"] == "RATE_LIMITED"


async def test_small_registration_limit_from_the_environment(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_from_env(pg_url, stripe_emulator.api_base)
    async with running_api(settings) as api:
        results = [await register(api, f"bot{i}@example.com") for i in range(5)]
        assert [r["__typename"] for r in results[:4]] == ["AuthPayload"] * 4
        assert (results[4]["code"], results[4]["retryAfterSeconds"]) == ("RATE_LIMITED", 45)


def test_the_defaults_are_todays_limits() -> None:
    from ordergraph.adapters.ratelimit import DEFAULT_THROTTLES, throttles_from

    assert throttles_from(Settings.from_env({}, dotenv_path=None)) == DEFAULT_THROTTLES
    assert DEFAULT_THROTTLES["login:email"].free_failures == 5
    assert DEFAULT_THROTTLES["login:ip"].free_failures == 20
    assert DEFAULT_THROTTLES["register:ip"].free_failures == 20
    assert DEFAULT_THROTTLES["login:ip"].max_block_seconds == 15 * 60


@pytest.mark.parametrize(("name", "value", "says"), [
    ("LOGIN_FREE_FAILURES_PER_EMAIL", "-1", "LOGIN_FREE_FAILURES_PER_EMAIL must be 0 or more"),
    ("REGISTER_PER_ADDRESS", "many", "REGISTER_PER_ADDRESS: 'many' is not a whole number"),
    ("LOGIN_FIRST_BLOCK", "20m", "LOGIN_FIRST_BLOCK must not exceed LOGIN_MAX_BLOCK"),
    ("REGISTER_WINDOW", "500ms", "must be at least 1s"),
    ("LOGIN_MAX_BLOCK", "soon", "LOGIN_MAX_BLOCK: 'soon' is not a duration"),
])
def test_bad_limits_are_refused_in_one_line(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({name: value}, dotenv_path=None)

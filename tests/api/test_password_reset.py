"""Password reset through GraphQL: no account oracle, a single-use hashed token that expires,
throttled, sessions issued before the reset refused, audited."""

from __future__ import annotations

import asyncio
import hashlib
import re
import statistics
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from ordergraph.adapters.clock import OffsetClock
from ordergraph.adapters.stripe.emulator import LocalStripe
from ordergraph.domain.services.mail import deliver_mail
from ordergraph.web.app import Overrides
from tests.support import CHECKOUT, USER_ERROR, Api, rows, running_api, settings_for
from tests.ws import SubscriptionError

REQUEST = "mutation($e: String!) { requestPasswordReset(email: $e) { ok } }"
RESET = f"""
mutation($t: String!, $p: String!) {{
  resetPassword(token: $t, newPassword: $p) {{
    __typename
    ... on AuthPayload {{ token user {{ email }} }}
    {USER_ERROR}
  }}
}}"""
MAILBOX = "{ localMailbox { to subject text html } }"
ME = "{ me { email } }"
LINK = re.compile(r"(http://\S+/#/reset-password\?token=([A-Za-z0-9_-]+))")


async def reset_link(api: Api, admin: str, email: str) -> tuple[str, str]:
    """Send what is due and return the newest reset link mailed to `email`."""
    s = api.deps
    await deliver_mail(uow=s.uow(), mailer=s.mailer, clock=s.clock)
    for mail in (await api.gql(MAILBOX, token=admin))["localMailbox"]:
        if mail["to"] == [email] and mail["subject"] == "Reset your password":
            match = LINK.search(mail["text"])
            assert match, mail["text"]
            assert match.group(1) in mail["html"]
            return match.group(1), match.group(2)
    raise AssertionError(f"no reset email to {email}")


async def reset(api: Api, token: str, password: str) -> dict:
    return (await api.gql(RESET, {"t": token, "p": password}))["resetPassword"]


async def test_a_reset_sets_the_password_and_revokes_older_sessions(api: Api, admin: str) -> None:
    old_session = await api.register("forgetful@example.com", "first-password")
    assert (await api.gql(ME, token=old_session))["me"]["email"] == "forgetful@example.com"
    assert (await api.gql(REQUEST, {"e": " Forgetful@Example.com "})
            )["requestPasswordReset"]["ok"] is True
    link, token = await reset_link(api, admin, "forgetful@example.com")
    assert link.startswith("http://127.0.0.1:8000/#/reset-password?token=")

    result = await reset(api, token, "second-password")

    assert result["__typename"] == "AuthPayload"
    assert result["user"]["email"] == "forgetful@example.com"
    assert (await api.gql(ME, token=result["token"]))["me"]["email"] == "forgetful@example.com"
    body = await api.raw(ME, token=old_session)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "password was changed" in body["errors"][0]["message"]
    assert await api.login("forgetful@example.com", "second-password")
    wrong = (await api.gql("mutation { login(email: \"forgetful@example.com\", "
                           "password: \"first-password\") { __typename } }"))["login"]
    assert wrong["__typename"] == "InvalidCredentialsError"

    again = await reset(api, token, "third-password")  # single use
    assert (again["__typename"], again["code"]) == ("InvalidTokenError", "INVALID_TOKEN")
    audit = rows(api.settings.database_url,
                 "SELECT action, actor_kind, CAST(after AS TEXT) FROM audit_log "
                 "WHERE entity_type = 'USER' ORDER BY id")[-2:]
    assert [(action, actor) for action, actor, _ in audit] == \
        [("USER_PASSWORD_RESET_REQUESTED", "SYSTEM"), ("USER_PASSWORD_RESET", "USER")]
    assert "203.0.113.7" in audit[0][2]  # who asked, by address
    assert token not in audit[0][2]
    # Only the token's hash is kept, and the sent email's copy of it is erased.
    stored = rows(api.settings.database_url, "SELECT token_hash FROM password_resets")
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(),)]
    outbox = rows(api.settings.database_url, "SELECT CAST(data AS TEXT) FROM outbox")
    assert all(token not in text for (text,) in outbox)


async def test_a_session_from_before_the_reset_cannot_check_out(api: Api, admin: str) -> None:
    # The checkout reads its customer in its own first statement, not through the viewer's
    # read: a revoked session must still be refused there, with nothing written.
    product = await api.create_product(admin, sku="reset-cart", stock=5)
    old_session = await api.register("revoked@example.com", "first-password")
    await api.gql(REQUEST, {"e": "revoked@example.com"})
    _, token = await reset_link(api, admin, "revoked@example.com")
    new_session = (await reset(api, token, "second-password"))["token"]
    orders_before = rows(api.settings.database_url, "SELECT count(*) FROM orders")

    body = await api.raw(CHECKOUT, {"input": {"items": [{"productId": product, "quantity": 2}],
                                              "idempotencyKey": "after-reset"}},
                         token=old_session)

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    assert "password was changed" in body["errors"][0]["message"]
    assert body["data"] is None
    assert rows(api.settings.database_url, "SELECT count(*) FROM orders") == orders_before
    assert rows(api.settings.database_url, "SELECT available, reserved FROM inventory "
                "WHERE product_id = %s", (int(product),)) == [(5, 0)]
    placed = await api.checkout(new_session, [(product, 2)], key="after-reset")
    assert placed["order"]["status"] == "PAYMENT_PENDING", placed
    assert placed["order"]["customer"]["email"] == "revoked@example.com"
    assert placed["order"]["payment"]["clientSecret"] == placed["clientSecret"] is not None


@pytest.mark.parametrize("refused_input", [
    {"items": [{"productId": "PRODUCT", "quantity": 0}]},  # the service refuses it
    {"items": [{"productId": "PRODUCT", "quantity": 1}], "idempotencyKey": ""},
    {"items": [{"productId": "no-such-id", "quantity": 1}]},  # the resolver refuses it
    {"items": [{"productId": "PRODUCT", "quantity": 1}],
     "shippingAddress": {"name": "", "line1": "", "city": "", "postalCode": "", "country": "??"}},
], ids=["quantity", "key", "product-id", "address"])
async def test_a_revoked_session_hears_it_before_what_is_wrong_with_its_cart(
        api: Api, admin: str, refused_input: dict) -> None:
    product = await api.create_product(admin, sku="revoked-bad-cart", stock=5)
    old_session = await api.register("revoked-cart@example.com", "first-password")
    cart = {**refused_input, "items": [{**item, "productId": item["productId"].replace(
        "PRODUCT", product)} for item in refused_input["items"]]}
    fresh = await api.raw(CHECKOUT, {"input": cart}, token=old_session)
    assert fresh["data"]["checkout"]["__typename"] in {"ValidationError", "NotFoundError"}, fresh
    await api.gql(REQUEST, {"e": "revoked-cart@example.com"})
    _, token = await reset_link(api, admin, "revoked-cart@example.com")
    await reset(api, token, "second-password")

    body = await api.raw(CHECKOUT, {"input": cart}, token=old_session)

    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    assert body["data"] is None


async def test_a_revoked_session_on_an_open_websocket_hears_it_before_its_cart(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    """A WebSocket keeps the viewer it connected with; a checkout refused for its input on
    it still reads the account afresh first."""
    from tests.api.test_live import serve

    async for live in serve(settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)):
        api = live.api
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="ws-revoked-cart", stock=5)
        old_session = await api.register("ws-revoked@example.com", "first-password")
        socket = await live.socket(old_session)
        await api.gql(REQUEST, {"e": "ws-revoked@example.com"})
        _, token = await reset_link(api, admin, "ws-revoked@example.com")
        await reset(api, token, "second-password")
        try:
            for line in ({"productId": "no-such-id", "quantity": 1},  # the resolver's refusal
                         {"productId": product, "quantity": 0}):  # the checkout's
                operation = await socket.subscribe(CHECKOUT, {"input": {"items": [line]}})
                with pytest.raises(SubscriptionError) as refused:
                    await socket.next(operation)
                assert refused.value.code == "UNAUTHENTICATED", refused.value.errors
        finally:
            await socket.connection.close()


async def test_unknown_and_known_emails_get_the_same_answer_in_about_the_same_time(
        api: Api, admin: str) -> None:
    await api.register("known@example.com")
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(3):  # within the free requests of each account and of the address
        for kind, email in (("known", "known@example.com"),
                            ("unknown", f"nobody{i}@example.com")):
            started = time.perf_counter()
            body = await api.raw(REQUEST, {"e": email})
            timings[kind].append(time.perf_counter() - started)
            assert body == {"data": {"requestPasswordReset": {"ok": True}}}
    for email in ("not an email", "", "x" * 300):
        assert (await api.raw(REQUEST, {"e": email})) == \
            {"data": {"requestPasswordReset": {"ok": True}}}
    known, unknown = (statistics.median(timings[k]) for k in ("known", "unknown"))
    # Both at the answer floor (50 ms), whatever the two writes more of a known account cost.
    assert abs(known - unknown) < 0.01, timings
    assert min(timings["known"] + timings["unknown"]) >= 0.05
    assert [row[1] for row in rows(api.settings.database_url,
            "SELECT kind, recipient FROM outbox")] == ["known@example.com"] * 3


async def test_requests_are_throttled_per_account_without_telling(api: Api, admin: str) -> None:
    await api.register("target@example.com")
    answers = [await api.gql(REQUEST, {"e": "target@example.com"}) for _ in range(6)]
    assert {a["requestPasswordReset"]["ok"] for a in answers} == {True}
    # Three at once per account; the rest answer the same and send nothing.
    assert len(rows(api.settings.database_url, "SELECT id FROM outbox")) == 3


async def test_a_weak_password_is_refused_and_the_token_still_works(api: Api,
                                                                    admin: str) -> None:
    await api.register("careful@example.com")
    await api.gql(REQUEST, {"e": "careful@example.com"})
    _, token = await reset_link(api, admin, "careful@example.com")

    weak = await reset(api, token, "short")
    assert (weak["__typename"], weak["code"], weak["field"]) == \
        ("ValidationError", "VALIDATION_FAILED", "newPassword")
    for bad in ("", "not-a-token", "x" * 500):
        unknown = await reset(api, bad, "long-enough-password")
        assert unknown["code"] == "INVALID_TOKEN"
    assert (await reset(api, token, "long-enough-password"))["__typename"] == "AuthPayload"


async def test_two_racing_resets_with_one_token_one_wins(api: Api, admin: str) -> None:
    await api.register("twice@example.com")
    await api.gql(REQUEST, {"e": "twice@example.com"})
    _, token = await reset_link(api, admin, "twice@example.com")

    results = await asyncio.gather(*[reset(api, token, f"racing-password-{i}")
                                     for i in range(4)])

    winners = [i for i, r in enumerate(results) if r["__typename"] == "AuthPayload"]
    assert len(winners) == 1
    assert {r["code"] for r in results if r["__typename"] != "AuthPayload"} == \
        {"INVALID_TOKEN"}
    assert await api.login("twice@example.com", f"racing-password-{winners[0]}")


async def test_a_new_link_makes_the_older_ones_useless_once_used(api: Api, admin: str) -> None:
    await api.register("two-links@example.com")
    await api.gql(REQUEST, {"e": "two-links@example.com"})
    _, first = await reset_link(api, admin, "two-links@example.com")
    await api.gql(REQUEST, {"e": "two-links@example.com"})
    _, second = await reset_link(api, admin, "two-links@example.com")
    assert first != second
    assert (await reset(api, second, "brand-new-password"))["__typename"] == "AuthPayload"
    assert (await reset(api, first, "another-password"))["code"] == "INVALID_TOKEN"


@pytest.fixture
async def timed_api(pg_url: str, stripe_emulator: LocalStripe,
                    clock: OffsetClock) -> AsyncIterator[Api]:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            public_url="https://shop.example.com/")
    async with running_api(settings, Overrides(clock=clock, run_sweeper=False)) as api:
        yield api


async def test_a_token_expires_after_30_minutes(timed_api: Api, clock: OffsetClock) -> None:
    api = timed_api
    admin = await api.create_admin()
    await api.register("slow-reader@example.com")
    await api.gql(REQUEST, {"e": "slow-reader@example.com"})
    s = api.deps
    await deliver_mail(uow=s.uow(), mailer=s.mailer, clock=s.clock)
    [mail] = (await api.gql(MAILBOX, token=admin))["localMailbox"]
    match = re.search(r"https://shop\.example\.com/#/reset-password\?token=(\S+)", mail["text"])
    assert match, mail["text"]

    clock.advance(timedelta(minutes=30, seconds=1))

    expired = await reset(api, match.group(1), "too-late-password")
    assert expired["code"] == "INVALID_TOKEN"
    assert await api.login("slow-reader@example.com", "password123")


class CountingPasswords:
    def __init__(self) -> None:
        from ordergraph.adapters.passwords import Argon2PasswordHasher

        self.inner = Argon2PasswordHasher()
        self.hashed = 0

    async def hash(self, password: str) -> str:
        self.hashed += 1
        return await self.inner.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self.inner.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.inner.needs_rehash(password_hash)


async def test_guessed_tokens_cost_no_password_hashing(pg_url: str,
                                                       stripe_emulator: LocalStripe) -> None:
    passwords = CountingPasswords()
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base)
    async with running_api(settings, Overrides(passwords=passwords, run_sweeper=False)) as api:
        for guess in range(5):
            assert (await reset(api, f"guess-{guess}", "long-enough-password"))["code"] == \
                "INVALID_TOKEN"
        assert passwords.hashed == 0

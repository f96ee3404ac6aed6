"""Accounts through GraphQL: register, login, tokens, roles, and who may call what."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from tests.support import LOGIN, REGISTER, TEST_JWT_SECRET, Api, rows

ME = "{ me { id email name role createdAt } }"
SET_ROLE = """
mutation SetRole($userId: ID!, $role: Role!) {
  setUserRole(userId: $userId, role: $role) {
    __typename
    ... on UserPayload { user { id role } }
    ... on UserError { code message field }
  }
}"""


async def register(api: Api, email: str, password: str = "password123",
                   name: str | None = None) -> dict:
    data = await api.gql(REGISTER, {"input": {"email": email, "password": password,
                                              "name": name}})
    return data["register"]


async def test_register_logs_in_a_customer(api: Api) -> None:
    result = await register(api, "  New.Person@Example.COM ", name="New Person")

    assert result["__typename"] == "AuthPayload"
    assert result["user"]["email"] == "new.person@example.com"
    assert result["user"]["role"] == "CUSTOMER"
    me = await api.gql(ME, token=result["token"])
    assert me["me"]["email"] == "new.person@example.com"
    assert me["me"]["name"] == "New Person"


async def test_register_never_takes_a_role(api: Api) -> None:
    body = await api.raw(
        'mutation { register(input: {email: "x@example.com", password: "password123", '
        'role: ADMIN}) { __typename } }')
    assert body["errors"]
    assert "role" in body["errors"][0]["message"]
    assert rows(api.settings.database_url, "SELECT count(*) FROM users") == [(0,)]


async def test_password_hash_is_argon2id_with_owasp_minimum(api: Api) -> None:
    await register(api, "hash@example.com")
    (stored,), = rows(api.settings.database_url, "SELECT password_hash FROM users")
    assert stored.startswith("$argon2id$")
    params = dict(part.split("=") for part in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024
    assert int(params["t"]) >= 2


@pytest.mark.parametrize(("email", "password", "field"), [
    ("not-an-email", "password123", "email"),
    ("short@example.com", "seven77", "password"),
    ("long@example.com", "x" * 1025, "password"),
])
async def test_register_validates_input(api: Api, email: str, password: str,
                                        field: str) -> None:
    result = await register(api, email, password)
    assert (result["__typename"], result["code"], result["field"]) == \
        ("ValidationError", "VALIDATION_FAILED", field)


async def test_email_taken_regardless_of_case(api: Api) -> None:
    await register(api, "taken@example.com")
    result = await register(api, "TAKEN@example.com")
    assert (result["__typename"], result["code"]) == ("EmailTakenError", "EMAIL_TAKEN")


async def test_racing_registrations_give_email_taken_not_500(api: Api) -> None:
    results = await asyncio.gather(*[register(api, f"RACE{'!' * 0}@example.com".lower()
                                              if i % 2 else "race@EXAMPLE.com")
                                     for i in range(6)])
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["AuthPayload"] + ["EmailTakenError"] * 5


async def test_login_says_the_same_for_wrong_email_and_wrong_password(api: Api) -> None:
    await register(api, "known@example.com", "right-password")
    wrong_password = (await api.gql(LOGIN, {"email": "known@example.com",
                                            "password": "wrong-password"}))["login"]
    unknown_email = (await api.gql(LOGIN, {"email": "nobody@example.com",
                                           "password": "right-password"}))["login"]
    for result in (wrong_password, unknown_email):
        assert result["__typename"] == "InvalidCredentialsError"
        assert result["code"] == "INVALID_CREDENTIALS"
    assert wrong_password["message"] == unknown_email["message"]
    ok = (await api.gql(LOGIN, {"email": "KNOWN@example.com",
                                "password": "right-password"}))["login"]
    assert ok["__typename"] == "AuthPayload"


async def test_token_carries_only_subject_and_times(api: Api) -> None:
    token = (await register(api, "claims@example.com"))["token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert set(claims) == {"sub", "iat", "exp"}


def forged(claims: dict, *, secret: str = TEST_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


async def test_bad_tokens_are_unauthenticated(api: Api) -> None:
    token = (await register(api, "victim@example.com"))["token"]
    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    now = int(time.time())
    header, payload, signature = token.split(".")
    bad_tokens = {
        "garbage": "not-a-token",
        "tampered": f"{header}.{payload}.{signature[:-2]}xx",
        "expired": forged({"sub": user_id, "iat": now - 7200, "exp": now - 3600}),
        "wrong secret": forged({"sub": user_id, "iat": now, "exp": now + 3600},
                               secret="another-secret-that-is-long-enough-000000"),
        "alg none": jwt.encode({"sub": user_id, "iat": now, "exp": now + 3600}, None,
                               algorithm="none"),
        "no exp": forged({"sub": user_id, "iat": now}),
        "unknown user": forged({"sub": "999999", "iat": now, "exp": now + 3600}),
    }
    for name, bad in bad_tokens.items():
        assert await api.error_code(ME, token=bad) == "UNAUTHENTICATED", name


async def test_anonymous_and_customers_are_kept_out_of_admin_fields(api: Api) -> None:
    customer = (await register(api, "curious@example.com"))["token"]
    admin_only = [
        "{ orders { totalCount } }",
        "{ inventory { totalCount } }",
        "{ auditLog { totalCount } }",
        'mutation { createProduct(input: {sku: "x", name: "X", priceCents: 1}) '
        "{ __typename } }",
        'mutation { updateProduct(id: "1", input: {active: false}) { __typename } }',
        'mutation { setStock(productId: "1", available: 5) { __typename } }',
        'mutation { adjustStock(productId: "1", delta: 5) { __typename } }',
        'mutation { fulfillOrder(id: "1") { __typename } }',
        'mutation { setUserRole(userId: "1", role: ADMIN) { __typename } }',
    ]
    for query in admin_only:
        assert await api.error_code(query) == "UNAUTHENTICATED", query
        assert await api.error_code(query, token=customer) == "FORBIDDEN", query
    for query in ["{ myOrders { totalCount } }", '{ order(id: "1") { id } }',
                  'mutation { checkout(input: {items: [{productId: "1", quantity: 1}]}) '
                  "{ __typename } }",
                  'mutation { cancelOrder(id: "1") { __typename } }']:
        assert await api.error_code(query) == "UNAUTHENTICATED", query
    assert (await api.gql(ME))["me"] is None


async def test_admin_sets_roles_and_a_demoted_admin_loses_rights_at_once(
        api: Api, admin: str) -> None:
    other = await register(api, "deputy@example.com")
    deputy_id, deputy = other["user"]["id"], other["token"]

    promoted = await api.gql(SET_ROLE, {"userId": deputy_id, "role": "ADMIN"}, token=admin)
    assert promoted["setUserRole"]["user"]["role"] == "ADMIN"
    assert (await api.gql("{ orders { totalCount } }", token=deputy))["orders"]["totalCount"] == 0

    await api.gql(SET_ROLE, {"userId": deputy_id, "role": "CUSTOMER"}, token=admin)
    # Same token: the role is read from the database on each request.
    assert await api.error_code("{ orders { totalCount } }", token=deputy) == "FORBIDDEN"

    missing = await api.gql(SET_ROLE, {"userId": "424242", "role": "ADMIN"}, token=admin)
    assert missing["setUserRole"]["code"] == "NOT_FOUND"
    me = (await api.gql(ME, token=admin))["me"]
    own = await api.gql(SET_ROLE, {"userId": me["id"], "role": "CUSTOMER"}, token=admin)
    assert own["setUserRole"]["code"] == "VALIDATION_FAILED"

    audit = rows(api.settings.database_url,
                 "SELECT action, before, after FROM audit_log WHERE action = "
                 "'USER_ROLE_CHANGED' ORDER BY id")
    assert [(b["role"], a["role"]) for _, b, a in audit] == \
        [("CUSTOMER", "ADMIN"), ("ADMIN", "CUSTOMER")]


async def test_hashing_runs_off_the_event_loop(api: Api) -> None:
    """While a password is verified, the loop keeps serving (a verify costs 17+ ms)."""
    await register(api, "slow@example.com")
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*[api.gql(LOGIN, {"email": "slow@example.com",
                                           "password": "password123"}) for _ in range(4)])
    stop.set()
    await task
    # Four verifies of 17+ ms each; a blocked loop would tick a handful of times at most.
    assert ticks >= 20


async def test_login_rehashes_a_password_hashed_with_old_parameters(api: Api) -> None:
    from argon2 import PasswordHasher

    from tests.support import execute

    await register(api, "old-hash@example.com", "password123")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("password123")
    execute(api.settings.database_url, "UPDATE users SET password_hash = %s", (weak,))

    result = (await api.gql(LOGIN, {"email": "old-hash@example.com",
                                    "password": "password123"}))["login"]

    assert result["__typename"] == "AuthPayload"
    (stored,), = rows(api.settings.database_url, "SELECT password_hash FROM users")
    assert stored != weak
    assert ",t=2," in stored or "t=2" in stored.split("$")[3]
    assert "m=19456" in stored

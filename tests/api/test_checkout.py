"""Checkout through GraphQL: reservation, payment opening, refusals, idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe, free_port
from ordergraph.web.app import Overrides
from tests.support import (
    ORDER,
    STOCK,
    Api,
    rows,
    running_api,
    scalar,
    settings_for,
    stock_invariant_violations,
)


@pytest.fixture(params=["postgresql", "sqlite"])
async def api(request: pytest.FixtureRequest, stripe_emulator: LocalStripe
              ) -> AsyncIterator[Api]:
    """Every checkout test runs on PostgreSQL and on the embedded SQLite default."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    async with running_api(settings_for(url, stripe_api_base=stripe_emulator.api_base)) as app:
        yield app


@pytest.fixture
async def admin(api: Api) -> str:
    return await api.create_admin()


async def stock(api: Api, product_id: str, admin: str) -> tuple[int, int]:
    data = await api.gql(STOCK, {"id": product_id}, token=admin)
    level = data["product"]["stock"]
    return level["available"], level["reserved"]


async def test_checkout_reserves_stock_and_opens_a_payment(api: Api, admin: str) -> None:
    keyboard = await api.create_product(admin, sku="keyboard", price_cents=14999, stock=5)
    mouse = await api.create_product(admin, sku="mouse", price_cents=7999, stock=3)
    customer = await api.register("casey@example.com")

    result = await api.checkout(customer, [(keyboard, 2), (mouse, 1)])

    assert result["__typename"] == "CheckoutPayload", result
    order = result["order"]
    assert order["status"] == "PAYMENT_PENDING"
    assert order["total"] == {"amount": 2 * 14999 + 7999, "currency": "usd",
                              "formatted": "$379.97"}
    assert [(i["product"]["sku"], i["quantity"], i["unitPrice"]["amount"])
            for i in order["items"]] == [("keyboard", 2, 14999), ("mouse", 1, 7999)]
    assert order["reservedUntil"] is not None
    assert order["payment"]["intentId"].startswith("pi_")
    assert result["clientSecret"] == order["payment"]["clientSecret"]
    assert result["clientSecret"].startswith(order["payment"]["intentId"])
    assert order["version"] == 2  # CREATED, then PAYMENT_PENDING
    assert order["nextStatuses"] == ["PAID", "FAILED", "CANCELLED"]
    assert await stock(api, keyboard, admin) == (3, 2)
    assert await stock(api, mouse, admin) == (2, 1)

    # The intent at the provider matches the order.
    intent = await api.deps.gateway.retrieve_intent(order["payment"]["intentId"])
    assert (intent.amount, intent.currency, intent.order_id) == (37997, "usd", int(order["id"]))

    # Audit rows and ledger in the same transaction as the change.
    actions = rows(api.settings.database_url,
                   "SELECT action FROM audit_log WHERE entity_type = 'ORDER' ORDER BY id")
    assert [a for (a,) in actions] == ["ORDER_CREATED", "ORDER_STATUS_CHANGED"]
    assert stock_invariant_violations(api.settings.database_url) == []


async def test_only_the_owner_sees_the_client_secret(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="lamp", stock=5)
    owner = await api.register("owner@example.com")
    result = await api.checkout(owner, [(product, 1)])
    order_id = result["order"]["id"]

    as_owner = await api.gql(ORDER, {"id": order_id}, token=owner)
    as_admin = await api.gql(ORDER, {"id": order_id}, token=admin)

    assert as_owner["order"]["payment"]["clientSecret"] == result["clientSecret"]
    assert as_admin["order"]["payment"]["clientSecret"] is None
    assert as_admin["order"]["id"] == order_id


async def test_refused_carts_change_nothing(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="scarce", stock=3)
    hidden = await api.create_product(admin, sku="hidden", stock=3, active=False)
    customer = await api.register("picky@example.com")
    url = api.settings.database_url
    before = (scalar(url, "SELECT count(*) FROM audit_log"),
              scalar(url, "SELECT count(*) FROM stock_movements"))

    cases = [
        ([], "VALIDATION_FAILED", "items"),
        ([(product, 0)], "VALIDATION_FAILED", "items.0.quantity"),
        ([(product, -1)], "VALIDATION_FAILED", "items.0.quantity"),
        ([(product, 1001)], "VALIDATION_FAILED", "items.0.quantity"),
        ([(product, 1)] * 101, "VALIDATION_FAILED", "items"),
        ([(product, 1), ("999999", 1)], "NOT_FOUND", "items.1.productId"),
        ([("not-an-id", 1)], "NOT_FOUND", "items.0.productId"),
        ([(product, 1), (hidden, 1)], "NOT_FOUND", "items.1.productId"),
        ([(hidden, 1), (product, 4)], "NOT_FOUND", "items.0.productId"),
        ([(product, 4)], "INSUFFICIENT_STOCK", "items.0.quantity"),
        # Duplicate lines are merged before the stock check: 2 + 2 > 3.
        ([(product, 2), (product, 2)], "INSUFFICIENT_STOCK", "items.0.quantity"),
    ]
    for items, code, field in cases:
        result = await api.checkout(customer, items)
        assert (result.get("code"), result.get("field")) == (code, field), (items, result)

    merged = await api.checkout(customer, [(product, 2), (product, 2)])
    assert merged["requested"] == 4
    assert merged["available"] == 3
    assert merged["productId"] == product
    assert merged["message"] == "Only 3 left of Scarce; 4 requested."
    assert await stock(api, product, admin) == (3, 0)
    assert scalar(url, "SELECT count(*) FROM orders") == 0
    assert (scalar(url, "SELECT count(*) FROM audit_log"),
            scalar(url, "SELECT count(*) FROM stock_movements")) == before


async def test_duplicate_lines_are_merged_into_one_item(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="socks", stock=10)
    customer = await api.register("feet@example.com")
    result = await api.checkout(customer, [(product, 2), (product, 3)])
    assert [(i["product"]["id"], i["quantity"]) for i in result["order"]["items"]] == \
        [(product, 5)]
    assert await stock(api, product, admin) == (5, 5)


async def test_same_key_same_cart_returns_the_same_order(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="mug", stock=10)
    customer = await api.register("retry@example.com")

    first = await api.checkout(customer, [(product, 2)], key="cart-1")
    again = await api.checkout(customer, [(product, 1), (product, 1)], key="cart-1")
    other_cart = await api.checkout(customer, [(product, 3)], key="cart-1")

    assert again["order"]["id"] == first["order"]["id"]
    assert again["clientSecret"] == first["clientSecret"]
    assert other_cart["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await stock(api, product, admin) == (8, 2)


async def test_keys_belong_to_their_user(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="pen", stock=10)
    alice, bob = await api.customers(2)
    a = await api.checkout(alice, [(product, 1)], key="same-key")
    b = await api.checkout(bob, [(product, 1)], key="same-key")
    assert a["order"]["id"] != b["order"]["id"]


async def test_concurrent_retries_with_one_key_make_one_order(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="ticket", stock=100)
    customer = await api.register("impatient@example.com")

    results = await asyncio.gather(*[
        api.checkout(customer, [(product, 1)], key="double-click") for _ in range(8)])

    assert {r["__typename"] for r in results} == {"CheckoutPayload"}
    assert len({r["order"]["id"] for r in results}) == 1
    assert scalar(api.settings.database_url, "SELECT count(*) FROM orders") == 1
    assert await stock(api, product, admin) == (99, 1)


async def test_provider_failure_cancels_the_order_and_releases_stock(
        pg_url: str) -> None:
    dead_provider = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with running_api(settings_for(pg_url, stripe_api_base=dead_provider),
                           Overrides()) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="cable", stock=4)
        customer = await api.register("unlucky@example.com")

        result = await api.checkout(customer, [(product, 3)])

        assert result["__typename"] == "PaymentError"
        assert result["code"] == "PAYMENT_PROVIDER_ERROR"
        assert await stock(api, product, admin) == (4, 0)
        assert rows(pg_url, "SELECT status FROM orders") == [("CANCELLED",)]
        assert stock_invariant_violations(pg_url) == []

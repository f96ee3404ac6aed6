"""Shipping through GraphQL: the address (validated, kept on the order and the PaymentIntent),
the shipping cost in the totals, SHIPPING_REQUIRED, idempotency, and the default address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ordergraph.adapters.stripe.emulator import LocalStripe
from tests.support import (
    ORDER,
    PAY,
    USER_ERROR,
    Api,
    Customer,
    intent_event,
    rows,
    running_api,
    scalar,
    settings_for,
    signed_webhook,
)

FLAT = 499
FREE_OVER = 5000

ADA = {"name": "Ada Lovelace", "line1": "12 St James's Square", "line2": None,
       "city": "London", "postalCode": "SW1Y 4JH", "region": None, "country": "GB"}

RATES = "{ shippingRates { flatRate { amount currency } freeShippingOver { amount } required } }"
ME_ADDRESS = ("{ me { email defaultAddress { name line1 line2 city postalCode region "
              "country } } }")
UPDATE_DEFAULT = f"""
mutation Update($address: AddressInput) {{
  updateDefaultAddress(address: $address) {{
    __typename
    ... on UserPayload {{ user {{ id defaultAddress {{ name city country }} }} }}
    {USER_ERROR}
  }}
}}"""
CUSTOMER_ADDRESS = "query O($id: ID!) { order(id: $id) { customer { defaultAddress { city } } } }"


@pytest.fixture
async def api(pg_url: str, stripe_emulator: LocalStripe) -> AsyncIterator[Api]:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            shipping_flat_cents=FLAT, free_shipping_over_cents=FREE_OVER)
    async with running_api(settings) as app:
        yield app


@pytest.fixture
async def admin(api: Api) -> str:
    return await api.create_admin()


def address(**changes: Any) -> dict[str, Any]:
    return {**ADA, **changes}


def orders_count(api: Api) -> int:
    return int(scalar(api.settings.database_url, "SELECT count(*) FROM orders"))


async def test_the_rates_are_public(api: Api) -> None:
    data = await api.gql(RATES)
    assert data["shippingRates"] == {"flatRate": {"amount": FLAT, "currency": "usd"},
                                     "freeShippingOver": {"amount": FREE_OVER},
                                     "required": False}


@pytest.mark.parametrize(("changes", "field"), [
    ({"country": "XX"}, "shippingAddress.country"),       # not an assigned code
    ({"country": "USA"}, "shippingAddress.country"),      # alpha-3 is not alpha-2
    ({"country": ""}, "shippingAddress.country"),
    ({"name": "   "}, "shippingAddress.name"),
    ({"line1": ""}, "shippingAddress.line1"),
    ({"city": "x" * 101}, "shippingAddress.city"),
    ({"postalCode": "1" * 21}, "shippingAddress.postalCode"),
    ({"line2": "y" * 201}, "shippingAddress.line2"),
    ({"region": "r" * 101}, "shippingAddress.region"),
    # Control characters (a NUL, in any string input, is refused before this: test_garbage.py)
    ({"line1": "1 Main St\x07"}, "shippingAddress.line1"),
    ({"city": "Town\x1b[0m"}, "shippingAddress.city"),
])
async def test_a_bad_address_is_refused_with_its_path_and_changes_nothing(
        api: Api, admin: str, changes: dict[str, Any], field: str) -> None:
    product = await api.create_product(admin, sku="kettle", stock=3)
    customer = await api.register("bad-address@example.com")

    result = await api.checkout(customer, [(product, 1)], address=address(**changes))

    assert (result["__typename"], result["code"], result["field"]) == \
        ("ValidationError", "VALIDATION_FAILED", field), result
    assert orders_count(api) == 0
    assert rows(api.settings.database_url,
                "SELECT available, reserved FROM inventory") == [(3, 0)]


async def test_the_address_is_normalised_and_kept_on_the_order_and_the_intent(
        api: Api, admin: str, customer_side: Customer) -> None:
    product = await api.create_product(admin, sku="globe", price_cents=2000, stock=3)
    customer = await api.register("ada@example.com")

    result = await api.checkout(customer, [(product, 1)], address=address(
        name="  Ada   Lovelace ", line2="  ", region=" Greater  London", country=" gb "))

    assert result["__typename"] == "CheckoutPayload", result
    order = result["order"]
    expected = {**ADA, "region": "Greater London"}  # blank line2 is none at all
    assert order["shippingAddress"] == expected
    # Stored as a snapshot: read again, the same.
    again = (await api.gql(ORDER, {"id": order["id"]}, token=admin))["order"]
    assert again["shippingAddress"] == expected

    intent = await customer_side.intent(order["payment"]["intentId"])
    assert intent["amount"] == order["total"]["amount"] == 2000 + FLAT
    assert intent["receipt_email"] == "ada@example.com"
    assert intent["shipping"] == {"name": "Ada Lovelace", "address": {
        "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH",
        "state": "Greater London", "country": "GB"}}


@pytest.mark.parametrize(("price", "quantity", "shipping"), [
    (FREE_OVER - 1, 1, FLAT),    # one cent under the threshold: the flat rate
    (FREE_OVER, 1, 0),           # exactly at it: free
    (FREE_OVER // 2, 2, 0),      # reached by quantity
    (1200, 1, FLAT),
])
async def test_the_totals_are_subtotal_plus_shipping(
        api: Api, admin: str, price: int, quantity: int, shipping: int) -> None:
    product = await api.create_product(admin, sku="lamp", price_cents=price, stock=5)
    customer = await api.register("totals@example.com")

    order = (await api.checkout(customer, [(product, quantity)], address=ADA))["order"]

    subtotal = price * quantity
    assert (order["subtotal"]["amount"], order["shipping"]["amount"],
            order["total"]["amount"]) == (subtotal, shipping, subtotal + shipping)
    intent = await api.deps.gateway.retrieve_intent(order["payment"]["intentId"])
    assert intent.amount == subtotal + shipping
    assert rows(api.settings.database_url,
                "SELECT subtotal_cents, shipping_cents, total_cents FROM orders") == \
        [(subtotal, shipping, subtotal + shipping)]


async def test_an_order_without_an_address_pays_no_shipping(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="ebook", price_cents=1200, stock=5)
    customer = await api.register("digital@example.com")

    order = (await api.checkout(customer, [(product, 1)]))["order"]

    assert order["shippingAddress"] is None
    assert (order["subtotal"]["amount"], order["shipping"]["amount"],
            order["total"]["amount"]) == (1200, 0, 1200)


async def test_paying_the_total_with_shipping_makes_the_order_paid(
        api: Api, admin: str, customer_side: Customer) -> None:
    """The finalizer's amount check compares the capture with subtotal + shipping."""
    product = await api.create_product(admin, sku="vase", price_cents=1500, stock=2)
    customer = await api.register("payer@example.com")
    order = (await api.checkout(customer, [(product, 1)], address=ADA))["order"]

    card = await customer_side.card("4242424242424242")
    paid = (await api.gql(PAY, {"id": order["id"], "pm": card}, token=customer))["payOrder"]

    assert paid["order"]["status"] == "PAID", paid
    assert paid["order"]["total"]["amount"] == 1500 + FLAT


async def test_the_webhook_of_a_capture_of_subtotal_plus_shipping_makes_it_paid(
        api: Api, admin: str, customer_side: Customer) -> None:
    product = await api.create_product(admin, sku="clock", price_cents=2200, stock=2)
    customer = await api.register("browser@example.com")
    order = (await api.checkout(customer, [(product, 1)], address=ADA))["order"]
    intent_id = order["payment"]["intentId"]
    await customer_side.pay_directly(intent_id)  # Stripe.js in the browser

    body, headers = signed_webhook(intent_event("payment_intent.succeeded",
                                                await customer_side.intent(intent_id)))
    response = await api.client.post("/webhooks/stripe", content=body, headers=headers)

    assert response.status_code == 200, response.text
    paid = (await api.gql(ORDER, {"id": order["id"]}, token=customer))["order"]
    assert (paid["status"], paid["total"]["amount"]) == ("PAID", 2200 + FLAT)


async def test_shipping_required_refuses_a_checkout_without_an_address(
        pg_url: str, stripe_emulator: LocalStripe) -> None:
    settings = settings_for(pg_url, stripe_api_base=stripe_emulator.api_base,
                            shipping_required=True)
    async with running_api(settings) as api:
        admin = await api.create_admin()
        product = await api.create_product(admin, sku="chair", stock=2)
        customer = await api.register("required@example.com")
        assert (await api.gql(RATES))["shippingRates"]["required"] is True

        refused = await api.checkout(customer, [(product, 1)])
        assert (refused["__typename"], refused["code"], refused["field"]) == \
            ("ValidationError", "VALIDATION_FAILED", "shippingAddress")
        assert orders_count(api) == 0

        accepted = await api.checkout(customer, [(product, 1)], address=ADA)
        assert accepted["__typename"] == "CheckoutPayload", accepted
        # Flat rate 0 by default: shipping is free.
        assert accepted["order"]["shipping"]["amount"] == 0


async def test_the_same_key_with_another_address_is_another_cart(api: Api, admin: str) -> None:
    product = await api.create_product(admin, sku="rug", stock=5)
    customer = await api.register("twice@example.com")

    first = await api.checkout(customer, [(product, 1)], key="k-1", address=ADA)
    assert first["__typename"] == "CheckoutPayload", first
    # The same address written differently is the same address: the same order.
    same = await api.checkout(customer, [(product, 1)], key="k-1",
                              address=address(name="ada   lovelace".title(), country="gb"))
    assert same["__typename"] == "CheckoutPayload", same
    assert same["order"]["id"] == first["order"]["id"]

    for other in (address(city="Paris", country="FR"), None):
        refused = await api.checkout(customer, [(product, 1)], key="k-1", address=other)
        assert (refused["__typename"], refused["code"]) == \
            ("IdempotencyConflictError", "IDEMPOTENCY_KEY_REUSED"), refused
    # A key first used without an address refuses one with it, too.
    plain = await api.checkout(customer, [(product, 1)], key="k-2")
    assert plain["__typename"] == "CheckoutPayload", plain
    refused = await api.checkout(customer, [(product, 1)], key="k-2", address=ADA)
    assert refused["__typename"] == "IdempotencyConflictError", refused
    assert orders_count(api) == 2


async def test_a_customer_keeps_a_default_address_only_they_see(api: Api, admin: str) -> None:
    customer = await api.register("home@example.com")
    assert (await api.gql(ME_ADDRESS, token=customer))["me"]["defaultAddress"] is None

    bad = (await api.gql(UPDATE_DEFAULT, {"address": address(country="Britain")},
                         token=customer))["updateDefaultAddress"]
    assert (bad["__typename"], bad["field"]) == ("ValidationError", "address.country")

    saved = (await api.gql(UPDATE_DEFAULT, {"address": address(country="gb")},
                           token=customer))["updateDefaultAddress"]
    assert saved["__typename"] == "UserPayload", saved
    assert saved["user"]["defaultAddress"] == {"name": "Ada Lovelace", "city": "London",
                                               "country": "GB"}
    assert (await api.gql(ME_ADDRESS, token=customer))["me"]["defaultAddress"] == ADA

    moved = (await api.gql(UPDATE_DEFAULT, {"address": address(city="Bath", postalCode="BA1")},
                           token=customer))["updateDefaultAddress"]
    assert moved["user"]["defaultAddress"]["city"] == "Bath"

    # An admin sees where an order ships, not the customer's saved address.
    product = await api.create_product(admin, sku="map", stock=2)
    order = (await api.checkout(customer, [(product, 1)], address=ADA))["order"]
    seen = await api.gql(CUSTOMER_ADDRESS, {"id": order["id"]}, token=admin)
    assert seen["order"]["customer"]["defaultAddress"] is None
    # Changing the default later changes no order.
    cleared = (await api.gql(UPDATE_DEFAULT, {"address": None},
                             token=customer))["updateDefaultAddress"]
    assert cleared["user"]["defaultAddress"] is None
    assert (await api.gql(ORDER, {"id": order["id"]}, token=customer))["order"][
        "shippingAddress"]["city"] == "London"
    assert await api.error_code(UPDATE_DEFAULT, {"address": ADA}) == "UNAUTHENTICATED"

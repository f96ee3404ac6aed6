"""A declined card: the error is shown, the cart is kept, the reserved stock is released."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.support import (
    CARD_DECLINED,
    CARD_OK,
    CUSTOMER,
    Browsing,
    Shop,
    add_to_cart,
    fill_address,
    fill_card,
    log_in,
)

pytestmark = pytest.mark.e2e

MONITOR = "4"


def test_declined_card_keeps_the_cart_and_releases_stock(shop: Shop, browse: Browsing) -> None:
    before = shop.stock(MONITOR)
    page = browse.page()
    log_in(page, shop, *CUSTOMER)
    add_to_cart(page, "4K Monitor", 2)
    page.goto(f"{shop.base}/#/checkout")
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    fill_address(page, name="Kim Doe", line1="Hauptstraße 5", city="Berlin", postal_code="10115",
                 country="DE")
    # $799.98 is over the free-shipping threshold.
    expect(page.get_by_role("region", name="Order summary").locator("[data-shipping]")) \
        .to_have_text("Free")
    fill_card(page, CARD_DECLINED)
    page.get_by_role("button", name="Pay $799.98").click()

    # The decline is said next to the card field; the form and the cart stay.
    expect(page.locator("#card-errors")).to_contain_text("declined")
    expect(page).to_have_url(re.compile(r"#/checkout$"))
    expect(page.get_by_role("button", name="Pay $799.98")).to_be_enabled()
    summary = page.get_by_role("region", name="Order summary")
    expect(summary).to_contain_text("4K Monitor")
    expect(summary).to_contain_text("2 \u00d7 $399.99")
    expect(page.locator("#cart-link [data-cart-count]")).to_have_text("2")
    browse.screenshot(page, "checkout-declined")

    # The failed order gave its stock back at once.
    deadline = time.monotonic() + 10
    while shop.stock(MONITOR) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shop.stock(MONITOR) == before == {"available": 25, "reserved": 0}

    # The cart is still there after a reload, the address filled in from the default the
    # first attempt saved; another card pays for a new order.
    page.reload()
    expect(page.locator("#cart-link [data-cart-count]")).to_have_text("2")
    address = page.get_by_role("group", name="Shipping address")
    expect(address.get_by_label("Full name")).to_have_value("Kim Doe")
    expect(address.get_by_label("Address", exact=True)).to_have_value("Hauptstraße 5")
    expect(address.get_by_label("Country")).to_have_value("DE")
    fill_card(page, CARD_OK)
    page.get_by_role("button", name="Pay $799.98").click()
    expect(page.locator("#order-status")).to_have_text("Paid")
    assert shop.stock(MONITOR) == {"available": 23, "reserved": 0}

    # My orders: the failed attempt and the paid order.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My orders").click()
    expect(page.locator(".order-list .pill")).to_have_text(["Paid", "Failed"])
    browse.assert_clean()

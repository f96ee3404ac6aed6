"""A new customer registers, buys two products, and watches the order change live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.support import (
    ADMIN,
    CARD_OK,
    Browsing,
    Shop,
    add_to_cart,
    assert_not_reloaded,
    fill_address,
    fill_card,
    log_in,
    mark_no_reload,
)

pytestmark = pytest.mark.e2e


def test_register_buy_pay_and_see_paid_then_fulfilled_live(shop: Shop, browse: Browsing) -> None:
    page = browse.page()
    page.goto(f"{shop.base}/#/register")
    page.get_by_label("Name").fill("Grace Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill("a-good-password")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Shop")).to_be_visible()
    expect(page.locator("#account")).to_contain_text("Grace Hopper")

    # The catalog: prices from cents, live stock badges.
    keyboard = page.get_by_role("article", name="Mechanical Keyboard")
    expect(keyboard).to_contain_text("$149.99")
    expect(keyboard.locator(".badge")).to_have_text("In stock")
    browse.screenshot(page, "catalog")
    add_to_cart(page, "Mechanical Keyboard")
    add_to_cart(page, "Wireless Mouse", 2)
    expect(page.locator("#cart-link [data-cart-count]")).to_have_text("3")

    # The cart survives a reload.
    page.reload()
    expect(page.locator("#cart-link [data-cart-count]")).to_have_text("3")
    page.locator("#cart-link").click()
    expect(page.get_by_role("heading", name="Cart")).to_be_visible()
    # Shipping is shown before paying: $4.99 under $500, and what is missing to ship free.
    summary = page.get_by_role("complementary", name="Summary")
    expect(summary.locator("[data-subtotal]")).to_have_text("$309.97")
    expect(summary.locator("[data-shipping]")).to_have_text("$4.99")
    expect(summary.locator("[data-total]")).to_have_text("$314.96")
    expect(summary.locator("[data-free-shipping-hint]")).to_contain_text("add $190.03 more")
    page.get_by_role("button", name="Checkout").click()

    # Checkout: the address first; a missing part is said next to it, nothing is sent.
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    expect(page.get_by_role("region", name="Order summary").locator("[data-shipping]")) \
        .to_have_text("$4.99")
    fill_card(page, CARD_OK)
    pay = page.get_by_role("button", name="Pay $314.96")
    expect(pay).to_be_enabled()
    address = page.get_by_role("group", name="Shipping address")
    fill_address(page, name="Grace Hopper", line1="", city="Arlington", postal_code="22201",
                 region="VA", country="US")
    pay.click()
    line1 = address.get_by_label("Address", exact=True)
    expect(line1).to_have_attribute("aria-invalid", "true")
    expect(line1).to_be_focused()
    expect(address).to_contain_text("This is required.")
    # A part the server refuses (a control character) comes back next to its field.
    fill_address(page, name="Grace\u0007Hopper", line1="1 Navy Way", city="Arlington",
                 postal_code="22201", region="VA", country="US")
    pay.click()
    name_field = address.get_by_label("Full name")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#checkout-error")).to_have_text("Check the shipping address.")
    name_field.fill("Grace Hopper")
    browse.screenshot(page, "checkout")
    pay.click()

    # The order page: PAID, with its items, totals, address and timeline.
    expect(page).to_have_url(re.compile(r"#/orders/\d+$"))
    order_id = page.url.rsplit("/", 1)[1]
    status = page.locator("#order-status")
    expect(status).to_have_text("Paid")
    expect(page.locator("[data-order-subtotal]")).to_have_text("$309.97")
    expect(page.locator("[data-order-shipping]")).to_have_text("$4.99")
    expect(page.locator("[data-order-total]")).to_have_text("$314.96")
    shipped_to = page.locator("[data-address]")
    expect(shipped_to).to_contain_text("Grace Hopper")
    expect(shipped_to).to_contain_text("1 Navy Way")
    expect(shipped_to).to_contain_text("22201 Arlington")
    expect(shipped_to).to_contain_text("United States")
    expect(page.get_by_role("table")).to_contain_text("Wireless Mouse")
    expect(page.locator(".timeline")).to_contain_text("Payment succeeded")
    expect(page.locator("#cart-link [data-cart-count]")).to_have_text("0")
    mark_no_reload(page)
    browse.screenshot(page, "order")

    # An admin, in a second browser context, fulfils it from the live board.
    admin = browse.page()
    log_in(admin, shop, *ADMIN, next_path="/admin")
    card = admin.locator(f'[data-column="paid"] [data-order-id="{order_id}"]')
    expect(card).to_contain_text("grace@example.com")
    expect(card.locator("[data-address]")).to_have_text(
        "Ship to Grace Hopper, Arlington, United States")
    browse.screenshot(admin, "admin-board")
    shop.wait_for_live_subscriptions(2)  # the order page's orderUpdated, the board's orderEvents
    card.get_by_role("button", name=re.compile(r"^Fulfil order")).click()
    admin.get_by_role("dialog").get_by_role("button", name="Fulfil order").click()
    expect(admin.locator(f'[data-column="fulfilled"] [data-order-id="{order_id}"]')).to_be_visible()

    # The customer's page turns FULFILLED by itself.
    expect(status).to_have_text("Fulfilled")
    expect(page.locator(".timeline li").last).to_contain_text("Fulfilled")
    assert_not_reloaded(page)
    browse.screenshot(page, "order-fulfilled")

    # And "My orders" lists it with its status.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My orders").click()
    listed = page.get_by_role("link", name=re.compile(r"Order #\d+, Fulfilled, \$314\.96"))
    expect(listed).to_be_visible()
    browse.assert_clean()

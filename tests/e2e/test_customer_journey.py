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
    expect(page.get_by_role("complementary", name="Summary")).to_contain_text("$309.97")
    page.get_by_role("button", name="Checkout").click()

    # Checkout: the card field comes from the Stripe.js that paymentConfig names.
    expect(page.get_by_role("heading", name="Checkout")).to_be_visible()
    fill_card(page, CARD_OK)
    pay = page.get_by_role("button", name="Pay $309.97")
    expect(pay).to_be_enabled()
    browse.screenshot(page, "checkout")
    pay.click()

    # The order page: PAID, with its items, total and timeline.
    expect(page).to_have_url(re.compile(r"#/orders/\d+$"))
    order_id = page.url.rsplit("/", 1)[1]
    status = page.locator("#order-status")
    expect(status).to_have_text("Paid")
    expect(page.locator("[data-order-total]")).to_have_text("$309.97")
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
    listed = page.get_by_role("link", name=re.compile(r"Order #\d+, Fulfilled, \$309\.97"))
    expect(listed).to_be_visible()
    browse.assert_clean()

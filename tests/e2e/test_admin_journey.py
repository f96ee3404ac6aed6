"""An admin's board and inventory are live: new orders slide in, stock edits reach shoppers."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.support import (
    ADMIN,
    CUSTOMER,
    Browsing,
    Shop,
    assert_not_reloaded,
    log_in,
    mark_no_reload,
)

pytestmark = pytest.mark.e2e

WEBCAM = "5"


def test_board_gets_new_orders_and_stock_edits_reach_the_catalog(shop: Shop,
                                                                  browse: Browsing) -> None:
    # A shopper on a phone, not logged in, looking at the catalog.
    shopper = browse.page(width=360, height=780)
    shopper.goto(f"{shop.base}/#/")
    webcam = shopper.get_by_role("article", name="HD Webcam")
    expect(webcam.locator(".badge")).to_have_text("In stock")
    assert shopper.evaluate("document.documentElement.scrollWidth") <= 360
    mark_no_reload(shopper)
    shop.wait_for_live_subscriptions(1)  # the catalog's stockUpdated

    # The admin's live order board.
    admin = browse.page()
    log_in(admin, shop, *ADMIN, next_path="/admin")
    expect(admin.get_by_role("heading", name="Orders")).to_be_visible()
    expect(admin.locator("#live-indicator")).to_have_text("Live")
    shop.wait_for_live_subscriptions(2)  # ... and the board's orderEvents
    mark_no_reload(admin)

    # A customer orders (through the API, like any client): the order slides in.
    token = shop.login(*CUSTOMER)
    order = shop.checkout(token, [(WEBCAM, 2)])
    pending = admin.locator(f'[data-column="pending"] [data-order-id="{order["id"]}"]')
    expect(pending).to_contain_text("Payment pending")
    expect(pending).to_contain_text("customer@example.com")
    expect(pending).to_contain_text("$179.98")
    # ... and moves to "To fulfil" once paid.
    assert shop.pay(token, order["id"])["order"]["status"] == "PAID"
    expect(admin.locator(f'[data-column="paid"] [data-order-id="{order["id"]}"]')).to_be_visible()
    expect(pending).to_have_count(0)
    assert_not_reloaded(admin)
    browse.screenshot(admin, "admin-board")

    # Inventory: set and adjust with a reason; the shopper's badge follows live.
    admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Inventory").click()
    row = admin.locator(f'tr[data-product-id="{WEBCAM}"]')
    expect(row.locator('[data-col="available"]')).to_have_text("58")
    row.get_by_label("Set available stock of HD Webcam").fill("3")
    row.get_by_role("button", name="Set").click()
    expect(row.locator('[data-col="available"]')).to_have_text("3")
    expect(webcam.locator(".badge")).to_have_text("Only 3 left")

    row.get_by_label("Change in stock of HD Webcam (plus or minus)").fill("-3")
    row.get_by_label("Reason for the change to HD Webcam").fill("water damage")
    row.get_by_role("button", name="Adjust").click()
    expect(row.locator('[data-col="available"]')).to_have_text("0")
    expect(webcam.locator(".badge")).to_have_text("Sold out")
    expect(webcam.get_by_role("button", name="Sold out")).to_be_disabled()
    assert_not_reloaded(shopper)
    browse.screenshot(admin, "admin-inventory")
    browse.screenshot(shopper, "catalog-phone")

    # The audit log has the adjustment, with its reason.
    admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    admin.get_by_label("Entity type").select_option("INVENTORY")
    admin.get_by_role("button", name="Apply").click()
    first = admin.locator("tbody tr").first
    expect(first).to_contain_text("STOCK_ADJUSTED")
    expect(first).to_contain_text("water damage")
    expect(first).to_contain_text("admin@example.com")
    browse.screenshot(admin, "admin-audit")
    browse.assert_clean()

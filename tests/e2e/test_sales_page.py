"""The admins' Sales page: the report's numbers, live as orders are paid, on a phone too."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

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

WEBCAM = "5"  # seeded at $89.99, 60 in stock


def dismiss_toasts(page: Page) -> None:
    """The welcome toast would cover the charts in the screenshot."""
    for button in page.locator('#toasts button[aria-label="Dismiss"]').all():
        button.click()


def test_sales_page_shows_the_report_and_follows_payments(shop: Shop,
                                                          browse: Browsing) -> None:
    # One paid order of two webcams and one checkout left unpaid, before the admin looks.
    customer = shop.login(*CUSTOMER)
    first = shop.checkout(customer, [(WEBCAM, 2)])
    assert shop.pay(customer, first["id"])["order"]["status"] == "PAID"
    second = shop.checkout(customer, [(WEBCAM, 1)])

    # The admin opens Sales from the admin navigation, on a phone.
    admin = browse.page(width=360, height=780)
    log_in(admin, shop, *ADMIN, next_path="/admin")
    admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Sales").click()
    expect(admin.get_by_role("heading", name="Sales", exact=True)).to_be_visible()
    revenue = admin.locator('[data-kpi="revenue"] .kpi-value')
    expect(revenue).to_have_text("$179.98")
    expect(admin.locator('[data-kpi="orders-paid"] .kpi-value')).to_have_text("1")
    expect(admin.locator('[data-kpi="average"] .kpi-value')).to_have_text("$179.98")
    expect(admin.locator('[data-kpi="conversion"] .kpi-value')).to_have_text("50%")
    expect(admin.locator("[data-conversion]")).to_contain_text("1 of 2 checkouts paid")
    top = admin.get_by_role("region", name="Top products by units")
    expect(top).to_contain_text("HD Webcam")
    expect(top).to_contain_text("2 sold")
    expect(admin.locator('[data-chart="revenue"] svg rect')).to_have_count(7)
    assert admin.evaluate("document.documentElement.scrollWidth") <= 360
    shop.wait_for_live_subscriptions(1)  # the page's orderEvents
    mark_no_reload(admin)

    # The second checkout is paid: the numbers follow without a reload.
    assert shop.pay(customer, second["id"])["order"]["status"] == "PAID"
    expect(revenue).to_have_text("$269.97")
    expect(admin.locator('[data-kpi="orders-paid"] .kpi-value')).to_have_text("2")
    expect(admin.locator('[data-kpi="conversion"] .kpi-value')).to_have_text("100%")
    expect(top).to_contain_text("3 sold")
    running_out = admin.get_by_role("region", name="Running out at this rate")
    expect(running_out).to_contain_text("57 available")
    assert_not_reloaded(admin)
    dismiss_toasts(admin)
    browse.screenshot(admin, "admin-sales-phone")

    # The same page on a wide screen, with the hourly window.
    wide = browse.page()
    log_in(wide, shop, *ADMIN, next_path="/admin/sales")
    expect(wide.locator('[data-kpi="revenue"] .kpi-value')).to_have_text("$269.97")
    wide.get_by_label("Window").select_option(label="Last 24 hours")
    expect(wide.locator('[data-chart="revenue"] svg rect')).to_have_count(24)
    expect(wide.locator('[data-kpi="revenue"] .kpi-value')).to_have_text("$269.97")
    dismiss_toasts(wide)
    browse.screenshot(wide, "admin-sales")
    browse.assert_clean()

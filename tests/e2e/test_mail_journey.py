"""A customer buys and gets the confirmation, forgets the password, resets it from the
emailed link and logs in; a used link is refused. Email goes over SMTP to the server's own
sink (local mail mode), read on the admin Mail page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import (
    ADMIN,
    CARD_OK,
    Browsing,
    Shop,
    add_to_cart,
    fill_address,
    fill_card,
    log_in,
)

pytestmark = pytest.mark.e2e


def open_mail(admin: Page, subject: str) -> None:
    """The Mail page polls: wait for the message, then open it."""
    item = admin.locator("details.mail-item", has_text=subject).first
    expect(item).to_be_visible(timeout=15_000)
    item.locator("summary").first.click()


def test_buy_get_the_confirmation_forget_and_reset_the_password(shop: Shop,
                                                                browse: Browsing) -> None:
    page = browse.page()
    page.goto(f"{shop.base}/#/register")
    page.get_by_label("Name").fill("Ada Lovelace")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("first-password")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Shop")).to_be_visible()
    add_to_cart(page, "Wireless Mouse")
    page.locator("#cart-link").click()
    page.get_by_role("button", name="Checkout").click()
    fill_address(page, name="Ada Lovelace", line1="12 St James's Square", city="London",
                 postal_code="SW1Y 4JH", country="GB")
    fill_card(page, CARD_OK)
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    expect(page.locator("#order-status")).to_have_text("Paid")
    order_id = page.url.rsplit("/", 1)[1]

    # The confirmation, as the local SMTP sink received it.
    admin = browse.page()
    log_in(admin, shop, *ADMIN, next_path="/admin/mail")
    expect(admin.get_by_role("heading", name="Mail", exact=True)).to_be_visible()
    expect(admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Mail")
           ).to_be_visible()
    open_mail(admin, f"Order #{order_id} confirmed")
    confirmation = admin.locator("details.mail-item", has_text=f"Order #{order_id} confirmed")
    expect(confirmation).to_contain_text("to ada@example.com")
    expect(confirmation.locator(".mail-text")).to_contain_text("1 x Wireless Mouse")
    expect(confirmation.locator(".mail-text")).to_contain_text("Hello Ada Lovelace,")
    expect(confirmation.locator(".mail-text")).to_contain_text("Shipping: $4.99")
    expect(confirmation.locator(".mail-text")).to_contain_text("SW1Y 4JH London")
    # The HTML version keeps its inline styles under the page's CSP (put back through the CSSOM).
    confirmation.get_by_text("HTML version").click()
    html = confirmation.frame_locator("iframe.mail-html")
    expect(html.locator("table")).to_contain_text("Wireless Mouse")
    expect(html.locator("table")).to_have_css("border-collapse", "collapse")
    browse.screenshot(admin, "mail-confirmation")

    # Forgotten: log out, "Forgot password?" on the login page.
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{shop.base}/#/login")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_role("button", name="Email me a link").click()
    expect(page.locator(".auth .form-note")).to_contain_text(
        "If an account exists for ada@example.com")
    browse.screenshot(page, "forgot-password")

    open_mail(admin, "Reset your password")
    reset_mail = admin.locator("details.mail-item", has_text="Reset your password").first
    link = reset_mail.locator('.mail-text a[href*="/#/reset-password?token="]')
    href = link.get_attribute("href")
    assert href is not None
    assert href.startswith(f"{shop.base}/#/reset-password?token="), href
    browse.screenshot(admin, "mail-reset")

    # The emailed link: a new password, and logged in with it.
    page.goto(href)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password").fill("short")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator(".field-error").first).to_contain_text("8")
    page.get_by_label("New password").fill("second-password")
    browse.screenshot(page, "reset-password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.locator("#account")).to_contain_text("Ada Lovelace")

    # Logs in with the new password later on.
    page.get_by_role("button", name="Log out").click()
    log_in(page, shop, "ada@example.com", "second-password")

    # The same link again: refused, with a way to ask for a new one.
    page.goto(href)
    page.get_by_label("New password").fill("third-password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert").first).to_contain_text("not valid any more")
    expect(page.get_by_role("link", name="Ask for a new one")).to_be_visible()
    browse.assert_clean()

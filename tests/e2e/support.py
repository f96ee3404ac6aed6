"""What the end-to-end tests share: the served app, browser pages that must stay clean, steps.

The app is started as a user starts it (see conftest.py); pages fail their test on any console
error or unhandled promise rejection; screenshots go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ORDERGRAPH = [sys.executable, "-m", "ordergraph.cli"]

CUSTOMER = ("customer@example.com", "customer123")
ADMIN = ("admin@example.com", "admin123")
CARD_OK = "4242424242424242"
SHIPPING_FLAT_CENTS = 499
FREE_SHIPPING_OVER_CENTS = 50000
CARD_DECLINED = "4000000000000341"

# Unhandled rejections and Content-Security-Policy violations also reach the console as
# errors, whatever the browser reports by itself (a blocked inline style is only a warning).
REPORT_REJECTIONS = """
window.addEventListener('unhandledrejection', (event) => {
  const reason = event.reason;
  console.error('unhandledrejection: ' + (reason && reason.stack ? reason.stack : String(reason)));
});
document.addEventListener('securitypolicyviolation', (event) => {
  console.error('CSP violation: ' + event.violatedDirective + ' refused ' +
                (event.blockedURI || 'inline') + ' in ' + event.sourceFile + ':' +
                event.lineNumber);
});
"""

expect.set_options(timeout=10_000)

# ---- the app -----------------------------------------------------------------------------

@dataclass
class Shop:
    """The served app: its address, plus the public API for checks a browser cannot make."""

    base: str
    database_url: str
    log: Path

    def gql(self, document: str, variables: dict[str, Any] | None = None,
            token: str | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{self.base}/graphql", headers=headers, timeout=20,
                              json={"query": document, "variables": variables or {}})
        body = response.json()
        assert not body.get("errors"), body
        return body["data"]

    def login(self, email: str, password: str) -> str:
        data = self.gql("mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
                        "{ __typename ... on AuthPayload { token } } }",
                        {"e": email, "p": password})
        return data["login"]["token"]

    def stock(self, product_id: str) -> dict[str, int]:
        """available and reserved, as an admin sees them."""
        data = self.gql('query($id: ID!) { product(id: $id) { stock { available reserved } } }',
                        {"id": product_id}, token=self.login(*ADMIN))
        return data["product"]["stock"]

    def wait_for_live_subscriptions(self, at_least: int, timeout: float = 10) -> None:
        """Until the server holds this many subscriptions (ordergraph_live_subscriptions).

        A subscription without a SNAPSHOT (orderEvents) gives a page no sign that the server
        has registered it; the metric does, so no event is published before anyone listens.
        """
        deadline = time.monotonic() + timeout
        count = None
        while time.monotonic() < deadline:
            text = httpx.get(f"{self.base}/metrics", timeout=5).text
            match = re.search(r"^ordergraph_live_subscriptions (\S+)$", text, re.M)
            if match is None:
                time.sleep(1)  # no such metric in this build: give the socket a moment
                return
            count = float(match.group(1))
            if count >= at_least:
                return
            time.sleep(0.05)
        raise AssertionError(f"{count} live subscriptions, expected at least {at_least}")

    def checkout(self, token: str, items: list[tuple[str, int]]) -> dict[str, Any]:
        data = self.gql(
            "mutation($input: CheckoutInput!) { checkout(input: $input) { __typename "
            "... on CheckoutPayload { order { id number status } } } }",
            {"input": {"items": [{"productId": p, "quantity": q} for p, q in items]}},
            token=token)
        assert data["checkout"]["__typename"] == "CheckoutPayload", data
        return data["checkout"]["order"]

    def pay(self, token: str, order_id: str, number: str = CARD_OK) -> dict[str, Any]:
        """What Stripe.js does (a card token at the emulator), then payOrder."""
        config = self.gql("{ paymentConfig { stripeJsUrl publishableKey } }")["paymentConfig"]
        emulator = config["stripeJsUrl"].removesuffix("/js.stripe.com/v3/")
        card = httpx.post(f"{emulator}/v1/tokens", timeout=20, data={
            "card[number]": number, "card[exp_month]": "12", "card[exp_year]": "2034",
            "card[cvc]": "123", "key": config["publishableKey"]}).json()
        data = self.gql(
            "mutation($id: ID!, $pm: String!) { payOrder(id: $id, paymentMethodId: $pm) "
            "{ __typename ... on PayOrderPayload { order { status } } } }",
            {"id": order_id, "pm": card["card"]["id"]}, token=token)
        return data["payOrder"]


# ---- the browser ---------------------------------------------------------------------------

@dataclass
class Browsing:
    """Browser contexts (one per person) whose pages must stay free of errors."""

    browser: Browser
    name: str
    contexts: list[BrowserContext] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def page(self, *, width: int = 1280, height: int = 860) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           locale="en-US", timezone_id="UTC")
        context.set_default_timeout(15_000)
        context.add_init_script(REPORT_REJECTIONS)
        self.contexts.append(context)
        page = context.new_page()
        who = f"page {len(self.pages) + 1}"
        page.on("console", lambda message: self.errors.append(
            f"{who}: console.error: {message.text} at {message.location.get('url')}")
            if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(f"{who}: uncaught: {error}"))
        page.on("response", lambda response: self._check_policy(who, response))
        self.pages.append(page)
        return page

    def _check_policy(self, who: str, response: Response) -> None:
        """Every page of ours runs under its Content-Security-Policy."""
        if response.request.resource_type == "document" and \
                "content-security-policy" not in response.headers:
            self.errors.append(f"{who}: no Content-Security-Policy on {response.url}")

    def screenshot(self, page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.errors == [], "the browser reported errors:\n" + "\n".join(self.errors)

    def close(self, failed: bool) -> None:
        if failed:
            for number, page in enumerate(self.pages, 1):
                if not page.is_closed():
                    self.screenshot(page, f"failed-{self.name}-page{number}")
        for context in self.contexts:
            context.close()



# ---- steps shared by the journeys ---------------------------------------------------------

def log_in(page: Page, shop: Shop, email: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{shop.base}/#/login?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def add_to_cart(page: Page, product: str, quantity: int = 1) -> None:
    count = page.locator("#cart-link [data-cart-count]")
    before = int(count.inner_text())
    card = page.get_by_role("article", name=product)
    if quantity != 1:
        card.get_by_label(f"Quantity of {product}").fill(str(quantity))
    card.get_by_role("button", name="Add to cart").click()
    expect(count).to_have_text(str(before + quantity))


def fill_card(page: Page, number: str) -> None:
    """The card field; in local payments mode it is the emulator's Stripe.js stand-in."""
    field_ = page.locator("#card-element")
    field_.get_by_label("Card number").fill(number)
    field_.get_by_label("Expiry month (MM)").fill("12")
    field_.get_by_label("Expiry year (YY)").fill("34")
    field_.get_by_label("Security code (CVC)").fill("123")
    field_.get_by_label("Postal code").fill("10001")


def fill_address(page: Page, *, name: str, line1: str, city: str, postal_code: str,
                 country: str, line2: str = "", region: str = "") -> None:
    """The checkout page's shipping address, typed as a customer does."""
    form = page.get_by_role("group", name="Shipping address")
    form.get_by_label("Full name").fill(name)
    form.get_by_label("Address", exact=True).fill(line1)
    form.get_by_label("Apartment, suite, etc. (optional)").fill(line2)
    form.get_by_label("City").fill(city)
    form.get_by_label("Postal code").fill(postal_code)
    form.get_by_label("State, province or region (optional)").fill(region)
    form.get_by_label("Country").select_option(country)


def mark_no_reload(page: Page) -> None:
    """A flag that a reload or navigation away would wipe."""
    page.evaluate("window.__stillTheSamePage = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"

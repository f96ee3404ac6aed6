"""GraphiQL at /graphql runs under its own Content-Security-Policy: its inline script is
allowed by hash, nothing else inline. The CDN is unreachable here (requests to it are
aborted), so only the policy is checked, not GraphiQL's rendering."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from tests.e2e.support import REPORT_REJECTIONS, Shop

pytestmark = pytest.mark.e2e


def test_graphiql_inline_script_runs_under_the_policy(browser: Browser, shop: Shop) -> None:
    context = browser.new_context()
    context.add_init_script(REPORT_REJECTIONS)
    context.route("https://unpkg.com/**", lambda route: route.abort())
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(f"uncaught: {error}"))
    try:
        response = page.goto(f"{shop.base}/graphql")
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "'sha256-" in policy
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
        page.wait_for_load_state("load")
    finally:
        context.close()
    # The inline script ran (it fails on the missing CDN libraries, not on the policy).
    assert any("Cookies is not defined" in m or "GraphiQL is not defined" in m
               for m in messages), messages
    assert [m for m in messages if "CSP violation" in m or "Content Security Policy" in m] \
        == [], messages

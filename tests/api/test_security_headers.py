"""Browser security headers on every response: the web client's strict CSP (self and the
Stripe.js origin paymentConfig names), GraphiQL's policy by hash, nosniff, referrer and
permissions policies, no framing, HSTS in production."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlparse

import httpx

from ordergraph.web.app import create_app
from tests.support import Api, settings_for


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


async def test_the_web_client_gets_a_strict_policy(api: Api) -> None:
    config = (await api.gql("{ paymentConfig { stripeJsUrl mode } }"))["paymentConfig"]
    assert config["mode"] == "local"
    parsed = urlparse(config["stripeJsUrl"])
    emulator = f"{parsed.scheme}://{parsed.netloc}"

    page = await api.client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    policy = directives(page.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'", emulator]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", emulator]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in page.headers["permissions-policy"]
    assert f'payment=(self "{emulator}")' in page.headers["permissions-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in page.headers  # not in development

    # The API's answers and the modules carry the same headers.
    for response in (await api.post("{ __typename }"), await api.client.get("/js/main.js")):
        assert response.headers["content-security-policy"] == \
            page.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_web_client_has_no_inline_script_or_style(api: Api) -> None:
    html = (await api.client.get("/")).text
    assert all("src=" in tag for tag in re.findall(r"<script\b[^>]*>", html))
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


async def test_graphiql_allows_exactly_its_inline_scripts(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert "graphiql" in page.text.lower()
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert inline
    policy = directives(page.headers["content-security-policy"])
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
              + "'" for body in inline}
    assert set(policy["script-src"]) == {"'self'", "https://unpkg.com", *hashes}
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_production_adds_hsts_and_names_stripe() -> None:
    settings = settings_for("postgresql+psycopg://shop@db/shop", environment="production",
                            stripe_secret_key="sk_live_x", stripe_publishable_key="pk_live_x",
                            graphiql=False)
    app = create_app(settings)  # no lifespan: only headers are looked at
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://shop.example") as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"] == \
        "max-age=63072000; includeSubDomains"
    policy = directives(response.headers["content-security-policy"])
    assert "https://js.stripe.com" in policy["script-src"]
    assert "https://api.stripe.com" in policy["connect-src"]
    assert "https://hooks.stripe.com" in policy["frame-src"]
    assert "'unsafe-inline'" not in policy["script-src"]

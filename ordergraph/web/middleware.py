"""ASGI middleware: body size limits, one access-log line per request, browser security
headers."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import urlparse

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordergraph.domain.errors import ServiceUnavailable
from ordergraph.web.request_id import request_id_of

access_log = logging.getLogger("ordergraph.access")

MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, without reading them whole: by
    Content-Length when declared, and by counting the chunks as they arrive otherwise."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, receive, send)
            return
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(scope, receive, send)


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"errors": [{"message": "The request body is too large (max 1 MiB).",
                                         "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]},
                            status_code=413)
    await response(scope, receive, send)


def _with_retry_after(message: Message) -> Message:
    """A 503 (the webhook's, /readyz's) says when to come back, if its route did not."""
    headers = message.get("headers") or []
    if any(name.lower() == b"retry-after" for name, _ in headers):
        return message
    retry_after = str(ServiceUnavailable.RETRY_AFTER_SECONDS).encode()
    return {**message, "headers": [*headers, (b"retry-after", retry_after)]}


class AccessLogMiddleware:
    """One log line per HTTP request (and per WebSocket connection, when it ends), naming
    the GraphQL outcome when it is not "ok"; every 503 leaves with a Retry-After."""

    def __init__(self, app: ASGIApp,
                 record: Callable[[str, int, float], None] | None = None,
                 quiet_paths: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")) -> None:
        self.app = app
        self.record = record
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 503:
                    message = _with_retry_after(message)
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and not status:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception:
            status = 500
            raise
        finally:
            self._log(scope, status, time.perf_counter() - started)

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        route = path if path in ("/graphql", "/webhooks/stripe", *self.quiet_paths) else "static"
        if self.record is not None and scope["type"] == "http":
            self.record(route, status, seconds)
        if path in self.quiet_paths and status < 400:
            return
        operations = (scope.get("state") or {}).get("graphql") or []
        first = operations[0] if operations else {}
        outcome = first.get("outcome")
        access_log.info(
            "%s %s %s%s", scope.get("method", "WS"), path, status,
            f" {outcome}" if outcome not in (None, "ok") else "",
            extra={"request_id": request_id_of(scope), "status": status,
                   "duration_ms": round(seconds * 1000, 2), "path": path,
                   "operation": first.get("operation"), "user_id": first.get("user_id"),
                   "outcome": first.get("outcome") if operations else None,
                   "client": (scope.get("client") or [None])[0]})


# ---- browser security headers (README "Operating it": Browser security) ---------------------

STRIPE_ORIGINS = {"script": ("https://js.stripe.com", "https://*.js.stripe.com"),
                  "connect": ("https://api.stripe.com",),
                  "frame": ("https://js.stripe.com", "https://*.js.stripe.com",
                            "https://hooks.stripe.com")}
# Strawberry's GraphiQL page loads React and GraphiQL from this CDN (with SRI hashes).
GRAPHIQL_CDN = "https://unpkg.com"
_INLINE_SCRIPT = re.compile(rb"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def origin_of(url: str | None) -> str | None:
    """`scheme://host:port` of an absolute URL; None for a relative one."""
    parsed = urlparse(url or "")
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme and parsed.netloc else None


def web_client_policy(*, stripe_js_url: str | None, real_stripe: bool) -> str:
    """The web client's CSP: its own files, plus Stripe.js from where paymentConfig says
    (the emulator's loopback origin in local mode), which also answers its API calls. No
    inline script or style anywhere (CSSOM changes from our modules are allowed)."""
    js = origin_of(stripe_js_url)
    script, connect, frame = [js] if js else [], [js] if js else [], [js] if js else []
    if real_stripe:
        script += STRIPE_ORIGINS["script"]
        connect += STRIPE_ORIGINS["connect"]
        frame += STRIPE_ORIGINS["frame"]

    def sources(*extra: str) -> str:
        return " ".join(dict.fromkeys(["'self'", *extra]))

    return "; ".join([
        "default-src 'self'", f"script-src {sources(*script)}", "style-src 'self'",
        "img-src 'self' data:", "font-src 'self'", f"connect-src {sources(*connect)}",
        "frame-src " + (" ".join(dict.fromkeys(frame)) or "'none'"),
        "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'"])


def graphiql_policy(page: bytes) -> str:
    """GraphiQL (admins; off in production unless GRAPHIQL=true): its CDN and exactly the
    inline scripts of the page served, by hash; inline styles allowed (GraphiQL's own)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(page))
    return "; ".join([
        "default-src 'self'", f"script-src 'self' {GRAPHIQL_CDN} {hashes}".rstrip(),
        f"style-src 'self' 'unsafe-inline' {GRAPHIQL_CDN}",
        f"img-src 'self' data: {GRAPHIQL_CDN}", f"font-src 'self' data: {GRAPHIQL_CDN}",
        "connect-src 'self'", "worker-src 'self' blob:", "object-src 'none'",
        "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"])


class SecurityHeadersMiddleware:
    """Every HTTP response: CSP (the web client's, or GraphiQL's for its page), nosniff, a
    referrer policy, a permissions policy, no framing; HSTS in production."""

    def __init__(self, app: ASGIApp, *, policy: str, payment_origin: str | None = None,
                 hsts: bool = False) -> None:
        self.app = app
        self.policy = policy
        payment = f'(self "{payment_origin}")' if payment_origin else "(self)"
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"permissions-policy", f"camera=(), microphone=(), geolocation=(), usb=(), "
                                    f"payment={payment}".encode()),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts:  # production sits behind TLS (README "Production checklist")
            self.headers.append((b"strict-transport-security",
                                 b"max-age=63072000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        page = b""

        async def secure(message: Message) -> None:
            nonlocal held, page
            if message["type"] == "http.response.start":
                if scope.get("path") == "/graphql" and _is_html(message):
                    held = message  # GraphiQL: its policy needs the whole page's scripts
                    return
                await send(self._with_headers(message, self.policy))
            elif held is not None and message["type"] == "http.response.body":
                page += message.get("body", b"")
                if message.get("more_body", False):
                    return
                start, held = held, None
                await send(self._with_headers(start, graphiql_policy(page)))
                await send({"type": "http.response.body", "body": page})
            else:
                await send(message)

        await self.app(scope, receive, secure)

    def _with_headers(self, message: Message, policy: str) -> Message:
        headers = [*(message.get("headers") or []), *self.headers,
                   (b"content-security-policy", policy.encode())]
        return {**message, "headers": headers}


def _is_html(message: Message) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html")
               for name, value in message.get("headers") or [])

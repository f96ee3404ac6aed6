"""ASGI middleware: body size limits and one access-log line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

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

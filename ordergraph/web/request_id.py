"""A request id for every HTTP request and WebSocket: in logs, headers and masked errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordergraph.adapters.logs import request_id_var

HEADER = "x-request-id"
# Accept a caller's id (a load balancer's) only if it is short and plain.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(scope: Scope) -> str:
    state: dict[str, Any] = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = uuid.uuid4().hex
    return str(state["request_id"])


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(HEADER.encode(), b"").decode("latin-1")
        state = scope.setdefault("state", {})
        state["request_id"] = incoming if _ACCEPTABLE.match(incoming) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(HEADER, state["request_id"])
            await send(message)

        # Every log line of this request (and of the tasks it starts) carries the id.
        token = request_id_var.set(state["request_id"])
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)

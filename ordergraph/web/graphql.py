"""The GraphQL endpoint: HTTP (+ GraphiQL) and WebSocket subscriptions on /graphql."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry import UNSET
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from ordergraph.domain.errors import Unauthenticated
from ordergraph.schema.context import Deps, RequestContext
from ordergraph.schema.live_execution import LIVE_OPERATION, SharedData
from ordergraph.web import response_cache
from ordergraph.web.request_id import request_id_of

log = logging.getLogger(__name__)


class QuietWebSocket(ASGIWebSocketAdapter):
    """A WebSocket that stops sending once it is closing.

    When uvicorn shuts down (or reaps a dead client) it closes the socket under the app, while
    each subscription's task may be halfway through sending its next result. Strawberry turns
    every such send into an error with a traceback ("Exception in worker task", or "Unexpected
    ASGI message 'websocket.send', after sending 'websocket.close'"): hundreds per shutdown.
    There is no one left to tell, so the message is dropped; the connection's own read loop
    sees the disconnect and ends the subscriptions.
    """

    closing = False

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.closing or WebSocketState.DISCONNECTED in (self.ws.application_state,
                                                            self.ws.client_state):
            return
        try:
            shared = _shared_next(message, self.view.encode_json)
            if shared is not None:  # a live event's result: the same bytes for its group
                await self.ws.send_text(shared)
            else:
                await super().send_json(message)
        except (WebSocketDisconnected, WebSocketDisconnect, OSError, RuntimeError) as error:
            # RuntimeError: the ASGI server's "send after close" (its socket is closed).
            self.closing = True
            log.debug("dropped a message to a closing WebSocket: %s", error)

    async def send_text_quietly(self, text: str) -> None:
        """Text as it is, dropped like send_json's when the socket is closing."""
        if self.closing or WebSocketState.DISCONNECTED in (self.ws.application_state,
                                                            self.ws.client_state):
            return
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, OSError, RuntimeError) as error:
            self.closing = True
            log.debug("dropped a message to a closing WebSocket: %s", error)

    async def close(self, code: int, reason: str) -> None:
        if self.closing or self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        self.closing = True
        try:
            await super().close(code, reason)
        except (WebSocketDisconnect, OSError, RuntimeError) as error:
            log.debug("closing a closed WebSocket: %s", error)


HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def refusal(status: int, message: str) -> JSONResponse:
    """A request refused before any GraphQL ran: the shape of every GraphQL error."""
    code = HTTP_CODES.get(status, "BAD_REQUEST")
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]},
                        status_code=status)


def _shared_next(message: Mapping[str, object], encode: Any) -> str | None:
    """A `next` message carrying only a shared live result, encoded once for every subscriber
    (schema/live_execution.py); None for anything else."""
    if message.get("type") != "next":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    data = payload.get("data")
    if type(data) is not SharedData:
        return None
    return data.next_message(str(message["id"]), encode)


class TransportWSHandler(BaseGraphQLTransportWSHandler[RequestContext, None]):
    """graphql-transport-ws, telling each operation's task how to write to its socket (the
    direct delivery of shared live results, schema/live_execution.py)."""

    async def run_operation(self, operation: Operation[RequestContext, None]) -> None:
        websocket = self.websocket
        if isinstance(websocket, QuietWebSocket):
            LIVE_OPERATION.set((websocket, operation.id))
        await super().run_operation(operation)


class GraphQLApp(GraphQL[RequestContext, None]):
    websocket_adapter_class = QuietWebSocket  # type: ignore[assignment]
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, schema: Any, *, graphiql: bool, allowed_origins: tuple[str, ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
            allowed_origins=allowed_origins,
            **kwargs,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cache = getattr(scope["app"].state, "response_cache", None) \
            if scope["type"] == "http" and "app" in scope else None
        if cache is None:
            await super().__call__(scope, receive, send)
            return
        metrics = scope["app"].state.deps.metrics

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await GraphQL.__call__(self, scope, receive, send)

        await response_cache.serve(cache, app, scope, receive, send, record=lambda name,
                                   seconds: metrics.graphql(name, "ok", seconds))

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Refusals of the request itself (malformed JSON, a body that is not an object,
        batching, an unsupported content type) are 4xx with a GraphQL-style JSON body, as
        README "Abuse limits" describes, rather than Strawberry's plain text."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            if isinstance(request, WebSocket):
                raise
            return refusal(error.status_code, error.reason)

    def decode_json(self, data: str | bytes) -> object:
        """A body must be JSON (UTF-8) holding an object, or a list, which is refused as a
        batch (batching is off); anything else is 400, not an error inside Strawberry."""
        try:
            value = json.loads(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "The request body is not valid UTF-8 JSON.") from None
        if not isinstance(value, dict | list):
            raise HTTPException(400, 'Expected a JSON object, e.g. {"query": "{ __typename }"}.')
        return value

    async def get_context(self, request: Request | WebSocket,
                          response: Response | WebSocket) -> RequestContext:
        deps: Deps = request.app.state.deps
        return RequestContext(
            deps=deps,
            request_id=request_id_of(request.scope),
            authorization=request.headers.get("authorization"),
            client_address=request.client.host if request.client else None,
            request=request,
            response=response,
        )

    async def on_ws_connect(self, context: RequestContext) -> Any:
        """Accept anonymous connections (the stock feed is public); refuse bad tokens (4403)."""
        context.forget_viewer()
        try:
            await context.viewer()
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        return None

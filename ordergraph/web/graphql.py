"""The GraphQL endpoint: HTTP (+ GraphiQL) and WebSocket subscriptions on /graphql."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from ordergraph.domain.errors import Unauthenticated
from ordergraph.resolvers.context import RequestContext, Services
from ordergraph.web.request_id import request_id_of


class GraphQLApp(GraphQL[RequestContext, None]):
    def __init__(self, schema: Any, *, graphiql: bool, allowed_origins: tuple[str, ...] = (),
                 **kwargs: Any) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL],
            allowed_origins=allowed_origins,
            **kwargs,
        )

    async def get_context(self, request: Request | WebSocket,
                          response: Response | WebSocket) -> RequestContext:
        services: Services = request.app.state.services
        return RequestContext(
            services=services,
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

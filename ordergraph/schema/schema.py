"""The Schema object."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import DisableIntrospection
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from ordergraph.schema.extensions import ErrorPolicy, OperationRecorder
from ordergraph.schema.limits import QueryLimits, prepared_documents
from ordergraph.schema.live_execution import SharedLiveExecution
from ordergraph.schema.mutation import Mutation
from ordergraph.schema.query import Query
from ordergraph.schema.subscription import Subscription


class SubscriptionOverHTTP(InvalidOperationTypeError):
    """A subscription sent to `POST`/`GET /graphql`: the HTTP view answers 400 with this."""

    def __init__(self) -> None:
        super().__init__(OperationType.SUBSCRIPTION)

    def as_http_error_reason(self, method: str) -> str:
        return ("Subscriptions are served over WebSocket at /graphql (the graphql-transport-ws "
                f"protocol), not over HTTP {method}.")


class OrdergraphSchema(strawberry.Schema):
    async def execute(self, query: str | None, variable_values: dict[str, Any] | None = None,
                      context_value: Any | None = None, root_value: Any | None = None,
                      operation_name: str | None = None,
                      allowed_operation_types: Iterable[OperationType] | None = None,
                      operation_extensions: dict[str, Any] | None = None) -> Any:
        """One result for one operation: what HTTP runs (WebSockets stream, `stream()`).
        A subscription has no single result, so it is refused here (docs/api.graphql,
        Transport: subscriptions are served over WebSocket), not run to a null."""
        allowed = {OperationType.QUERY, OperationType.MUTATION} \
            if allowed_operation_types is None else \
            set(allowed_operation_types) - {OperationType.SUBSCRIPTION}
        try:
            return await super().execute(query, variable_values, context_value, root_value,
                                         operation_name, allowed, operation_extensions)
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise SubscriptionOverHTTP() from None
            raise

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """ErrorPolicy logs what is worth logging (bugs); expected errors are not news."""

    async def _handle_execution_result(self, context: ExecutionContext, result: Any,
                                       extensions_runner: SchemaExtensionsRunner,
                                       **kwargs: Any) -> Any:
        """Every result, each streamed one (subscription events) included, passes here
        before a client sees it: the error policy masks its errors (extensions.py). Queries
        and mutations too: over a WebSocket the result is sent before the operation's own
        hook would have (errors went out without their code, and bugs unmasked); once done
        here, that hook leaves the result alone."""
        handled = await super()._handle_execution_result(context, result, extensions_runner,
                                                         **kwargs)
        if getattr(handled, "errors", None) and context.graphql_document is not None:
            for extension in extensions_runner.extensions:
                if isinstance(extension, ErrorPolicy):
                    extension.process_streamed(handled)
        return handled


def build_schema(*, introspection: bool = True, limits: QueryLimits | None = None,
                 tracing: Any = None, **kwargs: Any) -> OrdergraphSchema:
    """`tracing`: an extension (factory) that opens the operation's span, run first."""
    extensions: list[Any] = [prepared_documents(limits or QueryLimits()), OperationRecorder,
                             ErrorPolicy]
    if tracing is not None:
        extensions.insert(0, tracing)
    if not introspection:
        extensions.append(DisableIntrospection)
    return OrdergraphSchema(query=Query, mutation=Mutation, subscription=Subscription,
                            extensions=extensions,
                            execution_context_class=SharedLiveExecution, **kwargs)


def sdl() -> str:
    """The schema in SDL, for comparing with the contract."""
    return build_schema().as_str()


__all__ = ["OrdergraphSchema", "build_schema", "sdl"]

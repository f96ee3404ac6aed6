"""The Schema object."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import DisableIntrospection
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from ordergraph.schema.extensions import ErrorPolicy, OperationRecorder
from ordergraph.schema.limits import QueryLimits, prepared_documents
from ordergraph.schema.live_execution import SharedLiveExecution
from ordergraph.schema.mutation import Mutation
from ordergraph.schema.query import Query
from ordergraph.schema.subscription import Subscription


class OrdergraphSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """ErrorPolicy logs what is worth logging (bugs); expected errors are not news."""

    async def _handle_execution_result(self, context: ExecutionContext, result: Any,
                                       extensions_runner: SchemaExtensionsRunner,
                                       **kwargs: Any) -> Any:
        """Every result, each streamed one (subscription events) included, passes here
        before a client sees it: the error policy masks its errors (extensions.py)."""
        handled = await super()._handle_execution_result(context, result, extensions_runner,
                                                         **kwargs)
        if getattr(handled, "errors", None) and context.graphql_document is not None and \
                context.operation_type is OperationType.SUBSCRIPTION:
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

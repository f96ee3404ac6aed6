"""Schema extensions: the error policy (codes for expected errors, masking for bugs)."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from ordergraph.domain.errors import DomainError

log = logging.getLogger("ordergraph.errors")

UNEXPECTED_MESSAGE = "Unexpected error."


class ErrorPolicy(MaskErrors):
    """Every error a client sees has an `extensions.code`:

    - a DomainError raised outside a result union (UNAUTHENTICATED, FORBIDDEN, ...): its code;
    - GraphQL's own errors (syntax, validation, permissions): kept as they are;
    - anything else is a bug: logged with the request id and masked as "Unexpected error."
      with code INTERNAL_SERVER_ERROR and the request id, so an operator can find the log line.
    """

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        return [self._rewrite(error, request_id) for error in errors]

    def _rewrite(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
        if isinstance(original, DomainError):
            return GraphQLError(original.message, nodes=error.nodes, source=error.source,
                                positions=error.positions, path=error.path,
                                original_error=original,
                                extensions={**(error.extensions or {}), "code": original.code})
        log.error("unexpected error in %s (request %s)", error.path, request_id,
                  exc_info=(type(original), original, original.__traceback__))
        return GraphQLError(
            f"{UNEXPECTED_MESSAGE} Request id: {request_id}." if request_id else
            UNEXPECTED_MESSAGE,
            nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})

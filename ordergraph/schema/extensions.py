"""Schema extensions: the error policy (codes for expected errors, masking for bugs)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from ordergraph.domain.errors import DomainError, ServiceUnavailable
from ordergraph.schema.limits import with_limit_code

log = logging.getLogger("ordergraph.errors")

UNEXPECTED_MESSAGE = "Unexpected error."


class ErrorPolicy(MaskErrors):
    """Every error a client sees has an `extensions.code`:

    - a DomainError raised outside a result union (UNAUTHENTICATED, FORBIDDEN, ...): its code;
      SERVICE_UNAVAILABLE (the database is away) adds `retryAfterSeconds` and is not logged
      here: the outage is logged once (db/outage.py), each request by the access log;
    - GraphQL's own errors (syntax, validation, permissions): kept as they are, but for the
      refusals of over-limit documents, which get QUERY_TOO_COMPLEX (schema/limits.py);
    - anything else is a bug: logged with the request id and masked as "Unexpected error."
      with code INTERNAL_SERVER_ERROR and the request id, so an operator can find the log line.
    """

    # Not per streamed result through strawberry's hook: building the hook's context managers
    # for every event of every subscriber cost more than a live event's whole execution
    # (bench/RESULTS.md). OrdergraphSchema applies the policy to each streamed result instead
    # (schema/schema.py: _handle_execution_result).
    on_stream_result = SchemaExtension.on_stream_result

    def process_streamed(self, result: object) -> None:
        self._stream_result_processed = True
        self._process_result(result)

    def _process_result(self, result: object) -> None:
        # MaskErrors checks results against a runtime Protocol, which costs more than the
        # rest of this hook; it runs once per result, for every subscriber of every event.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        return [self._rewrite(error, request_id) for error in errors]

    def _rewrite(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if original is None:
            return with_limit_code(error)
        if isinstance(original, GraphQLError):
            return error
        if isinstance(original, DomainError):
            return GraphQLError(original.message, nodes=error.nodes, source=error.source,
                                positions=error.positions, path=error.path,
                                original_error=original,
                                extensions={**(error.extensions or {}), "code": original.code,
                                            **self._retry_after(original)})
        log.error("unexpected error in %s (request %s)", error.path, request_id,
                  exc_info=(type(original), original, original.__traceback__))
        return GraphQLError(
            f"{UNEXPECTED_MESSAGE} Request id: {request_id}." if request_id else
            UNEXPECTED_MESSAGE,
            nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})

    def _retry_after(self, error: DomainError) -> dict[str, int]:
        """SERVICE_UNAVAILABLE says when to try again, in the error and, over HTTP, in a
        Retry-After header (the answer stays 200, as for every GraphQL error)."""
        if not isinstance(error, ServiceUnavailable):
            return {}
        response = getattr(self.execution_context.context, "response", None)
        # Over HTTP the context holds the response being built; over WebSocket, the socket.
        if response is not None and hasattr(response, "status_code"):
            response.headers["retry-after"] = str(error.retry_after_seconds)
        return {"retryAfterSeconds": error.retry_after_seconds}


class OperationRecorder(SchemaExtension):
    """Times each operation and records its name, outcome and user for metrics and the
    request's log line (the access log middleware writes it)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        execution = self.execution_context
        context = execution.context
        outcome = _outcome(execution.result)
        name = execution.operation_name
        deps = getattr(context, "deps", None)
        if deps is not None:
            deps.metrics.graphql(name, outcome, seconds)
        request = getattr(context, "request", None)
        scope = getattr(request, "scope", None)
        if scope is not None:
            user_id = context.user_id_for_logs() if hasattr(context, "user_id_for_logs") \
                else None
            scope.setdefault("state", {}).setdefault("graphql", []).append({
                "operation": name, "outcome": outcome, "user_id": user_id})


def _outcome(result: object) -> str:
    errors = getattr(result, "errors", None)
    if not errors:
        return "ok"
    extensions = errors[0].extensions or {}
    return str(extensions.get("code") or "GRAPHQL_ERROR")

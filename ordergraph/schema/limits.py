"""Query limits (depth, aliases, cost, tokens) and a document cache that keeps them cheap.

Each distinct query text is parsed and validated once per process, limits included, and the
result is reused by every request that sends the same text. (Strawberry's per-request limiter
extensions would start each request with an empty cache; see STACK-NOTES.md.) The standard
rules already refuse cyclic and unknown fragments.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Lock
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    parse,
)
from graphql.error import GraphQLSyntaxError
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from ordergraph.resolvers.pagination import MAX_PAGE_SIZE
from ordergraph.schema.text_inputs import NoNulInLiterals, nul_in_variables

# `first` is capped by the resolvers at MAX_PAGE_SIZE; a variable is assumed to be the cap.
PAGE_CAP = MAX_PAGE_SIZE
CONNECTION_DEFAULTS = {"products": 20, "myOrders": 20, "orders": 20, "inventory": 50,
                       "auditLog": 50}
LIMIT_CODE = "QUERY_TOO_COMPLEX"


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 12
    max_aliases: int = 15
    max_cost: int = 5000
    max_tokens: int = 2000


def _too_complex(message: str, node: Any) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": LIMIT_CODE})


def with_limit_code(error: GraphQLError) -> GraphQLError:
    """graphql-core's own refusals of an over-limit document, with the code README "Abuse
    limits" gives them: the token limit ("Document contains more than 2000 tokens", a syntax
    error) and validation it aborts when a document is too costly to validate (e.g. a
    thousand `__typename`, "Validation aborted."). Any other error as it is."""
    over_tokens = isinstance(error, GraphQLSyntaxError) and \
        "tokens. Parsing aborted" in error.message
    if not (over_tokens or isinstance(error, ValidationAbortedError)) or \
            (error.extensions or {}).get("code"):
        return error
    return GraphQLError(error.message, source=error.source, positions=error.positions,
                        extensions={**(error.extensions or {}), "code": LIMIT_CODE})


def limits_rule(limits: QueryLimits) -> type[ASTValidationRule]:
    """A validation rule refusing operations deeper, costlier or more aliased than allowed.

    Cost: every field costs 1, and a connection's selection counts `first` times (its default
    when omitted, the page cap when given as a variable), so `orders(first: 100)` asking for
    items costs a hundred times what one order does.
    """

    class QueryLimitsRule(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode,
                                       *_args: Any) -> None:
            context: ValidationContext = self.context  # type: ignore[assignment]
            measure = _Measure(context)
            depth, cost = measure.selection_set(node.selection_set, depth=0, stack=())
            if depth > limits.max_depth:
                self.report_error(_too_complex(
                    f"The query is {depth} levels deep; the maximum is {limits.max_depth}.",
                    node))
            if measure.aliases > limits.max_aliases:
                self.report_error(_too_complex(
                    f"The query uses {measure.aliases} aliases; the maximum is "
                    f"{limits.max_aliases}.", node))
            if cost > limits.max_cost:
                self.report_error(_too_complex(
                    f"The query would cost {cost} (fields times page sizes); the maximum "
                    f"is {limits.max_cost}. Ask for fewer items or fewer fields.", node))

    return QueryLimitsRule


class _Measure:
    def __init__(self, context: ValidationContext) -> None:
        self.context = context
        self.aliases = 0

    def selection_set(self, selection_set: SelectionSetNode | None, *, depth: int,
                      stack: tuple[str, ...]) -> tuple[int, int]:
        """(deepest level, cost) below this selection set."""
        if selection_set is None:
            return depth, 0
        deepest, cost = depth, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                # Aliases first: 500 aliases of `__typename` cost nothing to resolve but
                # still make the server write 500 answers.
                if selection.alias is not None:
                    self.aliases += 1
                if selection.name.value.startswith("__"):
                    continue  # introspection and __typename: bounded by the schema itself
                below, inner = self.selection_set(selection.selection_set, depth=depth + 1,
                                                  stack=stack)
                deepest = max(deepest, below)
                cost += 1 + _page_size(selection) * inner
            elif isinstance(selection, InlineFragmentNode):
                below, inner = self.selection_set(selection.selection_set, depth=depth,
                                                  stack=stack)
                deepest, cost = max(deepest, below), cost + inner
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.context.get_fragment(name)
                if fragment is None or name in stack:
                    continue  # unknown or cyclic: the standard rules report those
                below, inner = self.selection_set(fragment.selection_set, depth=depth,
                                                  stack=(*stack, name))
                deepest, cost = max(deepest, below), cost + inner
        return deepest, cost


def _page_size(field: FieldNode) -> int:
    for argument in field.arguments or ():
        if argument.name.value == "first":
            if isinstance(argument.value, IntValueNode):
                return max(0, min(int(argument.value.value), PAGE_CAP))
            return PAGE_CAP  # a variable: assume the most it can ask for
    return CONNECTION_DEFAULTS.get(field.name.value, 1)


class _LruCache:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_documents = _LruCache(512)
_validations = _LruCache(512)


def prepared_documents(limits: QueryLimits) -> type[SchemaExtension]:
    """A schema extension that parses and validates each distinct document once."""
    rule = limits_rule(limits)

    class PreparedDocuments(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            context.parse_options["max_tokens"] = limits.max_tokens
            query = context.query
            if query and context.graphql_document is None:
                document = _documents.get(query)
                if document is None:
                    try:
                        document = parse(query, max_tokens=limits.max_tokens)
                    except GraphQLError:
                        document = None  # Strawberry parses again and reports the error
                    else:
                        _documents.put(query, document)
                context.graphql_document = document
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            document: DocumentNode | None = context.graphql_document
            if document is not None and context.pre_execution_errors is None:
                rules = (*context.validation_rules, rule, NoNulInLiterals)
                key = (id(context.schema._schema), context.query, rules)
                errors = _validations.get(key)
                if errors is None:
                    errors = validate_document(context.schema._schema, document, rules)
                    _validations.put(key, errors)
                context.pre_execution_errors = errors or _request_errors(context, document)
            yield

    return PreparedDocuments


def _request_errors(context: Any, document: DocumentNode) -> list[GraphQLError]:
    """What depends on the request, not the document: the operation to run, the variables.

    Strawberry runs the first operation of a document when no operationName is given (its
    ExecutionContext.operation_name); the GraphQL spec (GetOperation) requires an error."""
    if getattr(context, "_provided_operation_name", None) is None and sum(
            isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
        return [GraphQLError("Must provide operation name if query contains multiple "
                             "operations.")]
    nul = nul_in_variables(context.variables)
    return [nul] if nul is not None else []

"""No NUL character in any string a client sends, checked once for every input.

PostgreSQL text cannot hold U+0000, so a NUL that reached a query (a search, an email, a
product's name) used to fail inside the driver as INTERNAL_SERVER_ERROR. Every string input
is either a literal in the document or a variable's value: both are checked before execution
(schema/limits.py runs this with the document checks) and refused with VALIDATION_FAILED
naming the argument, as docs/api.graphql "Errors" describes for bad arguments. Nothing runs,
so nothing changes. Other control characters are stored as they are (address parts refuse
them, domain/shipping.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    GraphQLError,
    ObjectFieldNode,
    StringValueNode,
    VariableDefinitionNode,
)

NUL = "\x00"
CODE = "VALIDATION_FAILED"


def nul_error(field: str, node: Any = None) -> GraphQLError:
    return GraphQLError(f"{field or 'A string'} contains a NUL character (\\u0000), which no "
                        "text may contain.", node,
                        extensions={"code": CODE, "field": field or None})


class NoNulInLiterals(ASTValidationRule):
    """String literals of the document, arguments, input fields and variable defaults."""

    def enter_string_value(self, node: StringValueNode, _key: Any, parent: Any, _path: Any,
                           ancestors: list[Any]) -> None:
        if NUL in node.value:
            self.report_error(nul_error(_literal_field([*ancestors, parent]), node))


def _literal_field(ancestors: list[Any]) -> str:
    names = []
    for ancestor in ancestors:
        if isinstance(ancestor, ArgumentNode | ObjectFieldNode):
            names.append(ancestor.name.value)
        elif isinstance(ancestor, VariableDefinitionNode):
            names.append(ancestor.variable.name.value)
    return ".".join(names)


def nul_in_variables(variables: Mapping[str, Any] | None) -> GraphQLError | None:
    """A variable holding a NUL, named by its path (e.g. `input.items.0.productId`).

    A loop, not recursion: a variable's JSON may be nested as deep as the parser allows."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), variables or {})]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return nul_error(".".join(path))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                name = str(key)
                if NUL in name:
                    return nul_error(".".join((*path, name.replace(NUL, "\\u0000"))))
                stack.append(((*path, name), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(value))
    return None

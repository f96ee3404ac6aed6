"""The served schema keeps every promise of docs/api.graphql (the public contract).

Every type, field, argument (with its default), union member, enum value and input field of
the contract must exist with the same type. The schema may add to it, never differ.
"""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    build_schema,
)
from graphql.utilities import value_from_ast_untyped

from ordergraph.schema.schema import build_schema as build_ordergraph_schema

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "api.graphql"


def contract_schema() -> GraphQLSchema:
    return build_schema(CONTRACT.read_text())


def served_schema() -> GraphQLSchema:
    return build_ordergraph_schema()._schema


KINDS = (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType, GraphQLEnumType,
         GraphQLInputObjectType, GraphQLScalarType)


def _kind(graphql_type: object) -> str:
    return next(kind.__name__ for kind in KINDS if isinstance(graphql_type, kind))


def _default(arg: object) -> object:
    node = getattr(arg, "ast_node", None)
    if node is not None and node.default_value is not None:
        return value_from_ast_untyped(node.default_value)
    value = getattr(arg, "default_value", None)
    return None if value is None or type(value).__name__ == "Undefined" else value


def contract_differences() -> list[str]:
    contract, served = contract_schema(), served_schema()
    problems = []
    for name, expected in contract.type_map.items():
        if name.startswith("__"):
            continue
        actual = served.type_map.get(name)
        if actual is None:
            problems.append(f"type {name} missing")
            continue
        if _kind(actual) != _kind(expected):
            problems.append(f"type {name} is a {_kind(actual)}")
            continue
        if isinstance(expected, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in expected.fields.items():
                served_field = actual.fields.get(field_name)  # type: ignore[union-attr]
                if served_field is None:
                    problems.append(f"{name}.{field_name} missing")
                    continue
                if str(served_field.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {served_field.type} != {field.type}")
                for arg_name, arg in field.args.items():
                    served_arg = served_field.args.get(arg_name)
                    if served_arg is None:
                        problems.append(f"{name}.{field_name}({arg_name}) missing")
                    elif str(served_arg.type) != str(arg.type):
                        problems.append(f"{name}.{field_name}({arg_name}): {served_arg.type}")
                    elif _default(served_arg) != _default(arg):
                        problems.append(f"{name}.{field_name}({arg_name}) default "
                                        f"{_default(served_arg)!r} != {_default(arg)!r}")
                extra_required = [a for a, v in served_field.args.items()
                                  if a not in field.args and str(v.type).endswith("!")]
                if extra_required:
                    problems.append(f"{name}.{field_name} requires new args {extra_required}")
            if isinstance(expected, GraphQLObjectType):
                for interface in expected.interfaces:
                    if interface.name not in {i.name for i in actual.interfaces}:  # type: ignore[union-attr]
                        problems.append(f"{name} does not implement {interface.name}")
        elif isinstance(expected, GraphQLUnionType):
            missing = {t.name for t in expected.types} - {t.name for t in actual.types}  # type: ignore[union-attr]
            if missing:
                problems.append(f"union {name} lacks {sorted(missing)}")
        elif isinstance(expected, GraphQLEnumType):
            if set(expected.values) != set(actual.values):  # type: ignore[union-attr]
                problems.append(f"enum {name}: {sorted(actual.values)}")  # type: ignore[union-attr]
        elif isinstance(expected, GraphQLInputObjectType):
            for field_name, field in expected.fields.items():
                served_field = actual.fields.get(field_name)  # type: ignore[union-attr]
                if served_field is None or str(served_field.type) != str(field.type):
                    problems.append(f"input {name}.{field_name} differs")
                elif _default(served_field) != _default(field):
                    problems.append(f"input {name}.{field_name} default "
                                    f"{_default(served_field)!r} != {_default(field)!r}")
    return problems


def test_schema_keeps_the_contract() -> None:
    assert contract_differences() == []


def test_the_checker_sees_a_broken_promise() -> None:
    """Guard against a checker that cannot fail: a renamed field must be reported."""
    import tests.api.test_contract as me

    original = me.served_schema

    def renamed() -> GraphQLSchema:
        schema = original()
        money = schema.type_map["Money"]
        money.fields["amountInCents"] = money.fields.pop("amount")  # type: ignore[union-attr]
        return schema

    me.served_schema = renamed
    try:
        assert "Money.amount missing" in contract_differences()
    finally:
        me.served_schema = original

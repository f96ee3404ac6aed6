"""The contract's connection types (Relay-style pages of products, orders, audit entries),
built from a resolver's `Connection` page; the node types are in `types.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import strawberry

from ordergraph.domain import model
from ordergraph.domain.read_ports import AuditRecord
from ordergraph.resolvers.pagination import Connection
from ordergraph.schema.types import AuditEntry, Order, Product


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: tuple[Connection[model.Product], Mapping[int, model.Stock]]
           ) -> ProductConnection:
        connection, stocks = page
        return cls(**_connection_fields(
            connection, ProductEdge, lambda product: Product.of(product, stocks.get(product.id))))


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, connection: Connection[model.Order]) -> OrderConnection:
        return cls(**_connection_fields(connection, OrderEdge, Order.of))


@strawberry.type
class AuditEntryEdge:
    cursor: str
    node: AuditEntry


@strawberry.type
class AuditEntryConnection:
    edges: list[AuditEntryEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, connection: Connection[AuditRecord]) -> AuditEntryConnection:
        return cls(**_connection_fields(connection, AuditEntryEdge, AuditEntry.of))


def _connection_fields(connection: Connection[Any], edge: Callable[..., Any],
                       node_of: Callable[[Any], Any]) -> dict[str, Any]:
    """The fields every connection type has, its nodes converted by `node_of`."""
    return {
        "edges": [edge(cursor=e.cursor, node=node_of(e.node)) for e in connection.edges],
        "page_info": PageInfo(has_next_page=connection.has_next_page,
                              end_cursor=connection.end_cursor),
        "total_count": connection.total_count,
    }

"""The read side's port: `ReadStore`, the queries behind the API (resolvers/, the
dataloaders, the live feeds' checks, and `user_for_token`'s viewer lookup), and the `Page`
it returns. `db/readstore.py` implements it; the write side's ports are in `ports.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from ordergraph.domain.model import Actor, Order, OrderStatus, Product, Stock, User
from ordergraph.domain.sales import SalesFigures, SalesWindow
from ordergraph.domain.shipping import Address

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit-log row as read back (`ReadStore.audit_trail`): an AuditDraft with its id."""

    id: int
    at: datetime
    actor: Actor
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    total_count: int


class ReadStore(Protocol):
    """Queries for the API. Each call uses its own connection, so concurrent resolvers and
    dataloaders never share one."""

    async def products_page(self, *, first: int, after_id: int | None, search: str | None,
                            include_inactive: bool, low_stock_below: int | None = None
                            ) -> tuple[Page[Product], dict[int, Stock]]:
        """A page of products and the stock of each (one read for the catalog)."""
        ...
    async def products_by_ids(self, ids: Sequence[int]) -> dict[int, Product]: ...
    async def product_by_sku(self, sku: str) -> Product | None: ...
    async def stocks_by_product_ids(self, ids: Sequence[int]) -> dict[int, Stock]: ...
    async def all_stocks(self, *, limit: int) -> list[Stock]: ...
    async def orders_page(self, *, first: int, after_id: int | None,
                          status: OrderStatus | None,
                          customer_id: int | None) -> Page[Order]: ...
    async def orders_by_ids(self, ids: Sequence[int]) -> dict[int, Order]: ...
    async def users_by_ids(self, ids: Sequence[int]) -> dict[int, User]: ...
    async def audit_page(self, *, first: int, after_id: int | None, entity_type: str | None,
                         entity_id: str | None, actor_id: int | None) -> Page[AuditRecord]: ...
    async def audit_for_entities(self, entity_type: str,
                                 entity_ids: Sequence[str]) -> dict[str, list[AuditRecord]]: ...
    async def sales_report(self, window: SalesWindow) -> SalesFigures: ...
    async def default_address(self, user_id: int) -> Address | None: ...
    async def ping(self) -> None: ...

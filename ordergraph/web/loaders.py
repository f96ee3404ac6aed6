"""Per-request dataloaders over the read store (one batched query per kind per tick)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from ordergraph.domain.read_ports import ReadStore
from ordergraph.schema.context import Loaders

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _batched(fetch: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]],
             missing: Callable[[], V | None] = lambda: None
             ) -> Callable[[list[K]], Awaitable[list[V | None]]]:
    async def load(keys: list[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(key, missing()) for key in keys]
    return load


def make_loaders(reader: ReadStore) -> Loaders:
    return Loaders(
        product=DataLoader(_batched(reader.products_by_ids)),
        stock=DataLoader(_batched(reader.stocks_by_product_ids)),
        user=DataLoader(_batched(reader.users_by_ids)),
        order_history=DataLoader(_batched(
            lambda ids: reader.audit_for_entities("ORDER", ids), missing=list)),
    )

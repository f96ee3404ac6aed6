"""Moving an order's reserved units: released back on sale, or sold."""

from __future__ import annotations

from datetime import datetime

from ordergraph.domain.model import Actor, Order
from ordergraph.domain.ports import UnitOfWork


async def release_reservation(uow: UnitOfWork, order: Order, *, actor: Actor,
                              at: datetime) -> None:
    """reserved -> available for every line. Call with the order row locked, before the
    transition that ends the reservation, so it happens exactly once."""
    stocks = await uow.inventory.lock([line.product_id for line in order.lines])
    for line in order.lines:
        stocks[line.product_id].release(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))


async def sell_reservation(uow: UnitOfWork, order: Order, *, actor: Actor, at: datetime) -> None:
    """reserved -= quantity for every line: the units have been paid for and leave the shop."""
    stocks = await uow.inventory.lock([line.product_id for line in order.lines])
    for line in order.lines:
        stocks[line.product_id].sell(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))


async def restock_order(uow: UnitOfWork, order: Order, *, actor: Actor, at: datetime) -> None:
    """available += quantity for every line: a paid order refunded before it shipped."""
    stocks = await uow.inventory.lock([line.product_id for line in order.lines])
    for line in order.lines:
        stocks[line.product_id].restock(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))

"""Moving an order's reserved units: released back on sale, or sold."""

from __future__ import annotations

from datetime import datetime

from ordergraph.domain.model import Actor, Order, Stock
from ordergraph.domain.ports import UnitOfWork


async def _lock_lines(uow: UnitOfWork, order: Order, *, d_available: int, d_reserved: int,
                      at: datetime) -> dict[int, Stock]:
    """The order's stock rows under lock, telling the repository the move to come (each
    line's quantity times the signs given), which it may write in the same statement."""
    planned: dict[int, tuple[int, int]] = {}
    for line in order.lines:
        available, reserved = planned.get(line.product_id, (0, 0))
        planned[line.product_id] = (available + d_available * line.quantity,
                                    reserved + d_reserved * line.quantity)
    return await uow.inventory.lock(list(planned), planned=planned, at=at)


async def release_reservation(uow: UnitOfWork, order: Order, *, actor: Actor,
                              at: datetime) -> None:
    """reserved -> available for every line. Call with the order row locked, before the
    transition that ends the reservation, so it happens exactly once."""
    stocks = await _lock_lines(uow, order, d_available=1, d_reserved=-1, at=at)
    for line in order.lines:
        stocks[line.product_id].release(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))


async def sell_reservation(uow: UnitOfWork, order: Order, *, actor: Actor, at: datetime) -> None:
    """reserved -= quantity for every line: the units have been paid for and leave the shop."""
    stocks = await _lock_lines(uow, order, d_available=0, d_reserved=-1, at=at)
    for line in order.lines:
        stocks[line.product_id].sell(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))


async def restock_order(uow: UnitOfWork, order: Order, *, actor: Actor, at: datetime) -> None:
    """available += quantity for every line: a paid order refunded before it shipped."""
    stocks = await _lock_lines(uow, order, d_available=1, d_reserved=0, at=at)
    for line in order.lines:
        stocks[line.product_id].restock(line.quantity, order_id=order.id, actor=actor, at=at)
    await uow.inventory.save(list(stocks.values()))

"""Admin use cases for the catalog: products and their stock levels."""

from __future__ import annotations

from ordergraph.domain import events as ev
from ordergraph.domain.errors import NotFound, ValidationFailed
from ordergraph.domain.model import (
    Actor,
    Money,
    Product,
    Stock,
    StockReason,
    check_description,
    check_price,
    check_product_name,
    check_sku,
    check_stock_level,
)
from ordergraph.domain.ports import Clock, UnitOfWork
from ordergraph.domain.services.transaction import retrying

MAX_REASON_LENGTH = 500


async def create_product(*, uow: UnitOfWork, clock: Clock, actor: Actor, sku: str, name: str,
                         description: str | None, price_cents: int, initial_stock: int,
                         active: bool, currency: str) -> Product:
    """A new product with its inventory row; VALIDATION_FAILED for a taken SKU."""
    sku = check_sku(sku)
    name = check_product_name(name)
    description = check_description(description or "")
    price = Money(check_price(price_cents), currency)
    check_stock_level(initial_stock, field_name="initialStock")

    async for attempt in retrying(uow):
        async with attempt:
            if await uow.products.get_by_sku(sku) is not None:
                raise ValidationFailed(f"SKU {sku!r} is already taken.", field="sku")
            now = clock.now()
            product = Product(id=0, sku=sku, name=name, description=description, price=price,
                              active=active, created_at=now, updated_at=now)
            await uow.products.add(product)  # a racing duplicate SKU raises RetryableConflict
            product.events.append(ev.ProductCreated(at=now, actor=actor,
                                                    product=product.snapshot()))
            stock = Stock(product_id=product.id, available=0, reserved=0, updated_at=now)
            await uow.inventory.add(stock)
            stock.set_available(initial_stock, actor=actor, at=now, reason=StockReason.INITIAL)
            await uow.inventory.save([stock])
            await uow.commit()
    return product


async def update_product(*, uow: UnitOfWork, clock: Clock, actor: Actor, product_id: int,
                         name: str | None, description: str | None, price_cents: int | None,
                         active: bool | None) -> Product:
    """Change what is given; deactivating hides the product from customers."""

    async for attempt in retrying(uow):
        async with attempt:
            product = await uow.products.get(product_id, for_update=True)
            if product is None:
                raise NotFound(f"Product {product_id} not found.", field="id")
            product.update(name=name, description=description, price_cents=price_cents,
                           active=active, actor=actor, at=clock.now())
            await uow.products.save(product)
            await uow.commit()
    return product


async def set_stock(*, uow: UnitOfWork, clock: Clock, actor: Actor, product_id: int,
                    available: int) -> Stock:
    """Set the units on sale to an absolute number (>= 0); reserved units are untouched."""
    check_stock_level(available, field_name="available")

    async for attempt in retrying(uow):
        async with attempt:
            stock = await _locked_stock(uow, product_id)
            stock.set_available(available, actor=actor, at=clock.now())
            await uow.inventory.save([stock])
            await uow.commit()
    return stock


async def adjust_stock(*, uow: UnitOfWork, clock: Clock, actor: Actor, product_id: int,
                       delta: int, reason: str | None) -> Stock:
    """Add or remove units on sale, atomically under the row lock; never below zero."""
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise ValidationFailed(f"A reason has at most {MAX_REASON_LENGTH} characters.",
                               field="reason")
    if delta == 0:
        raise ValidationFailed("delta must not be zero.", field="delta")

    async for attempt in retrying(uow):
        async with attempt:
            stock = await _locked_stock(uow, product_id)
            stock.adjust(delta, actor=actor, at=clock.now(), note=reason)
            await uow.inventory.save([stock])
            await uow.commit()
    return stock


async def _locked_stock(uow: UnitOfWork, product_id: int) -> Stock:
    stocks = await uow.inventory.lock([product_id])
    if product_id not in stocks:
        raise NotFound(f"Product {product_id} not found.", field="productId")
    return stocks[product_id]

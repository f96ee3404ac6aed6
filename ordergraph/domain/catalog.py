"""The catalog: products and their stock (available and reserved units)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from ordergraph.domain import events as ev
from ordergraph.domain.actors import Actor
from ordergraph.domain.errors import InsufficientStock, ValidationFailed
from ordergraph.domain.money import (
    MAX_PRICE_CENTS,
    MAX_STOCK_LEVEL,
    Money,
)

# ---- catalog ----------------------------------------------------------------------------

_SKU = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_sku(sku: str) -> str:
    if len(sku) > 64 or not _SKU.match(sku):
        raise ValidationFailed(
            "SKU must be lower-case letters, digits and single dashes, up to 64 characters.",
            field="sku",
        )
    return sku


def check_product_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("Name must be 1 to 200 characters.", field="name")
    return name


def check_description(description: str) -> str:
    if len(description) > 5000:
        raise ValidationFailed("Description must be at most 5000 characters.",
                               field="description")
    return description


def check_price(price_cents: int) -> int:
    if not 0 < price_cents <= MAX_PRICE_CENTS:
        raise ValidationFailed(
            f"Price must be between 1 and {MAX_PRICE_CENTS} cents.", field="priceCents"
        )
    return price_cents


def check_stock_level(level: int, *, field_name: str) -> int:
    if not 0 <= level <= MAX_STOCK_LEVEL:
        raise ValidationFailed(
            f"Stock must be between 0 and {MAX_STOCK_LEVEL}.", field=field_name
        )
    return level


@dataclass
class Product:
    id: int
    sku: str
    name: str
    description: str
    price: Money
    active: bool
    created_at: datetime
    updated_at: datetime
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.id, "sku": self.sku, "name": self.name, "description": self.description,
            "price": self.price.amount, "currency": self.price.currency, "active": self.active,
        }

    def update(self, *, name: str | None, description: str | None, price_cents: int | None,
               active: bool | None, actor: Actor, at: datetime) -> None:
        before = self.snapshot()
        if name is not None:
            self.name = check_product_name(name)
        if description is not None:
            self.description = check_description(description)
        if price_cents is not None:
            self.price = Money(check_price(price_cents), self.price.currency)
        if active is not None:
            self.active = active
        after = self.snapshot()
        if after != before:
            self.updated_at = at
            self.events.append(
                ev.ProductUpdated(at=at, actor=actor, product_id=self.id, before=before,
                                  after=after)
            )


class StockReason(enum.Enum):
    """Why stock moved; the ledger (stock_movements) and the audit log record it."""

    INITIAL = "INITIAL"
    RESERVED = "RESERVED"    # checkout: available -> reserved
    SOLD = "SOLD"            # payment succeeded: reserved units leave the shop
    RELEASED = "RELEASED"    # cancelled, failed or expired: reserved -> available
    SET = "SET"              # admin: absolute level
    ADJUSTED = "ADJUSTED"    # admin: relative change
    RESTOCKED = "RESTOCKED"  # a paid order was refunded before shipping: units back on sale


@dataclass
class Stock:
    """A product's inventory row: units on sale (`available`) and held by open orders."""

    product_id: int
    available: int
    reserved: int
    updated_at: datetime
    events: list[ev.DomainEvent] = field(default_factory=list, repr=False, compare=False)

    def snapshot(self) -> dict[str, int]:
        return {"available": self.available, "reserved": self.reserved}

    def ensure_available(self, quantity: int, *, field_name: str | None = None,
                         product_name: str | None = None) -> None:
        if quantity > self.available:
            raise InsufficientStock(product_id=self.product_id, requested=quantity,
                                    available=self.available, field=field_name,
                                    product_name=product_name)

    def reserve(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self.ensure_available(quantity)
        self._move(-quantity, quantity, StockReason.RESERVED, actor=actor, at=at,
                   order_id=order_id)

    def sell(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(0, -quantity, StockReason.SOLD, actor=actor, at=at, order_id=order_id)

    def release(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(quantity, -quantity, StockReason.RELEASED, actor=actor, at=at,
                   order_id=order_id)

    def restock(self, quantity: int, *, order_id: int, actor: Actor, at: datetime) -> None:
        self._move(quantity, 0, StockReason.RESTOCKED, actor=actor, at=at, order_id=order_id)

    def set_available(self, level: int, *, actor: Actor, at: datetime,
                      reason: StockReason = StockReason.SET, note: str | None = None) -> None:
        check_stock_level(level, field_name="available")
        self._move(level - self.available, 0, reason, actor=actor, at=at, note=note)

    def adjust(self, delta: int, *, actor: Actor, at: datetime, note: str | None) -> None:
        if self.available + delta < 0:
            raise ValidationFailed(
                f"Cannot remove {-delta} units: only {self.available} available.", field="delta"
            )
        check_stock_level(self.available + delta, field_name="delta")
        self._move(delta, 0, StockReason.ADJUSTED, actor=actor, at=at, note=note)

    def _move(self, delta_available: int, delta_reserved: int, reason: StockReason, *,
              actor: Actor, at: datetime, order_id: int | None = None,
              note: str | None = None) -> None:
        if delta_available == 0 and delta_reserved == 0:
            return
        before = self.snapshot()
        self.available += delta_available
        self.reserved += delta_reserved
        if self.available < 0 or self.reserved < 0:
            # The database's CHECK constraints refuse this too; failing here names the bug.
            raise AssertionError(f"stock of product {self.product_id} would go negative "
                                 f"({reason.value}: {before} -> {self.snapshot()})")
        self.updated_at = at
        self.events.append(ev.StockChanged(
            at=at, actor=actor, product_id=self.product_id, reason=reason.value,
            delta_available=delta_available, delta_reserved=delta_reserved,
            before=before, after=self.snapshot(), order_id=order_id, note=note,
        ))

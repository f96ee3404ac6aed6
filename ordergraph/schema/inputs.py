"""Input types of the contract's mutations."""

from __future__ import annotations

import strawberry
from strawberry import UNSET


@strawberry.input(description="A new account. Never takes a role: everyone starts CUSTOMER.")
class RegisterInput:
    email: str
    password: str = strawberry.field(description="8 to 1024 characters.")
    name: str | None = UNSET


@strawberry.input
class CreateProductInput:
    sku: str = strawberry.field(description="Lower-case letters, digits and dashes; unique.")
    name: str
    description: str | None = UNSET
    price_cents: int = strawberry.field(description="Price in minor units, > 0.")
    initial_stock: int | None = 0
    active: bool | None = True


@strawberry.input(description="Only the fields given change.")
class UpdateProductInput:
    name: str | None = UNSET
    description: str | None = UNSET
    price_cents: int | None = UNSET
    active: bool | None = UNSET


@strawberry.input
class CartLineInput:
    product_id: strawberry.ID
    quantity: int = strawberry.field(description="1 to 1000.")


@strawberry.input
class CheckoutInput:
    items: list[CartLineInput] = strawberry.field(
        description="1 to 100 lines; lines of the same product are merged.")
    idempotency_key: str | None = strawberry.field(
        default=UNSET,
        description="Same key + same cart from the same user returns the same order.")

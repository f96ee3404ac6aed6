"""Input types of the contract's mutations."""

from __future__ import annotations

import strawberry
from strawberry import UNSET


@strawberry.input(description="A new account. Never takes a role: everyone starts CUSTOMER.")
class RegisterInput:
    email: str
    password: str = strawberry.field(description="8 to 1024 characters, not only whitespace.")
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


@strawberry.input(description="A postal address. Parts are trimmed and inner whitespace "
                               "collapsed; empty optional parts become null.")
class AddressInput:
    name: str = strawberry.field(description="Who receives it; 1 to 100 characters.")
    line1: str = strawberry.field(description="Street and number; 1 to 200 characters.")
    line2: str | None = strawberry.field(default=UNSET, description="At most 200 characters.")
    city: str = strawberry.field(description="1 to 100 characters.")
    postal_code: str = strawberry.field(description="1 to 20 characters.")
    region: str | None = strawberry.field(
        default=UNSET, description="State, province or county; at most 100 characters.")
    country: str = strawberry.field(
        description="ISO 3166-1 alpha-2 code, e.g. `US` or `DE` (any case).")

    def fields(self) -> dict[str, str | None]:
        """The parts by their domain names (omitted optional parts are None)."""
        return {"name": self.name, "line1": self.line1,
                "line2": None if self.line2 is UNSET else self.line2, "city": self.city,
                "postal_code": self.postal_code,
                "region": None if self.region is UNSET else self.region,
                "country": self.country}


@strawberry.input
class CheckoutInput:
    items: list[CartLineInput] = strawberry.field(
        description="1 to 100 lines; lines of the same product are merged.")
    idempotency_key: str | None = strawberry.field(
        default=UNSET,
        description="Same key + same cart (and address) from the same user returns the same "
                    "order; a different cart or address is IDEMPOTENCY_KEY_REUSED.")
    shipping_address: AddressInput | None = strawberry.field(
        default=UNSET,
        description="Where the order ships; shipping is charged only on an order with one. "
                    "Required when the shop sets SHIPPING_REQUIRED.")

"""The cart a checkout asks for: its lines validated, duplicates merged, and its
fingerprint (what a retried checkout must ask for again)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ordergraph.domain.errors import ValidationFailed
from ordergraph.domain.shipping import Address

MAX_CART_LINES = 100
MAX_LINE_QUANTITY = 1000


@dataclass(frozen=True, slots=True)
class Cart:
    """A validated cart: product id -> quantity, duplicate lines merged, in product-id order."""

    quantities: tuple[tuple[int, int], ...]
    # Where each product first appeared in the customer's lines, to point errors at it.
    first_line: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[int, int]]) -> Cart:
        lines = list(lines)
        if not 1 <= len(lines) <= MAX_CART_LINES:
            raise ValidationFailed(
                f"A cart holds 1 to {MAX_CART_LINES} lines.", field="items"
            )
        merged: dict[int, int] = {}
        first_line: dict[int, int] = {}
        for index, (product_id, quantity) in enumerate(lines):
            if not 1 <= quantity <= MAX_LINE_QUANTITY:
                raise ValidationFailed(
                    f"Quantity must be between 1 and {MAX_LINE_QUANTITY}.",
                    field=f"items.{index}.quantity",
                )
            merged[product_id] = merged.get(product_id, 0) + quantity
            first_line.setdefault(product_id, index)
        for product_id, quantity in merged.items():
            # The cap holds for the product, however many lines ask for it.
            if quantity > MAX_LINE_QUANTITY:
                raise ValidationFailed(
                    f"At most {MAX_LINE_QUANTITY} of one product per order ({quantity} asked "
                    "for across the cart's lines).",
                    field=f"items.{first_line[product_id]}.quantity",
                )
        return cls(tuple(sorted(merged.items())), tuple(sorted(first_line.items())))

    def line_of(self, product_id: int) -> int:
        """The index of the customer's first line for this product."""
        return dict(self.first_line).get(product_id, 0)

    @property
    def product_ids(self) -> list[int]:
        return [product_id for product_id, _ in self.quantities]

    def fingerprint(self, ship_to: Address | None = None) -> str:
        """Stable digest of the merged cart and where it ships: equal carts to equal
        addresses give equal fingerprints (without an address, the cart's alone, as orders
        from before shipping addresses recorded it)."""
        text = ";".join(f"{pid}x{qty}" for pid, qty in self.quantities)
        if ship_to is not None:
            text += f"|ship:{ship_to.fingerprint()}"
        return hashlib.sha256(text.encode()).hexdigest()

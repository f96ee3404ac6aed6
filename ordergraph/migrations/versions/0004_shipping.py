"""Shipping: the order's address and shipping cost, and customers' default addresses.

- `orders.subtotal_cents` / `shipping_cents`: total = subtotal + shipping (CHECK); existing
  orders shipped for free, so their subtotal is their total and their shipping 0.
- `orders.ship_*`: the address the order ships to, a snapshot taken at checkout; null on
  existing orders (a CHECK keeps it whole or absent).
- `default_addresses`: one per customer, which the checkout page fills in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
REQUIRED = ("name", "line1", "city", "postal_code", "country")


def _address_columns(prefix: str, *, nullable: bool) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(f"{prefix}name", sa.String(length=100), nullable=nullable),
        sa.Column(f"{prefix}line1", sa.String(length=200), nullable=nullable),
        sa.Column(f"{prefix}line2", sa.String(length=200), nullable=True),
        sa.Column(f"{prefix}city", sa.String(length=100), nullable=nullable),
        sa.Column(f"{prefix}postal_code", sa.String(length=20), nullable=nullable),
        sa.Column(f"{prefix}region", sa.String(length=100), nullable=True),
        sa.Column(f"{prefix}country", sa.String(length=2), nullable=nullable),
    ]


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("subtotal_cents", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("shipping_cents", sa.BigInteger(), server_default="0",
                                   nullable=False))
        for column in _address_columns("ship_", nullable=True):
            batch.add_column(column)
    op.execute("UPDATE orders SET subtotal_cents = total_cents")
    whole = " AND ".join(f"ship_{part} IS NOT NULL" for part in REQUIRED)
    absent = " AND ".join(f"ship_{part} IS NULL" for part in REQUIRED)
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("subtotal_cents", existing_type=sa.BigInteger(), nullable=False)
        batch.create_check_constraint(op.f("ck_orders_shipping_not_negative"),
                                      "shipping_cents >= 0")
        batch.create_check_constraint(op.f("ck_orders_total_is_subtotal_plus_shipping"),
                                      "total_cents = subtotal_cents + shipping_cents")
        batch.create_check_constraint(op.f("ck_orders_ship_address_whole_or_absent"),
                                      f"({absent}) OR ({whole})")

    op.create_table(
        "default_addresses",
        sa.Column("user_id", ID, nullable=False),
        *_address_columns("", nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_default_addresses_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_default_addresses")),
    )


def downgrade() -> None:
    op.drop_table("default_addresses")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_ship_address_whole_or_absent"), type_="check")
        batch.drop_constraint(op.f("ck_orders_total_is_subtotal_plus_shipping"), type_="check")
        batch.drop_constraint(op.f("ck_orders_shipping_not_negative"), type_="check")
        for part in ("country", "region", "postal_code", "city", "line2", "line1", "name"):
            batch.drop_column(f"ship_{part}")
        batch.drop_column("shipping_cents")
        batch.drop_column("subtotal_cents")

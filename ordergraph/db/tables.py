"""The schema, as SQLAlchemy Core tables. Migrations create it; tests check they agree.

Constraints carry the rules the database must enforce whatever the code does: stock never
negative, quantities and prices positive, one idempotency key per customer, one webhook event
processed once, emails unique regardless of case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# Stable constraint names, so migrations and error handling can refer to them.
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would drop the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ROLES = ("CUSTOMER", "ADMIN")
ORDER_STATUSES = ("CREATED", "PAYMENT_PENDING", "PAID", "FULFILLED", "CANCELLED", "FAILED",
                  "REFUNDED")
REFUND_STATUSES = ("REQUESTED", "REQUIRED", "SUCCEEDED")
ACTOR_KINDS = ("USER", "SYSTEM", "PAYMENT_PROVIDER")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


users = sa.Table(
    "users", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # Set by a password reset: tokens issued before it no longer authenticate.
    sa.Column("password_changed_at", UtcDateTime()),
    sa.CheckConstraint(_one_of("role", ROLES), name="role"),
    sa.CheckConstraint("email = lower(email)", name="email_lower_case"),
)
sa.Index("uq_users_email_lower", sa.func.lower(users.c.email), unique=True)

products = sa.Table(
    "products", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sku", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("price_cents", sa.Integer(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("price_cents > 0", name="price_positive"),
)

inventory = sa.Table(
    "inventory", metadata,
    sa.Column("product_id", Id, sa.ForeignKey("products.id"), primary_key=True),
    sa.Column("available", sa.Integer(), nullable=False),
    sa.Column("reserved", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("available >= 0", name="available_not_negative"),
    sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
)

def address_columns(prefix: str, *, nullable: bool = True) -> list[sa.Column[Any]]:
    """A postal address as columns (lengths as domain/shipping.py accepts them)."""
    return [
        sa.Column(f"{prefix}name", sa.String(100), nullable=nullable),
        sa.Column(f"{prefix}line1", sa.String(200), nullable=nullable),
        sa.Column(f"{prefix}line2", sa.String(200)),
        sa.Column(f"{prefix}city", sa.String(100), nullable=nullable),
        sa.Column(f"{prefix}postal_code", sa.String(20), nullable=nullable),
        sa.Column(f"{prefix}region", sa.String(100)),
        sa.Column(f"{prefix}country", sa.String(2), nullable=nullable),
    ]


def address_whole_or_absent(prefix: str) -> str:
    """Every required part of the address, or none of them."""
    required = [f"{prefix}{part}" for part in ("name", "line1", "city", "postal_code",
                                                "country")]
    return (f"({' AND '.join(f'{c} IS NULL' for c in required)}) OR "
            f"({' AND '.join(f'{c} IS NOT NULL' for c in required)})")


orders = sa.Table(
    "orders", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("customer_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_cents", sa.BigInteger(), nullable=False),
    # total = subtotal (the lines) + shipping, as they were at checkout.
    sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
    sa.Column("shipping_cents", sa.BigInteger(), nullable=False, server_default="0"),
    # The address it ships to, a snapshot taken at checkout (all null: not shipped).
    *address_columns("ship_"),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("idempotency_key", sa.String(128)),
    sa.Column("cart_fingerprint", sa.String(64)),
    sa.Column("payment_provider", sa.String(20)),
    sa.Column("payment_intent_id", sa.String(255), unique=True),
    sa.Column("payment_client_secret", sa.String(255)),
    sa.Column("payment_status", sa.String(50)),
    sa.Column("payment_last_error", sa.Text()),
    sa.Column("refund_status", sa.String(20)),
    sa.Column("refund_id", sa.String(255)),
    sa.Column("refund_requested_at", UtcDateTime()),
    sa.Column("reserved_until", UtcDateTime()),
    # The sweeper's backoff for an order whose expiry it could not finish (the provider
    # failed): it is not tried again before sweep_next_at, so it never blocks the others.
    sa.Column("sweep_attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("sweep_next_at", UtcDateTime()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_one_of("status", ORDER_STATUSES), name="status"),
    sa.CheckConstraint(_one_of("refund_status", REFUND_STATUSES), name="refund_status"),
    sa.CheckConstraint("total_cents >= 0", name="total_not_negative"),
    sa.CheckConstraint("shipping_cents >= 0", name="shipping_not_negative"),
    sa.CheckConstraint("total_cents = subtotal_cents + shipping_cents",
                       name="total_is_subtotal_plus_shipping"),
    sa.CheckConstraint(address_whole_or_absent("ship_"), name="ship_address_whole_or_absent"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    sa.UniqueConstraint("customer_id", "idempotency_key"),
)
sa.Index("ix_orders_customer_id_id", orders.c.customer_id, orders.c.id)
sa.Index("ix_orders_status_id", orders.c.status, orders.c.id)
sa.Index("ix_orders_status_reserved_until", orders.c.status, orders.c.reserved_until)

# A customer's default shipping address, which the checkout page fills in.
default_addresses = sa.Table(
    "default_addresses", metadata,
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), primary_key=True),
    *address_columns("", nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

order_items = sa.Table(
    "order_items", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("product_id", Id, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("unit_price_cents", sa.Integer(), nullable=False),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
    sa.CheckConstraint("unit_price_cents > 0", name="unit_price_positive"),
    sa.UniqueConstraint("order_id", "product_id"),
)
sa.Index("ix_order_items_product_id", order_items.c.product_id)

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", Id, sa.ForeignKey("users.id")),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("entity_type", sa.String(20), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("before", Json),
    sa.Column("after", Json),
    sa.CheckConstraint(_one_of("actor_kind", ACTOR_KINDS), name="actor_kind"),
)
sa.Index("ix_audit_log_entity", audit_log.c.entity_type, audit_log.c.entity_id, audit_log.c.id)
sa.Index("ix_audit_log_actor_id_id", audit_log.c.actor_id, audit_log.c.id)

stock_movements = sa.Table(
    "stock_movements", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("product_id", Id, sa.ForeignKey("products.id"), nullable=False),
    sa.Column("delta_available", sa.Integer(), nullable=False),
    sa.Column("delta_reserved", sa.Integer(), nullable=False),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id")),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", Id, sa.ForeignKey("users.id")),
    sa.Column("note", sa.Text()),
    sa.Column("at", UtcDateTime(), nullable=False),
)
sa.Index("ix_stock_movements_product_id_id", stock_movements.c.product_id, stock_movements.c.id)
sa.Index("ix_stock_movements_order_id", stock_movements.c.order_id)

# Money we must send back on our own (paid after the order closed, a second payment for one
# order, a capture that disagrees with the order): written in the same transaction that
# learns of it, then refunded and retried with backoff until the provider accepts.
OWED_REFUND_STATUSES = ("OWED", "SUCCEEDED")
owed_refunds = sa.Table(
    "owed_refunds", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("intent_id", sa.String(255), nullable=False, unique=True),
    sa.Column("amount_cents", sa.BigInteger(), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("refund_id", sa.String(255)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_one_of("status", OWED_REFUND_STATUSES), name="status"),
    sa.CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
)
sa.Index("ix_owed_refunds_status_next_attempt_at", owed_refunds.c.status,
         owed_refunds.c.next_attempt_at)

# One row: this installation's id, generated once. It namespaces what we put at the payment
# provider (metadata, idempotency keys), so two shops on one account never adopt each
# other's payments.
installation = sa.Table(
    "installation", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

webhook_events = sa.Table(
    "webhook_events", metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # the provider's event id
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)

# Customer email, written in the transaction of the change it tells about (the unit of work
# turns the events into rows), delivered afterwards by the sender: claimed SKIP LOCKED and
# leased (next_attempt_at moves on), sent outside any transaction, then marked SENT.
OUTBOX_STATUSES = ("PENDING", "SENT", "FAILED")
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("user_id", Id, sa.ForeignKey("users.id")),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime()),
    sa.CheckConstraint(_one_of("status", OUTBOX_STATUSES), name="status"),
)
sa.Index("ix_outbox_status_next_attempt_at", outbox.c.status, outbox.c.next_attempt_at)

# Password reset tokens: only their SHA-256 is kept; single use, short-lived.
password_resets = sa.Table(
    "password_resets", metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime()),
)
sa.Index("ix_password_resets_user_id_created_at", password_resets.c.user_id,
         password_resets.c.created_at)

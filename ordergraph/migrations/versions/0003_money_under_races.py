"""Money under races: owed refunds, sweeper backoff, CREATED deadlines, the installation id.

- `owed_refunds`: money we must send back on our own, recorded in the transaction that
  learns of it; existing orders whose refund was REQUIRED move into it.
- `orders.sweep_attempts` / `sweep_next_at`: the sweeper backs off an order it could not
  expire instead of retrying it first on every pass.
- CREATED orders carry `reserved_until` from checkout's first transaction; existing ones get
  the five minutes the sweeper used to give them.
- `installation`: this installation's id (generated on first use by the app).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("sweep_attempts", sa.Integer(), server_default="0",
                                   nullable=False))
        batch.add_column(sa.Column("sweep_next_at", TIMESTAMP, nullable=True))

    op.create_table(
        "owed_refunds",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("intent_id", sa.String(length=255), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("refund_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('OWED', 'SUCCEEDED')", name=op.f("ck_owed_refunds_status")),
        sa.CheckConstraint("amount_cents >= 0",
                           name=op.f("ck_owed_refunds_amount_not_negative")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name=op.f("fk_owed_refunds_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owed_refunds")),
        sa.UniqueConstraint("intent_id", name=op.f("uq_owed_refunds_intent_id")),
    )
    op.create_index(op.f("ix_owed_refunds_status_next_attempt_at"), "owed_refunds",
                    ["status", "next_attempt_at"])

    op.create_table(
        "installation",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )

    # Refunds the old code owed move into the queue; CREATED orders get a deadline.
    op.execute(
        "INSERT INTO owed_refunds (order_id, intent_id, amount_cents, currency, reason, status,"
        " attempts, next_attempt_at, created_at, updated_at)"
        " SELECT id, payment_intent_id, total_cents, currency, 'owed before 0003', 'OWED', 0,"
        " updated_at, updated_at, updated_at FROM orders"
        " WHERE refund_status = 'REQUIRED' AND payment_intent_id IS NOT NULL")
    orders = sa.table("orders", sa.column("id", ID), sa.column("status", sa.String()),
                      sa.column("reserved_until", TIMESTAMP), sa.column("created_at", TIMESTAMP))
    bind = op.get_bind()
    stale = bind.execute(sa.select(orders.c.id, orders.c.created_at).where(
        orders.c.status == "CREATED", orders.c.reserved_until.is_(None))).all()
    for order_id, created_at in stale:
        bind.execute(sa.update(orders).where(orders.c.id == order_id)
                     .values(reserved_until=created_at + timedelta(minutes=5)))


def downgrade() -> None:
    op.drop_table("installation")
    op.drop_index(op.f("ix_owed_refunds_status_next_attempt_at"), table_name="owed_refunds")
    op.drop_table("owed_refunds")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("sweep_next_at")
        batch.drop_column("sweep_attempts")

"""Refunds: what was asked of the provider, and what it answered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite adds a CHECK constraint by rebuilding the table.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("refund_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("refund_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("refund_requested_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.create_check_constraint(
            op.f("ck_orders_refund_status"),
            "refund_status IN ('REQUESTED', 'REQUIRED', 'SUCCEEDED')",
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_refund_status"), type_="check")
        batch.drop_column("refund_requested_at")
        batch.drop_column("refund_id")
        batch.drop_column("refund_status")

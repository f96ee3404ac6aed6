"""Customer email and password reset: the outbox, reset tokens, users.password_changed_at.

- `outbox`: email written in the transaction of the change it tells about, delivered later.
- `password_resets`: single-use reset tokens (only their SHA-256), short-lived.
- `users.password_changed_at`: tokens issued before it no longer authenticate.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Not in batch mode: SQLite adds a nullable column in place, and rebuilding `users` would
    # lose its expression index (uq_users_email_lower).
    op.add_column("users", sa.Column("password_changed_at", TIMESTAMP, nullable=True))

    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("status IN ('PENDING', 'SENT', 'FAILED')",
                           name=op.f("ck_outbox_status")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_outbox_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_status_next_attempt_at"), "outbox",
                    ["status", "next_attempt_at"])

    op.create_table(
        "password_resets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_password_resets_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
    )
    op.create_index(op.f("ix_password_resets_user_id_created_at"), "password_resets",
                    ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_password_resets_user_id_created_at"), table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_index(op.f("ix_outbox_status_next_attempt_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_column("users", "password_changed_at")  # SQLite >= 3.35 drops it in place

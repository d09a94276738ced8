"""delivery receipts on the outbox, opted-out addresses, attachments fetched after the message

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("receipt_at", core.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("error_code", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("requeued_at", core.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("attempts_before_requeue", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("attempts_before_requeue", server_default=None)
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("opted_out_at", core.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("opt_out_reason", sa.String(length=500), nullable=True))
    op.create_table(
        "attachment_fetch",
        sa.Column("id", ID, nullable=False),
        sa.Column("channel", sa.String(length=30), nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("interaction_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["channel_account.id"],
            name=op.f("fk_attachment_fetch_account_id_channel_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interaction.id"],
            name=op.f("fk_attachment_fetch_interaction_id_interaction"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment_fetch")),
        sa.UniqueConstraint(
            "interaction_id", "position", name=op.f("uq_attachment_fetch_interaction_id_position")
        ),
    )
    with op.batch_alter_table("attachment_fetch", schema=None) as batch_op:
        batch_op.create_index("ix_attachment_fetch_due", ["status", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("attachment_fetch", schema=None) as batch_op:
        batch_op.drop_index("ix_attachment_fetch_due")
    op.drop_table("attachment_fetch")
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.drop_column("opt_out_reason")
        batch_op.drop_column("opted_out_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("attempts_before_requeue")
        batch_op.drop_column("requeued_at")
        batch_op.drop_column("error_code")
        batch_op.drop_column("receipt_at")
        batch_op.drop_column("receipt")

"""quarantined_message.sender_kind/sender_address: who an item is from, when the channel can
tell (a Telegram update it could not read still names its sender), so privacy requests find it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantined_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_kind", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sender_address", sa.String(length=320), nullable=True))
        batch_op.create_index(
            "ix_quarantined_message_sender", ["sender_kind", "sender_address"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("quarantined_message", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantined_message_sender")
        batch_op.drop_column("sender_address")
        batch_op.drop_column("sender_kind")

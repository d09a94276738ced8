"""an index of the conversations routing has not matched to a queue yet

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

Every routing pass looks for new work (`routing.new_work.find_new_work`: open conversations
without `queue_entered_at`, oldest first). Without an index PostgreSQL walked the primary key
through every conversation to find the few new ones, a cost that grew with the table (5 ms a
pass at 15,000 conversations). The partial index holds only the conversations without
`queue_entered_at`: the new ones, and the few resolved before routing saw them. Its predicate
has no parameter, so prepared statements' generic plans can use it as well.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNQUEUED = "queue_entered_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_unqueued",
            ["id"],
            unique=False,
            sqlite_where=sa.text(UNQUEUED),
            postgresql_where=sa.text(UNQUEUED),
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_unqueued")

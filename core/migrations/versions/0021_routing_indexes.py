"""three indexes for the routing pass: the conversations routing has not matched to a queue
yet, the work each operator holds, and the offers operators refused

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

Every routing pass looks for new work (`routing.new_work.find_new_work`: open conversations
without `queue_entered_at`, oldest first). Without an index PostgreSQL walked the primary key
through every conversation to find the few new ones, a cost that grew with the table (5 ms a
pass at 15,000 conversations). The partial index holds only the conversations without
`queue_entered_at`: the new ones, and the few resolved before routing saw them. Its predicate
has no parameter, so prepared statements' generic plans can use it as well.

Every pass also counts the work each operator holds (`routing.capacity`: assigned, open or
pending). That read every conversation too (2.3 ms at 15,000, growing with the history of
resolved ones); the partial index `ix_conversation_held` holds the held work only, with its
channel, so the count is an index-only scan of it. The statement writes the statuses into its
text, so the planner matches the predicate whatever plan it keeps.

The waiting step asks, for each conversation it reads, whether an operator refused it since it
entered its queue (rejected an offer or let one time out). That probed two indexes of every
decision ever logged, about 5 µs a row; `ix_routing_decision_refusal` holds the refusals only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNQUEUED = "queue_entered_at IS NULL"
HELD = "assignee_id IS NOT NULL AND status IN ('open', 'pending')"
REFUSAL = "kind IN ('rejected', 'timed_out') AND operator_id IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_unqueued",
            ["id"],
            unique=False,
            sqlite_where=sa.text(UNQUEUED),
            postgresql_where=sa.text(UNQUEUED),
        )
        batch_op.create_index(
            "ix_conversation_held",
            ["assignee_id", "channel"],
            unique=False,
            sqlite_where=sa.text(HELD),
            postgresql_where=sa.text(HELD),
        )
    with op.batch_alter_table("routing_decision", schema=None) as batch_op:
        batch_op.create_index(
            "ix_routing_decision_refusal",
            ["conversation_id", "created_at"],
            unique=False,
            sqlite_where=sa.text(REFUSAL),
            postgresql_where=sa.text(REFUSAL),
        )


def downgrade() -> None:
    with op.batch_alter_table("routing_decision", schema=None) as batch_op:
        batch_op.drop_index("ix_routing_decision_refusal")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_held")
        batch_op.drop_index("ix_conversation_unqueued")

"""voice calls (voice_call), tasks grown into callbacks and follow-ups (queue, outcome,
reminders, one open callback per contact), and task reminders as notifications

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.models import IdType, JSONType, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_CALLBACK = "kind = 'callback' AND done_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_id", IdType, nullable=True))
        batch_op.add_column(sa.Column("created_by_id", IdType, nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("notified_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("meta", JSONType, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now())
        )
        batch_op.create_foreign_key(
            "fk_task_queue_id_queue", "queue", ["queue_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            "fk_task_created_by_id_operator",
            "operator",
            ["created_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_task_owner_open", ["owner_id", "done_at", "due_at"])
        batch_op.create_index("ix_task_queue_open", ["queue_id", "done_at", "due_at"])
        batch_op.create_index("ix_task_due", ["done_at", "notified_at", "due_at"])
    op.create_index(
        "uq_task_open_callback",
        "task",
        ["contact_id"],
        unique=True,
        sqlite_where=sa.text(OPEN_CALLBACK),
        postgresql_where=sa.text(OPEN_CALLBACK),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.alter_column("meta", server_default=None)
        batch_op.alter_column("updated_at", server_default=None)

    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.alter_column("interaction_id", existing_type=IdType, nullable=True)
        batch_op.add_column(sa.Column("task_id", IdType, nullable=True))
        batch_op.create_foreign_key(
            "fk_notification_task_id_task", "task", ["task_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint(
            "uq_notification_operator_id_task_id", ["operator_id", "task_id"]
        )

    op.create_table(
        "voice_call",
        sa.Column("id", IdType, nullable=False),
        sa.Column("account_id", IdType, nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("from_number", sa.String(length=40), nullable=False),
        sa.Column("to_number", sa.String(length=40), nullable=False),
        sa.Column("contact_id", IdType, nullable=True),
        sa.Column("conversation_id", IdType, nullable=True),
        sa.Column("interaction_id", IdType, nullable=True),
        sa.Column("task_id", IdType, nullable=True),
        sa.Column("queue_id", IdType, nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("menu_path", sa.String(length=100), nullable=True),
        sa.Column("menu_attempts", sa.Integer(), nullable=False),
        sa.Column("ivr_choice", sa.String(length=100), nullable=True),
        sa.Column("operator_id", IdType, nullable=True),
        sa.Column("leg", sa.Integer(), nullable=False),
        sa.Column("agent_call_sid", sa.String(length=64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=True),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("wrapup_until", UTCDateTime(), nullable=True),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["channel_account.id"],
            name="fk_voice_call_account_id_channel_account",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name="fk_voice_call_contact_id_contact"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_voice_call_conversation_id_conversation",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interaction.id"],
            name="fk_voice_call_interaction_id_interaction",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["task.id"], name="fk_voice_call_task_id_task", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queue.id"], name="fk_voice_call_queue_id_queue", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operator.id"],
            name="fk_voice_call_operator_id_operator",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_voice_call"),
        sa.UniqueConstraint("call_sid", name="uq_voice_call_call_sid"),
    )
    op.create_index("ix_voice_call_state", "voice_call", ["state", "updated_at"])
    op.create_index("ix_voice_call_queue", "voice_call", ["queue_id", "state", "started_at"])
    op.create_index("ix_voice_call_operator", "voice_call", ["operator_id", "ended_at"])
    op.create_index("ix_voice_call_conversation", "voice_call", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("voice_call")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_constraint("uq_notification_operator_id_task_id", type_="unique")
        batch_op.drop_constraint("fk_notification_task_id_task", type_="foreignkey")
        batch_op.drop_column("task_id")
    op.execute("DELETE FROM notification WHERE interaction_id IS NULL")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.alter_column("interaction_id", existing_type=IdType, nullable=False)
    op.drop_index("uq_task_open_callback", table_name="task")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_due")
        batch_op.drop_index("ix_task_queue_open")
        batch_op.drop_index("ix_task_owner_open")
        batch_op.drop_constraint("fk_task_created_by_id_operator", type_="foreignkey")
        batch_op.drop_constraint("fk_task_queue_id_queue", type_="foreignkey")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("meta")
        batch_op.drop_column("notified_at")
        batch_op.drop_column("outcome")
        batch_op.drop_column("created_by_id")
        batch_op.drop_column("queue_id")

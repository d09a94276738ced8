"""rate_limit_count: request counts per fixed window that every server process shares (the
web forms' rate limit on PostgreSQL, where several processes serve)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_count",
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_started_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "purpose", "key", "window_started_at", name=op.f("pk_rate_limit_count")
        ),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_count")

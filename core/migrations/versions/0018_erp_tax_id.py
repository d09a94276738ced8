"""legal_entity.tax_id: a company's tax id (VAT number, ИНН, ...), so the ERP bridge can find
the customer by it when the CRM knows no ERP reference for it

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06

Existing legal entities get none (null); supervisors set it through the API
(`PATCH /api/v1/legal-entities/{id}`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("legal_entity", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tax_id", sa.String(length=50), nullable=True))
        batch_op.create_index(batch_op.f("ix_legal_entity_tax_id"), ["tax_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("legal_entity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_entity_tax_id"))
        batch_op.drop_column("tax_id")

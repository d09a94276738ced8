"""search: full-text indexes of messages and contacts; saved views

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

PostgreSQL: GIN expression indexes over `to_tsvector('simple', ...)` (core/search.py queries
the very same expressions, so the planner uses them); nothing to backfill, building the index
indexes the existing rows.

SQLite: FTS5 tables (`unicode61`, diacritics removed) kept in step by triggers:
`interaction_fts` is an external-content table over `interaction` (subject, text);
`contact_fts` holds each contact's name and the addresses of its identities, rowid = contact
id. Both are filled from the existing rows here. Alembic's batch mode rebuilds a SQLite table
by copying it, which drops its triggers: a later migration that batch-alters `interaction`,
`contact` or `identity` must call `core.search.sqlite_search_triggers()` again afterwards.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saved_view",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", core.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operator.id"],
            name=op.f("fk_saved_view_operator_id_operator"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_view")),
        sa.UniqueConstraint("operator_id", "name", name=op.f("uq_saved_view_operator_id_name")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRESQL_INDEXES:
            op.execute(statement)
    else:
        for statement in (*SQLITE_TABLES, *SQLITE_TRIGGERS, *SQLITE_BACKFILL):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("ix_interaction_search", "ix_contact_search", "ix_identity_search"):
            op.execute(f"DROP INDEX IF EXISTS {name}")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS interaction_fts")
        op.execute("DROP TABLE IF EXISTS contact_fts")
    op.drop_table("saved_view")


# The documents, exactly as core/search.py queries them (PostgreSQL uses an expression index
# only for the same expression).
POSTGRESQL_INDEXES = (
    "CREATE INDEX ix_interaction_search ON interaction USING gin "
    "(to_tsvector('simple'::regconfig, left(subject || ' ' || text, 100000)))",
    "CREATE INDEX ix_contact_search ON contact USING gin "
    "(to_tsvector('simple'::regconfig, display_name))",
    "CREATE INDEX ix_identity_search ON identity USING gin "
    "(to_tsvector('simple'::regconfig, translate(address, '@.+-_', '     ')))",
)

SQLITE_TABLES = (
    "CREATE VIRTUAL TABLE interaction_fts USING fts5(subject, text, content='interaction', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE contact_fts USING fts5(name, addresses, "
    "tokenize='unicode61 remove_diacritics 2')",
)

# One contact's row of contact_fts, written afresh: its name and every identity's address.
_CONTACT_ROW = (
    "DELETE FROM contact_fts WHERE rowid = {id}; "
    "INSERT INTO contact_fts (rowid, name, addresses) SELECT contact.id, contact.display_name, "
    "coalesce((SELECT group_concat(address, ' ') FROM identity "
    "WHERE identity.contact_id = contact.id), '') FROM contact WHERE contact.id = {id};"
)

SQLITE_TRIGGERS = (
    "CREATE TRIGGER interaction_fts_insert AFTER INSERT ON interaction BEGIN "
    "INSERT INTO interaction_fts (rowid, subject, text) VALUES (new.id, new.subject, new.text); "
    "END",
    "CREATE TRIGGER interaction_fts_delete AFTER DELETE ON interaction BEGIN "
    "INSERT INTO interaction_fts (interaction_fts, rowid, subject, text) "
    "VALUES ('delete', old.id, old.subject, old.text); END",
    "CREATE TRIGGER interaction_fts_update AFTER UPDATE OF subject, text ON interaction BEGIN "
    "INSERT INTO interaction_fts (interaction_fts, rowid, subject, text) "
    "VALUES ('delete', old.id, old.subject, old.text); "
    "INSERT INTO interaction_fts (rowid, subject, text) VALUES (new.id, new.subject, new.text); "
    "END",
    "CREATE TRIGGER contact_fts_insert AFTER INSERT ON contact BEGIN "
    + _CONTACT_ROW.format(id="new.id")
    + " END",
    "CREATE TRIGGER contact_fts_update AFTER UPDATE OF display_name ON contact BEGIN "
    + _CONTACT_ROW.format(id="new.id")
    + " END",
    "CREATE TRIGGER contact_fts_delete AFTER DELETE ON contact BEGIN "
    "DELETE FROM contact_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER identity_fts_insert AFTER INSERT ON identity BEGIN "
    + _CONTACT_ROW.format(id="new.contact_id")
    + " END",
    "CREATE TRIGGER identity_fts_update AFTER UPDATE OF address, contact_id ON identity BEGIN "
    + _CONTACT_ROW.format(id="old.contact_id")
    + " "
    + _CONTACT_ROW.format(id="new.contact_id")
    + " END",
    "CREATE TRIGGER identity_fts_delete AFTER DELETE ON identity BEGIN "
    + _CONTACT_ROW.format(id="old.contact_id")
    + " END",
)

SQLITE_TRIGGER_NAMES = (
    "interaction_fts_insert",
    "interaction_fts_delete",
    "interaction_fts_update",
    "contact_fts_insert",
    "contact_fts_update",
    "contact_fts_delete",
    "identity_fts_insert",
    "identity_fts_update",
    "identity_fts_delete",
)

SQLITE_BACKFILL = (
    "INSERT INTO interaction_fts (interaction_fts) VALUES ('rebuild')",
    "INSERT INTO contact_fts (rowid, name, addresses) SELECT contact.id, contact.display_name, "
    "coalesce((SELECT group_concat(address, ' ') FROM identity "
    "WHERE identity.contact_id = contact.id), '') FROM contact",
)

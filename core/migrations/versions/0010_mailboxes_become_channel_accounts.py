"""mailboxes become channel accounts; quarantine is generic

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Every `mailbox` row becomes a `channel_account` row of channel "email": its settings as the
email channel's settings JSON (the encrypted passwords move as they are: no key is needed),
`active` as `enabled`, its queue, `from_config` and health. Every reference follows it:
- the IMAP cursor (`channel_cursor` of channel "email") is keyed `account:<new id>` instead of
  the mailbox id, its state (UIDVALIDITY, last UID, backfill) unchanged, so the poller
  resumes where it stood;
- email interactions' `meta.mailbox_id` becomes `meta.account_id` with the new id (replies
  keep going out from the account the customer wrote to);
- quarantined messages get (channel, account_id, reference) with the reference
  `<uidvalidity>:<uid>`, in place of (mailbox_id, uidvalidity, uid).
The `mailbox` table is dropped. The downgrade restores it from the email accounts (and drops
quarantine rows of other channels, which the old table cannot hold).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "email"
IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# The email settings a mailbox row held, with the defaults its columns had.
SETTINGS: dict[str, Any] = {
    "address": "",
    "display_name": "",
    "imap_host": "",
    "imap_port": 993,
    "imap_tls": "ssl",
    "imap_user": "",
    "imap_password": "",
    "imap_folder": "INBOX",
    "smtp_host": "",
    "smtp_port": 465,
    "smtp_tls": "ssl",
    "smtp_user": "",
    "smtp_password": "",
    "after_import": "leave",
    "move_to_folder": None,
    "use_idle": True,
    "poll_seconds": 60,
    "backfill_days": 30,
}
# The columns both tables share, with their types.
ACCOUNT_COLUMNS: dict[str, Any] = {
    "name": sa.String(),
    "queue_id": IdType,
    "from_config": sa.Boolean(),
    "last_success_at": core.models.UTCDateTime(),
    "last_error": sa.Text(),
    "last_error_at": core.models.UTCDateTime(),
    "created_at": core.models.UTCDateTime(),
    "updated_at": core.models.UTCDateTime(),
}


def _setting_type(default: Any) -> Any:
    if isinstance(default, bool):
        return sa.Boolean()
    return sa.Integer() if isinstance(default, int) else sa.String()


_mailbox = sa.table(
    "mailbox",
    sa.column("id", IdType),
    sa.column("active", sa.Boolean()),
    *(sa.column(name, kind) for name, kind in ACCOUNT_COLUMNS.items()),
    *(sa.column(name, _setting_type(default)) for name, default in SETTINGS.items()),
)
_account = sa.table(
    "channel_account",
    sa.column("id", IdType),
    sa.column("channel", sa.String()),
    sa.column("settings", JSONType),
    sa.column("enabled", sa.Boolean()),
    *(sa.column(name, kind) for name, kind in ACCOUNT_COLUMNS.items()),
)
_cursor = sa.table(
    "channel_cursor", sa.column("channel", sa.String()), sa.column("account", sa.String())
)
_quarantine = sa.table(
    "quarantined_message",
    sa.column("id", IdType),
    sa.column("mailbox_id", IdType),
    sa.column("uidvalidity", sa.BigInteger()),
    sa.column("uid", sa.BigInteger()),
    sa.column("channel", sa.String()),
    sa.column("account_id", IdType),
    sa.column("reference", sa.String()),
)


def _move_meta(old_key: str, new_key: str, old_id: int, new_id: int) -> None:
    """Email interactions' meta: `old_key = old_id` becomes `new_key = new_id`."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        statement = sa.text(
            "UPDATE interaction SET meta = (meta - CAST(:old_key AS text))"
            " || jsonb_build_object(CAST(:new_key AS text), CAST(:new AS bigint))"
            " WHERE channel = :channel AND meta ->> CAST(:old_key AS text) = :old_text"
        )
    else:
        statement = sa.text(
            "UPDATE interaction SET meta = json_set(json_remove(meta, '$.' || :old_key),"
            " '$.' || :new_key, :new)"
            " WHERE channel = :channel AND json_extract(meta, '$.' || :old_key) = :old"
        )
    bind.execute(
        statement,
        {
            "old_key": old_key,
            "new_key": new_key,
            "old": old_id,
            "old_text": str(old_id),
            "new": new_id,
            "channel": CHANNEL,
        },
    )


def upgrade() -> None:
    bind = op.get_bind()
    taken = bind.execute(
        sa.select(_account.c.name).where(
            _account.c.channel == CHANNEL,
            _account.c.name.in_(sa.select(_mailbox.c.name)),
        )
    ).first()
    if taken is not None:
        raise RuntimeError(
            f"migration 0009 cannot move mailbox {taken.name!r}: an email channel account of "
            "that name exists already; rename one of them and migrate again"
        )
    accounts: dict[int, int] = {}
    for row in bind.execute(sa.select(_mailbox).order_by(_mailbox.c.id)).all():
        settings = {name: getattr(row, name) for name in SETTINGS}
        accounts[row.id] = bind.execute(
            _account.insert()
            .values(
                channel=CHANNEL,
                settings=settings,
                enabled=row.active,
                **{name: getattr(row, name) for name in ACCOUNT_COLUMNS},
            )
            .returning(_account.c.id)
        ).scalar_one()

    with op.batch_alter_table("quarantined_message") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("account_id", IdType, nullable=True))
        batch.add_column(sa.Column("reference", sa.String(length=200), nullable=True))

    for mailbox_id, account_id in accounts.items():
        bind.execute(
            _cursor.update()
            .where(_cursor.c.channel == CHANNEL, _cursor.c.account == str(mailbox_id))
            .values(account=f"account:{account_id}")
        )
        _move_meta("mailbox_id", "account_id", mailbox_id, account_id)
        bind.execute(
            _quarantine.update()
            .where(_quarantine.c.mailbox_id == mailbox_id)
            .values(
                channel=CHANNEL,
                account_id=account_id,
                reference=sa.cast(_quarantine.c.uidvalidity, sa.Text())
                + ":"
                + sa.cast(_quarantine.c.uid, sa.Text()),
            )
        )

    with op.batch_alter_table("quarantined_message") as batch:
        batch.drop_constraint("uq_quarantined_message_mailbox_id_uidvalidity_uid", type_="unique")
        batch.drop_constraint("fk_quarantined_message_mailbox_id_mailbox", type_="foreignkey")
        batch.drop_column("uid")
        batch.drop_column("uidvalidity")
        batch.drop_column("mailbox_id")
        for name in ("channel", "account_id", "reference"):
            batch.alter_column(name, nullable=False)
        batch.create_foreign_key(
            "fk_quarantined_message_account_id_channel_account",
            "channel_account",
            ["account_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_quarantined_message_account_id_reference", ["account_id", "reference"]
        )
    op.drop_table("mailbox")


def downgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "mailbox",
        sa.Column("id", IdType, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("imap_host", sa.String(length=255), nullable=False),
        sa.Column("imap_port", sa.Integer(), nullable=False),
        sa.Column("imap_tls", sa.String(length=10), nullable=False),
        sa.Column("imap_user", sa.String(length=320), nullable=False),
        sa.Column("imap_password", sa.Text(), nullable=False),
        sa.Column("imap_folder", sa.String(length=200), nullable=False),
        sa.Column("smtp_host", sa.String(length=255), nullable=False),
        sa.Column("smtp_port", sa.Integer(), nullable=False),
        sa.Column("smtp_tls", sa.String(length=10), nullable=False),
        sa.Column("smtp_user", sa.String(length=320), nullable=False),
        sa.Column("smtp_password", sa.Text(), nullable=False),
        sa.Column("queue_id", IdType, nullable=True),
        sa.Column("after_import", sa.String(length=10), nullable=False),
        sa.Column("move_to_folder", sa.String(length=200), nullable=True),
        sa.Column("use_idle", sa.Boolean(), nullable=False),
        sa.Column("poll_seconds", sa.Integer(), nullable=False),
        sa.Column("backfill_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("from_config", sa.Boolean(), nullable=False),
        sa.Column("last_success_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"], ["queue.id"], name=op.f("fk_mailbox_queue_id_queue"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox")),
        sa.UniqueConstraint("name", name=op.f("uq_mailbox_name")),
    )
    mailboxes: dict[int, int] = {}
    email_accounts = sa.select(_account).where(_account.c.channel == CHANNEL)
    for row in bind.execute(email_accounts.order_by(_account.c.id)).all():
        stored = dict(row.settings or {})
        settings = {name: stored.get(name, default) for name, default in SETTINGS.items()}
        mailboxes[row.id] = bind.execute(
            _mailbox.insert()
            .values(
                active=row.enabled,
                **settings,
                **{name: getattr(row, name) for name in ACCOUNT_COLUMNS},
            )
            .returning(_mailbox.c.id)
        ).scalar_one()

    with op.batch_alter_table("quarantined_message") as batch:
        batch.add_column(sa.Column("mailbox_id", IdType, nullable=True))
        batch.add_column(sa.Column("uidvalidity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("uid", sa.BigInteger(), nullable=True))
    held = bind.execute(
        sa.select(_quarantine.c.id, _quarantine.c.account_id, _quarantine.c.reference).where(
            _quarantine.c.channel == CHANNEL
        )
    ).all()
    for row in held:
        uidvalidity, _, uid = str(row.reference).partition(":")
        if row.account_id in mailboxes and uidvalidity.isdigit() and uid.isdigit():
            bind.execute(
                _quarantine.update()
                .where(_quarantine.c.id == row.id)
                .values(
                    mailbox_id=mailboxes[row.account_id], uidvalidity=int(uidvalidity), uid=int(uid)
                )
            )
    # What the old table cannot hold: other channels' items.
    bind.execute(_quarantine.delete().where(_quarantine.c.mailbox_id.is_(None)))
    with op.batch_alter_table("quarantined_message") as batch:
        batch.drop_constraint("uq_quarantined_message_account_id_reference", type_="unique")
        batch.drop_constraint(
            "fk_quarantined_message_account_id_channel_account", type_="foreignkey"
        )
        batch.drop_column("reference")
        batch.drop_column("account_id")
        batch.drop_column("channel")
        for name in ("mailbox_id", "uidvalidity", "uid"):
            batch.alter_column(name, nullable=False)
        batch.create_foreign_key(
            "fk_quarantined_message_mailbox_id_mailbox",
            "mailbox",
            ["mailbox_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_quarantined_message_mailbox_id_uidvalidity_uid",
            ["mailbox_id", "uidvalidity", "uid"],
        )

    for account_id, mailbox_id in mailboxes.items():
        bind.execute(
            _cursor.update()
            .where(_cursor.c.channel == CHANNEL, _cursor.c.account == f"account:{account_id}")
            .values(account=str(mailbox_id))
        )
        _move_meta("account_id", "mailbox_id", account_id, mailbox_id)
    bind.execute(_account.delete().where(_account.c.channel == CHANNEL))

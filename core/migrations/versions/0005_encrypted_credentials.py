"""mailbox passwords encrypted at rest

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

The password columns become Text (a ciphertext is longer than the 1000 characters a password
may have) and every clear-text password is encrypted with the installation's credentials key,
which `omnicrm migrate` passes in `config.attributes["credentials"]` (core/migrate.py). Without
a key the upgrade only runs where no password is stored yet (a new database); otherwise it stops
before changing anything. The downgrade decrypts them again.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from core.credentials import CredentialCipher, CredentialError, is_encrypted

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SECRETS = ("imap_password", "smtp_password")
_mailbox = sa.table(
    "mailbox",
    sa.column("id", sa.BigInteger()),
    sa.column("name", sa.String()),
    *(sa.column(name, sa.Text()) for name in SECRETS),
)
NO_KEY = (
    "migration 0005 {action} the stored mailbox passwords and needs the credentials key: "
    "run `omnicrm migrate` with the installation's settings (credentials_key or secret_key)"
)


def _cipher(action: str) -> CredentialCipher:
    cipher = context.config.attributes.get("credentials")
    if not isinstance(cipher, CredentialCipher):
        raise CredentialError(NO_KEY.format(action=action))
    return cipher


def _rows() -> list[Any]:
    query = sa.select(_mailbox).order_by(_mailbox.c.id)
    return list(op.get_bind().execute(query))


def _stored(row: Any, encrypted: bool) -> dict[str, str]:
    """The row's passwords that are set and are (or are not) encrypted."""
    values = {name: getattr(row, name) for name in SECRETS}
    return {
        name: value for name, value in values.items() if value and is_encrypted(value) is encrypted
    }


def _write(mailbox_id: int, values: dict[str, str]) -> None:
    if values:
        op.execute(_mailbox.update().where(_mailbox.c.id == mailbox_id).values(**values))


def upgrade() -> None:
    # Every password is read, and the key's presence checked, before anything changes.
    clear = [(row.id, values) for row in _rows() if (values := _stored(row, encrypted=False))]
    encrypted: list[tuple[int, dict[str, str]]] = []
    if clear:
        cipher = _cipher("encrypts")
        encrypted = [
            (mailbox_id, {name: cipher.encrypt(value) for name, value in values.items()})
            for mailbox_id, values in clear
        ]
    with op.batch_alter_table("mailbox", schema=None) as batch_op:
        for name in SECRETS:
            batch_op.alter_column(
                name, existing_type=sa.String(length=1000), type_=sa.Text(), existing_nullable=False
            )
    for mailbox_id, values in encrypted:
        _write(mailbox_id, values)


def downgrade() -> None:
    rows = [(row, values) for row in _rows() if (values := _stored(row, encrypted=True))]
    plain: list[tuple[int, dict[str, str]]] = []
    if rows:
        cipher = _cipher("decrypts")
        # CredentialError (naming the mailbox) if a value is under a key not configured.
        plain = [
            (
                row.id,
                {
                    name: cipher.decrypt(value, f"{name} of mailbox {row.name!r}")
                    for name, value in values.items()
                },
            )
            for row, values in rows
        ]
    for mailbox_id, values in plain:
        _write(mailbox_id, values)
    with op.batch_alter_table("mailbox", schema=None) as batch_op:
        for name in SECRETS:
            batch_op.alter_column(
                name, existing_type=sa.Text(), type_=sa.String(length=1000), existing_nullable=False
            )

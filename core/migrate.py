"""Run Alembic migrations programmatically (the `omnicrm migrate` command and the tests).

Some migrations change data that is encrypted at rest (0005 encrypts the mailbox passwords):
they get the installation's `CredentialCipher` through `config.attributes["credentials"]`.
Without one (None) such a migration runs only where it has nothing to encrypt or decrypt, and
otherwise stops with a CredentialError saying to run `omnicrm migrate`, which passes the key
from the settings: guessing a key (the development one) would lock the server out of its own
passwords.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from core.credentials import CredentialCipher

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
CREDENTIALS_ATTRIBUTE = "credentials"


def alembic_config(database_url: str, credentials: CredentialCipher | None = None) -> Config:
    config = Config(attributes={CREDENTIALS_ATTRIBUTE: credentials})
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade_sync(
    database_url: str, revision: str = "head", *, credentials: CredentialCipher | None = None
) -> None:
    """Upgrade the schema; must not be called from a running event loop (env.py owns one)."""
    command.upgrade(alembic_config(database_url, credentials), revision)


def downgrade_sync(
    database_url: str, revision: str, *, credentials: CredentialCipher | None = None
) -> None:
    command.downgrade(alembic_config(database_url, credentials), revision)


async def upgrade(
    database_url: str, revision: str = "head", *, credentials: CredentialCipher | None = None
) -> None:
    # env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade_sync, database_url, revision, credentials=credentials)


async def downgrade(
    database_url: str, revision: str, *, credentials: CredentialCipher | None = None
) -> None:
    await asyncio.to_thread(downgrade_sync, database_url, revision, credentials=credentials)

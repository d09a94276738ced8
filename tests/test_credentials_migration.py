"""Migration 0005: a database of the version before, with mailbox passwords in clear text,
comes out with them encrypted under the installation's key (and, at head, moved into the email
channel's accounts by 0009), its mailboxes still log in, and nothing else is lost; without a
key it stops before changing anything; downgrading decrypts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.credentials import PREFIX, CredentialCipher, CredentialError
from core.db import make_engine
from core.events import EventBus, session_info
from core.migrate import downgrade, upgrade
from core.models import UTCDateTime
from tests.mailservers import DovecotServer, MailUser
from tests.test_credentials import imports_with
from web.cli import main

pytest_plugins = ["tests.mailservers"]  # the `dovecot` fixture

KEY = "the installation's credentials key"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SMTP_SECRET = "smtp-Secret-2207"

pytestmark = [pytest.mark.usefixtures("keep_logging"), pytest.mark.both_databases]


@contextlib.asynccontextmanager
async def engine_of(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine for one step: a migration changes column types under its cached statements."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def fetch(url: str, query: str) -> list[dict[str, Any]]:
    async with engine_of(url) as engine, engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(text(query))).mappings()]


def settings_of(row: dict[str, Any]) -> dict[str, Any]:
    """A channel account's settings as read with plain SQL (JSON text, or JSONB's text)."""
    value = row["settings"]
    return dict(json.loads(value)) if isinstance(value, str) else dict(value)


async def at_0004_with_clear_text(url: str, server: DovecotServer, user: MailUser) -> None:
    """Migrate to 0004 and store a mailbox as 0004 did, with a quarantined message of it."""
    await upgrade(url, "0004")
    async with engine_of(url) as engine, engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO mailbox (id, name, address, display_name, imap_host, imap_port,"
                " imap_tls, imap_user, imap_password, imap_folder, smtp_host, smtp_port, smtp_tls,"
                " smtp_user, smtp_password, after_import, use_idle, poll_seconds, backfill_days,"
                " active, from_config, created_at, updated_at) VALUES (1, :name, :address, '',"
                " :host, :port, 'none', :login, :password, 'INBOX', '127.0.0.1', 465, 'none',"
                " 'relay', :smtp, 'leave', true, 1, 30, true, false, :now, :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {
                "name": user.login,
                "address": f"{user.login}@omnicrm.test",
                "host": server.host,
                "port": server.port,
                "login": user.login,
                "password": user.password,
                "smtp": SMTP_SECRET,
                "now": NOW,
            },
        )
        await connection.execute(
            text(
                "INSERT INTO quarantined_message (mailbox_id, uidvalidity, uid, raw, reason,"
                " status, created_at, updated_at) VALUES (1, 1, 1, :raw, 'unreadable',"
                " 'quarantined', :now, :now)"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"raw": b"Subject: kept\r\n\r\nkept", "now": NOW},
        )


async def test_the_migration_encrypts_clear_text_passwords_and_the_mailbox_still_logs_in(
    scratch_url: str,
    dovecot: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = dovecot.add_user("migrated")
    await at_0004_with_clear_text(scratch_url, dovecot, user)

    # `omnicrm migrate` passes the key of the installation's settings.
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OMNICRM_DATABASE_URL", scratch_url)
    monkeypatch.setenv("OMNICRM_CREDENTIALS_KEY", KEY)
    monkeypatch.setenv("OMNICRM_LOG_JSON", "false")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert await asyncio.to_thread(main, ["migrate"]) == 0

    [row] = await fetch(scratch_url, "SELECT * FROM channel_account")
    assert user.password not in repr(row)
    assert SMTP_SECRET not in repr(row)
    settings = settings_of(row)
    assert settings["imap_password"].startswith(PREFIX)
    assert settings["smtp_password"].startswith(PREFIX)
    # The mailbox's other rows are still there (SQLite copies the table to alter it).
    assert len(await fetch(scratch_url, "SELECT id FROM quarantined_message")) == 1

    cipher = CredentialCipher(KEY)
    assert cipher.decrypt(settings["smtp_password"]) == SMTP_SECRET
    async with engine_of(scratch_url) as engine:
        sessions = async_sessionmaker(engine, expire_on_commit=False, info=session_info(EventBus()))
        await imports_with(sessions, cipher, row["id"], dovecot, user)

    await downgrade(scratch_url, "0004", credentials=cipher)
    [back] = await fetch(scratch_url, "SELECT imap_password, smtp_password FROM mailbox")
    assert back == {"imap_password": user.password, "smtp_password": SMTP_SECRET}
    assert len(await fetch(scratch_url, "SELECT id FROM quarantined_message")) == 1


async def test_without_a_key_the_migration_stops_before_changing_anything(
    scratch_url: str, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("nokey")
    await at_0004_with_clear_text(scratch_url, dovecot, user)
    with pytest.raises(CredentialError, match=r"needs the credentials key: run `omnicrm migrate`"):
        await upgrade(scratch_url)
    [row] = await fetch(scratch_url, "SELECT imap_password FROM mailbox")
    assert row["imap_password"] == user.password
    [version] = await fetch(scratch_url, "SELECT version_num FROM alembic_version")
    assert version["version_num"] == "0004"

    # With a key that cannot read them, the downgrade says which value and changes nothing.
    await upgrade(scratch_url, credentials=CredentialCipher(KEY))
    [encrypted] = await fetch(scratch_url, "SELECT settings FROM channel_account")
    with pytest.raises(CredentialError, match=r"imap_password of mailbox .*credentials_previous"):
        await downgrade(scratch_url, "0004", credentials=CredentialCipher("some other key!!"))
    assert await fetch(scratch_url, "SELECT settings FROM channel_account") == [encrypted]

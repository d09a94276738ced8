"""Mailbox passwords are never in clear text in the database, whichever way they arrive: the
API (create and change), the CLI and the config file synced at start-up. The table is read
with plain SQL, as someone holding a copy of the database would read it."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import text

from core.db import SessionFactory
from core.models import Role
from core.settings import MailboxSettings, Settings
from tests.conftest import UserFactory
from web.app import create_app
from web.cli import main

IMAP_SECRET = "imap-Secret-4471"
SMTP_SECRET = "smtp-Secret-8093"
PREFIX = "enc:v1:"  # the documented format of a stored credential (docs/security.md)

pytestmark = pytest.mark.usefixtures("keep_logging")


async def raw_rows(sessions: SessionFactory) -> dict[str, dict[str, Any]]:
    """Every mailbox row as stored, by name."""
    async with sessions() as session:
        result = await session.execute(text("SELECT * FROM mailbox ORDER BY id"))
        return {row["name"]: dict(row) for row in result.mappings()}


def assert_encrypted(row: dict[str, Any], *secrets: str) -> None:
    """No column holds any of the secrets; both password columns hold ciphertexts."""
    dumped = repr(row)
    for secret in secrets:
        assert secret not in dumped
    for column in ("imap_password", "smtp_password"):
        assert row[column].startswith(PREFIX), f"{column} is not encrypted: {row[column][:12]}…"


def new_mailbox(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "support",
        "address": "support@example.com",
        "imap_host": "imap.example.com",
        "imap_user": "support@example.com",
        "imap_password": IMAP_SECRET,
        "smtp_host": "smtp.example.com",
        "smtp_user": "support@example.com",
        "smtp_password": SMTP_SECRET,
        **overrides,
    }


async def test_the_api_stores_passwords_encrypted(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/mailboxes", json=new_mailbox())
    assert response.status == 201, await response.text()
    mailbox_id = (await response.json())["id"]
    created = (await raw_rows(sessions))["support"]
    assert_encrypted(created, IMAP_SECRET, SMTP_SECRET)

    changed_secret = "changed-Secret-1123"
    path = f"/api/v1/mailboxes/{mailbox_id}"
    response = await admin.patch(path, json={"imap_password": changed_secret})
    assert response.status == 200, await response.text()
    changed = (await raw_rows(sessions))["support"]
    assert_encrypted(changed, changed_secret, IMAP_SECRET, SMTP_SECRET)
    assert changed["imap_password"] != created["imap_password"]
    assert changed["smtp_password"] == created["smtp_password"]

    # The same password again is no change: the stored value stays as it is.
    response = await admin.patch(path, json={"imap_password": changed_secret})
    assert response.status == 200
    assert (await raw_rows(sessions))["support"]["imap_password"] == changed["imap_password"]


async def test_the_cli_stores_passwords_encrypted(
    sessions: SessionFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OMNICRM_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNICRM_LOG_JSON", "false")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{IMAP_SECRET}\n{SMTP_SECRET}\n"))
    code = await asyncio.to_thread(
        main,
        [
            "mailbox", "add", "--name", "support", "--address", "support@example.com",
            "--imap-host", "imap.example.com", "--imap-user", "support@example.com",
            "--smtp-host", "smtp.example.com", "--smtp-user", "relay", "--password-stdin",
        ],
    )  # fmt: skip
    assert code == 0
    assert_encrypted((await raw_rows(sessions))["support"], IMAP_SECRET, SMTP_SECRET)


async def test_the_config_file_sync_stores_passwords_encrypted_once(
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    declared = MailboxSettings.model_validate(new_mailbox())
    configured = settings.model_copy(update={"mailboxes": [declared]})
    first = await aiohttp_server(create_app(configured, background_workers=False))
    synced = (await raw_rows(sessions))["support"]
    assert synced["from_config"]
    assert_encrypted(synced, IMAP_SECRET, SMTP_SECRET)
    await first.close()

    # A restart with the same file writes nothing: the row is exactly as it was.
    second = await aiohttp_server(create_app(configured, background_workers=False))
    assert (await raw_rows(sessions))["support"] == synced
    await second.close()

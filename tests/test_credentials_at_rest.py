"""Channel account secrets (an email account's passwords) are never in clear text in the
database, whichever way they arrive: the API (create and change), the CLI and the config file
synced at start-up. The table is read with plain SQL, as someone holding a copy of the
database would read it."""

from __future__ import annotations

import asyncio
import io
import json
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
    """Every channel account row as stored, by name (its settings JSON as read from the
    database: text on SQLite, JSONB's text from asyncpg)."""
    async with sessions() as session:
        result = await session.execute(text("SELECT * FROM channel_account ORDER BY id"))
        rows = {row["name"]: dict(row) for row in result.mappings()}
    for row in rows.values():
        if isinstance(row["settings"], str):
            row["settings"] = json.loads(row["settings"])
    return rows


def assert_encrypted(row: dict[str, Any], *secrets: str) -> None:
    """No column holds any of the secrets; both password settings hold ciphertexts."""
    dumped = repr(row)
    for secret in secrets:
        assert secret not in dumped
    for name in ("imap_password", "smtp_password"):
        value = row["settings"][name]
        assert value.startswith(PREFIX), f"{name} is not encrypted: {value[:12]}…"


def new_mailbox(**overrides: Any) -> dict[str, Any]:
    """An email account's settings (the email channel's settings model)."""
    return {
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
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={"channel": "email", "name": "support", "settings": new_mailbox()},
    )
    assert response.status == 201, await response.text()
    account_id = (await response.json())["id"]
    created = (await raw_rows(sessions))["support"]
    assert_encrypted(created, IMAP_SECRET, SMTP_SECRET)

    changed_secret = "changed-Secret-1123"
    path = f"/api/v1/channel-accounts/{account_id}"
    response = await admin.patch(path, json={"settings": {"imap_password": changed_secret}})
    assert response.status == 200, await response.text()
    changed = (await raw_rows(sessions))["support"]
    assert_encrypted(changed, changed_secret, IMAP_SECRET, SMTP_SECRET)
    assert changed["settings"]["imap_password"] != created["settings"]["imap_password"]
    assert changed["settings"]["smtp_password"] == created["settings"]["smtp_password"]

    # The same password again is no change: the stored value stays as it is.
    response = await admin.patch(path, json={"settings": {"imap_password": changed_secret}})
    assert response.status == 200
    assert (await raw_rows(sessions))["support"] == changed


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
            "channel", "add", "email", "--name", "support", "--address", "support@example.com",
            "--imap-host", "imap.example.com", "--imap-user", "support@example.com",
            "--smtp-host", "smtp.example.com", "--smtp-user", "relay",
            "--imap-password-stdin", "--smtp-password-stdin",
        ],
    )  # fmt: skip
    assert code == 0
    assert_encrypted((await raw_rows(sessions))["support"], IMAP_SECRET, SMTP_SECRET)


async def test_the_config_file_sync_stores_passwords_encrypted_once(
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    declared = MailboxSettings.model_validate({"name": "support", **new_mailbox()})
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

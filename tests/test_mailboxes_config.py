"""Mailboxes from the config file and the CLI: synced by name, passwords from the
environment, read-only in the API, never printed."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.audit import CLI
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.errors import InvalidInput
from core.events import Event, EventBus
from core.mailboxes import ConfigSync, create_mailbox, sync_config_mailboxes
from core.models import AuditEntry, Mailbox, Role
from core.queues import create_queue
from core.settings import INSECURE_DEV_SECRET, MailboxSettings, SettingsError, load_settings
from tests.conftest import UserFactory
from web.cli import main

SUPPORT_PASSWORD = "support-Secret-2718"
SALES_PASSWORD = "sales-Secret-3141"
# The credentials key of settings that set none, as the CLI runs here: derived from the
# development secret_key. The sync below uses it too.
CIPHER = CredentialCipher(INSECURE_DEV_SECRET)


def support(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "support",
        "address": "support@shop.example",
        "display_name": "Shop Support",
        "imap_host": "imap.shop.example",
        "imap_user": "support@shop.example",
        "imap_password_env": "TEST_SUPPORT_PASSWORD",
        "imap_folder": "Support",
        "smtp_host": "smtp.shop.example",
        "smtp_port": 587,
        "smtp_tls": "starttls",
        "smtp_user": "support@shop.example",
        "smtp_password_env": "TEST_SUPPORT_PASSWORD",
        "queue": "Support",
        **overrides,
    }


def sales(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "sales",
        "address": "sales@shop.example",
        "imap_host": "mail.shop.example",
        "imap_port": 143,
        "imap_tls": "starttls",
        "imap_user": "sales",
        "imap_password_env": "TEST_SALES_PASSWORD",
        "smtp_host": "mail.shop.example",
        "after_import": "move",
        "move_to_folder": "Imported",
        "use_idle": False,
        "poll_seconds": 120,
        **overrides,
    }


def config_file(path: Path, *mailboxes: dict[str, Any], top: str = "") -> Path:
    """A TOML config with one [[mailboxes]] table per mapping (values as JSON: TOML reads it)."""
    tables = [
        "[[mailboxes]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in m.items())
        for m in mailboxes
    ]
    path.write_text(top + "\n".join(tables))
    return path


@pytest.fixture(autouse=True)
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEST_SUPPORT_PASSWORD", SUPPORT_PASSWORD)
    monkeypatch.setenv("TEST_SALES_PASSWORD", SALES_PASSWORD)


def load_mailboxes(path: Path) -> list[MailboxSettings]:
    return load_settings(path).mailboxes


async def sync(sessions: SessionFactory, path: Path) -> ConfigSync:
    async with sessions() as session, session.begin():
        return await sync_config_mailboxes(session, load_mailboxes(path), cipher=CIPHER)


async def mailboxes_by_name(sessions: SessionFactory) -> dict[str, Mailbox]:
    async with sessions() as session:
        return {m.name: m for m in await session.scalars(select(Mailbox))}


def passwords_of(mailbox: Mailbox) -> tuple[str, str]:
    """The mailbox's IMAP and SMTP passwords, decrypted."""
    return CIPHER.decrypt(mailbox.imap_password), CIPHER.decrypt(mailbox.smtp_password)


async def audit_rows(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return list(rows)


async def support_queue(sessions: SessionFactory) -> int:
    async with sessions() as session, session.begin():
        return (await create_queue(session, CLI, name="Support")).id


def test_config_mailboxes_take_their_passwords_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(config_file(tmp_path / "omnicrm.toml", support(), sales()))
    first, second = settings.mailboxes
    assert first.imap_password is not None
    assert first.imap_password.get_secret_value() == SUPPORT_PASSWORD
    assert second.imap_password is not None
    assert second.imap_password.get_secret_value() == SALES_PASSWORD
    assert second.smtp_password is None
    assert SUPPORT_PASSWORD not in repr(settings) + str(settings)
    fields = first.mailbox_fields()
    assert fields["smtp_password"] == SUPPORT_PASSWORD
    assert "queue" not in fields
    assert "imap_password_env" not in fields


def test_an_omnicrm_table_holds_its_mailboxes_too(tmp_path: Path) -> None:
    path = tmp_path / "all.toml"
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in sales().items())
    path.write_text(f"[omnicrm]\nport = 9000\n\n[[omnicrm.mailboxes]]\n{lines}")
    assert [mailbox.name for mailbox in load_mailboxes(path)] == ["sales"]


@pytest.mark.parametrize(
    ("mailbox", "mentions"),
    [
        (support(imap_port=0), "imap_port"),
        (support(smtp_port="smtp"), "smtp_port"),
        (support(imap_tls="tls"), "imap_tls"),
        (support(imap_host="imap shop example"), "imap_host"),
        (support(address="nobody"), "address"),
        (support(imap_folder=""), "imap_folder"),
        (support(after_import="move"), "move_to_folder"),
        (support(after_import="archive"), "after_import"),
        (support(poll_seconds=0), "poll_seconds"),
        (support(imap_pasword="typo"), "imap_pasword"),
        ({k: v for k, v in support().items() if k != "imap_host"}, "imap_host"),
        (support(imap_password_env="TEST_NOT_SET_ANYWHERE"), "imap_password_env"),
        (support(imap_password="inline"), "imap_password_env"),
    ],
)
def test_an_invalid_mailbox_names_the_setting(
    tmp_path: Path, mailbox: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(config_file(tmp_path / "bad.toml", mailbox))
    message = str(raised.value)
    assert mentions in message
    assert "\n" not in message
    assert SUPPORT_PASSWORD not in message


def test_mailbox_names_must_be_unique(tmp_path: Path) -> None:
    path = config_file(tmp_path / "twice.toml", support(), sales(name="support"))
    with pytest.raises(SettingsError, match="repeated: support"):
        load_settings(path)


async def test_sync_creates_updates_and_deactivates_by_name(
    sessions: SessionFactory, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Event] = []
    bus.add_listener(events.append)
    queue_id = await support_queue(sessions)
    path = config_file(tmp_path / "omnicrm.toml", support(), sales())

    assert await sync(sessions, path) == ConfigSync(created=["support", "sales"])
    stored = await mailboxes_by_name(sessions)
    assert stored["support"].from_config
    assert stored["support"].queue_id == queue_id
    assert (stored["support"].imap_folder, stored["support"].imap_port) == ("Support", 993)
    assert passwords_of(stored["support"]) == (SUPPORT_PASSWORD, SUPPORT_PASSWORD)
    assert (stored["sales"].after_import, stored["sales"].move_to_folder) == ("move", "Imported")
    assert (stored["sales"].use_idle, stored["sales"].poll_seconds) == (False, 120)
    assert (stored["sales"].smtp_user, stored["sales"].smtp_password) == ("", "")
    created = await audit_rows(sessions, "mailbox.create")
    assert [row.actor_label for row in created] == ["config-file", "config-file"]
    assert sorted(e.ids["mailbox"] for e in events if e.type == "mailbox.created") == sorted(
        m.id for m in stored.values()
    )

    # Nothing changed in the file: nothing changes in the database.
    assert await sync(sessions, path) == ConfigSync()
    assert await audit_rows(sessions, "mailbox.update") == []

    rotated = "support-Rotated-1618"
    monkeypatch.setenv("TEST_SUPPORT_PASSWORD", rotated)
    edited = support(smtp_port=2525)
    del edited["imap_folder"]  # a setting left out goes back to its default
    config_file(path, edited, sales())
    assert await sync(sessions, path) == ConfigSync(updated=["support"])
    again = await mailboxes_by_name(sessions)
    assert (again["support"].imap_folder, again["support"].smtp_port) == ("INBOX", 2525)
    assert passwords_of(again["support"])[0] == rotated
    [update] = await audit_rows(sessions, "mailbox.update")
    assert update.details == {
        "changed": ["imap_folder", "imap_password", "smtp_password", "smtp_port"]
    }
    assert rotated not in json.dumps(update.details)

    config_file(path, edited)
    assert await sync(sessions, path) == ConfigSync(deactivated=["sales"])
    removed = (await mailboxes_by_name(sessions))["sales"]
    assert (removed.active, removed.from_config) == (False, False)
    assert [e.ids for e in events if e.type == "mailbox.deleted"] == [{"mailbox": removed.id}]

    # Declared again: the file owns it again and it is active.
    config_file(path, edited, sales())
    assert await sync(sessions, path) == ConfigSync(updated=["sales"])
    back = (await mailboxes_by_name(sessions))["sales"]
    assert (back.active, back.from_config, back.id) == (True, True, removed.id)


async def test_servers_starting_together_create_each_mailbox_once(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    await support_queue(sessions)
    path = config_file(tmp_path / "omnicrm.toml", support(), sales())
    first, second = await asyncio.gather(sync(sessions, path), sync(sessions, path))
    assert sorted([*first.created, *second.created]) == ["sales", "support"]
    assert first.updated == second.updated == []
    assert sorted(await mailboxes_by_name(sessions)) == ["sales", "support"]


async def test_the_config_file_takes_over_a_mailbox_of_the_same_name(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        made = await create_mailbox(
            session,
            CLI,
            {
                "name": "sales",
                "address": "old-sales@shop.example",
                "imap_host": "old.shop.example",
                "imap_user": "sales",
                "smtp_host": "old.shop.example",
            },
            cipher=CIPHER,
        )
    path = config_file(tmp_path / "omnicrm.toml", sales())
    assert await sync(sessions, path) == ConfigSync(updated=["sales"])
    taken = (await mailboxes_by_name(sessions))["sales"]
    assert (taken.id, taken.from_config, taken.address) == (made.id, True, "sales@shop.example")
    [update] = await audit_rows(sessions, "mailbox.update")
    assert "from_config" in update.details["changed"]


async def test_an_unknown_queue_stops_the_sync(sessions: SessionFactory, tmp_path: Path) -> None:
    path = config_file(tmp_path / "omnicrm.toml", sales(), support())
    with pytest.raises(InvalidInput, match="no queue named 'Support'") as raised:
        await sync(sessions, path)
    assert raised.value.fields == {"queue": raised.value.message}
    assert await mailboxes_by_name(sessions) == {}


async def test_the_api_shows_config_mailboxes_but_refuses_to_change_them(
    sessions: SessionFactory, make_user: UserFactory, tmp_path: Path
) -> None:
    await support_queue(sessions)
    await sync(sessions, config_file(tmp_path / "omnicrm.toml", support()))
    mailbox = (await mailboxes_by_name(sessions))["support"]
    admin = await make_user(Role.ADMIN)
    path = f"/api/v1/mailboxes/{mailbox.id}"

    shown = await admin.get(path)
    text = await shown.text()
    assert shown.status == 200
    assert SUPPORT_PASSWORD not in text
    body = json.loads(text)
    assert (body["from_config"], body["imap_password_set"]) == (True, True)

    for response in (
        await admin.patch(path, json={"imap_port": 143}),
        await admin.patch(path, json={"active": False}),
        await admin.delete(path),
    ):
        assert response.status == 409
        error = (await response.json())["error"]
        assert "config file" in error["message"]
    unchanged = (await mailboxes_by_name(sessions))["support"]
    assert (unchanged.imap_port, unchanged.active) == (993, True)
    assert await audit_rows(sessions, "mailbox.update") == []


# --- the CLI ------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


# The CLI configures the root logger for its process; the test run gets its own back.
pytestmark = pytest.mark.usefixtures("keep_logging")


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    sessions: SessionFactory,
) -> Run:
    """run(*argv, stdin="") -> Result: the CLI on the test's (emptied) database.

    The CLI runs its own event loop, so it runs in a thread beside the test's."""

    async def invoke(*argv: str, stdin: str = "") -> Result:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            patch.setenv("OMNICRM_DATABASE_URL", database_url)
            patch.setenv("OMNICRM_LOG_JSON", "false")
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


ADD = (
    "mailbox",
    "add",
    "--name",
    "support",
    "--address",
    "support@shop.example",
    "--imap-host",
    "imap.shop.example",
    "--imap-user",
    "support@shop.example",
    "--smtp-host",
    "smtp.shop.example",
)


async def test_cli_adds_a_mailbox_with_one_password_for_imap_and_smtp(
    run: Run, sessions: SessionFactory
) -> None:
    queue_id = await support_queue(sessions)
    result = await run(
        *ADD, "--queue", "Support", "--smtp-port", "587", "--smtp-tls", "starttls",
        "--password-stdin", stdin=SUPPORT_PASSWORD + "\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "mailbox 'support' (support@shop.example) added" in result.out
    assert SUPPORT_PASSWORD not in result.out + result.err
    mailbox = (await mailboxes_by_name(sessions))["support"]
    assert (*passwords_of(mailbox), mailbox.smtp_user) == (
        SUPPORT_PASSWORD,
        SUPPORT_PASSWORD,
        "support@shop.example",
    )
    assert (mailbox.smtp_port, mailbox.smtp_tls, mailbox.queue_id) == (587, "starttls", queue_id)
    assert not mailbox.from_config
    [row] = await audit_rows(sessions, "mailbox.create")
    assert row.actor_label == "cli"


async def test_cli_reads_a_second_line_for_another_smtp_user(
    run: Run, sessions: SessionFactory
) -> None:
    result = await run(
        *ADD, "--smtp-user", "relay", "--password-stdin",
        stdin=f"{SUPPORT_PASSWORD}\n{SALES_PASSWORD}\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    mailbox = (await mailboxes_by_name(sessions))["support"]
    assert (*passwords_of(mailbox), mailbox.smtp_user) == (
        SUPPORT_PASSWORD,
        SALES_PASSWORD,
        "relay",
    )
    missing = await run(
        *ADD[:3], "other", *ADD[4:], "--smtp-user", "relay", "--password-stdin",
        stdin=SUPPORT_PASSWORD + "\n",
    )  # fmt: skip
    assert missing.code == 2
    assert "second line" in missing.err


async def test_cli_without_smtp_auth_and_without_passwords(
    run: Run, sessions: SessionFactory
) -> None:
    result = await run(*ADD, "--no-smtp-auth")
    assert result.code == 0, result.err
    assert "no password is set" in result.out
    mailbox = (await mailboxes_by_name(sessions))["support"]
    assert (mailbox.imap_password, mailbox.smtp_user, mailbox.smtp_password) == ("", "", "")


async def test_cli_reports_each_bad_setting(run: Run, sessions: SessionFactory) -> None:
    result = await run(
        *ADD, "--imap-port", "0", "--smtp-port", "70000", "--password-stdin",
        stdin=SUPPORT_PASSWORD + "\n",
    )  # fmt: skip
    assert result.code == 2
    [line] = result.err.splitlines()
    assert "imap_port" in line
    assert "smtp_port" in line
    assert SUPPORT_PASSWORD not in line
    no_folder = await run(*ADD, "--after-import", "move")
    assert no_folder.code == 2
    assert "move_to_folder: needed when after_import is move" in no_folder.err
    unknown_queue = await run(*ADD, "--queue", "Nowhere")
    assert unknown_queue.code == 1
    assert "Nowhere" in unknown_queue.err
    both = await run(*ADD, "--smtp-user", "x", "--no-smtp-auth")
    assert both.code == 2
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Mailbox)) == 0


async def test_cli_lists_mailboxes_without_passwords(
    run: Run, sessions: SessionFactory, tmp_path: Path
) -> None:
    empty = await run("mailbox", "list")
    assert empty.code == 0, empty.err
    assert "no mailboxes" in empty.out
    await support_queue(sessions)
    await sync(sessions, config_file(tmp_path / "omnicrm.toml", sales()))
    added = await run(*ADD, "--queue", "Support", "--password-stdin", stdin=SUPPORT_PASSWORD)
    assert added.code == 0, added.err

    listed = await run("mailbox", "list")
    assert listed.code == 0, listed.err
    assert SUPPORT_PASSWORD not in listed.out
    assert SALES_PASSWORD not in listed.out
    header, first, second = listed.out.splitlines()
    assert header.split() == [
        "id", "name", "address", "state", "source", "imap", "smtp", "queue", "passwords",
    ]  # fmt: skip
    assert first.split()[1:5] == ["sales", "sales@shop.example", "active", "config"]
    assert "mail.shop.example:143" in first
    assert first.endswith("imap set")
    assert second.split()[1:5] == ["support", "support@shop.example", "active", "api/cli"]
    assert "Support" in second
    assert second.endswith("imap set smtp set")

"""Email accounts from the config file (`[[mailboxes]]` and `[[channels]]`) and the CLI
(`omnicrm channel ... email`): synced by name, passwords from the environment or stdin,
checked by the email channel, read-only in the API when the file owns them, never printed."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from channels.accounts import add_account, declared_accounts
from channels.registry import ChannelRegistry, default_channels
from core.audit import CLI
from core.channel_accounts import ConfigSync, sync_config_accounts
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.errors import InvalidInput
from core.events import Event, EventBus
from core.models import AuditEntry, ChannelAccount, Role
from core.settings import INSECURE_DEV_SECRET, Settings, SettingsError, load_settings
from routing.setup import create_queue
from tests.conftest import UserFactory

SUPPORT_PASSWORD = "support-Secret-2718"
SALES_PASSWORD = "sales-Secret-3141"
# The credentials key of settings that set none, as the CLI runs here: derived from the
# development secret_key. The sync below uses it too.
CIPHER = CredentialCipher(INSECURE_DEV_SECRET)
REGISTRY = ChannelRegistry(default_channels())


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
    """A TOML config with one table per mapping (values as JSON: TOML reads it): a
    [[channels]] table for a mapping that names its channel, else a [[mailboxes]] table."""
    tables = [
        ("[[channels]]\n" if "channel" in m else "[[mailboxes]]\n")
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in m.items())
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


def checked(settings: Settings) -> Settings:
    """The settings with their channel accounts checked by the channels, as `omnicrm` and the
    app check them when they start."""
    declared_accounts(settings.channel_accounts, REGISTRY)
    return settings


async def sync(sessions: SessionFactory, path: Path) -> ConfigSync:
    declared = declared_accounts(load_settings(path).channel_accounts, REGISTRY)
    async with sessions() as session, session.begin():
        return await sync_config_accounts(session, declared, cipher=CIPHER)


async def mailboxes_by_name(sessions: SessionFactory) -> dict[str, ChannelAccount]:
    async with sessions() as session:
        return {m.name: m for m in await session.scalars(select(ChannelAccount))}


def passwords_of(account: ChannelAccount) -> tuple[str, str]:
    """The account's IMAP and SMTP passwords, decrypted."""
    return (
        CIPHER.decrypt(account.settings["imap_password"]),
        CIPHER.decrypt(account.settings["smtp_password"]),
    )


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
    first, second = settings.channel_accounts
    assert (first.channel, first.name, first.queue) == ("email", "support", "Support")
    assert first.values()["imap_password"] == SUPPORT_PASSWORD
    assert first.values()["smtp_password"] == SUPPORT_PASSWORD
    assert second.values()["imap_password"] == SALES_PASSWORD
    assert "smtp_password" not in second.values()
    assert SUPPORT_PASSWORD not in repr(settings) + str(settings)
    assert "queue" not in first.values()
    assert "imap_password_env" not in first.values()
    # Checked by the email channel: every setting, defaults filled in.
    [declared, _] = declared_accounts(settings.channel_accounts, REGISTRY)
    assert declared.settings["smtp_password"] == SUPPORT_PASSWORD
    assert (declared.settings["imap_port"], declared.settings["smtp_port"]) == (993, 587)
    assert declared.secret_fields == {"imap_password", "smtp_password"}


def test_no_setting_of_an_account_is_shown_in_the_settings_repr(tmp_path: Path) -> None:
    """Core cannot tell which settings are secret: a password written in the file itself
    (discouraged) is not shown either."""
    inline = {k: v for k, v in sales().items() if k != "imap_password_env"}
    settings = load_settings(
        config_file(tmp_path / "inline.toml", {**inline, "imap_password": "inline-Secret-1"})
    )
    assert "inline-Secret-1" not in repr(settings) + str(settings)
    assert "imap_password" in repr(settings)
    assert settings.channel_accounts[0].values()["imap_password"] == "inline-Secret-1"


def test_a_channels_table_is_the_same_email_account(tmp_path: Path) -> None:
    """`[[channels]] channel = "email"` and `[[mailboxes]]` declare the same account."""
    as_mailbox = load_settings(config_file(tmp_path / "mailbox.toml", support()))
    as_channel = load_settings(
        config_file(tmp_path / "channel.toml", {"channel": "email", **support()})
    )
    assert len(as_channel.channels) == 1
    assert as_channel.mailboxes == []
    assert declared_accounts(as_channel.channel_accounts, REGISTRY) == declared_accounts(
        as_mailbox.channel_accounts, REGISTRY
    )
    # `active` is the old spelling of `enabled`.
    off = load_settings(config_file(tmp_path / "off.toml", support(active=False)))
    assert off.channel_accounts[0].enabled is False


def test_an_omnicrm_table_holds_its_accounts_too(tmp_path: Path) -> None:
    path = tmp_path / "all.toml"
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in sales().items())
    path.write_text(
        f"[omnicrm]\nport = 9000\n\n[[omnicrm.mailboxes]]\n{lines}\n"
        f'[[omnicrm.channels]]\nchannel = "email"\n{lines.replace("sales", "billing", 1)}'
    )
    assert [account.name for account in load_settings(path).channel_accounts] == [
        "billing",
        "sales",
    ]


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
        ({"channel": "fax", **support()}, "channel"),
        ({"channel": "webform", **support()}, "channel"),
    ],
)
def test_an_invalid_account_names_the_setting(
    tmp_path: Path, mailbox: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        checked(load_settings(config_file(tmp_path / "bad.toml", mailbox)))
    message = str(raised.value)
    assert mentions in message
    assert "'support'" in message
    assert "\n" not in message
    assert SUPPORT_PASSWORD not in message


def test_account_names_must_be_unique_within_a_channel(tmp_path: Path) -> None:
    path = config_file(tmp_path / "twice.toml", support(), sales(name="support"))
    with pytest.raises(SettingsError, match="repeated: email:support"):
        load_settings(path)
    spelt_twice = config_file(tmp_path / "both.toml", support(), {"channel": "email", **support()})
    with pytest.raises(SettingsError, match="repeated: email:support"):
        load_settings(spelt_twice)


async def test_sync_creates_updates_and_disables_by_name(
    sessions: SessionFactory, bus: EventBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Event] = []
    bus.add_listener(events.append)
    queue_id = await support_queue(sessions)
    path = config_file(tmp_path / "omnicrm.toml", support(), sales())

    assert await sync(sessions, path) == ConfigSync(created=["email:support", "email:sales"])
    stored = await mailboxes_by_name(sessions)
    assert stored["support"].from_config
    assert stored["support"].queue_id == queue_id
    assert (stored["support"].settings["imap_folder"], stored["support"].settings["imap_port"]) == (
        "Support",
        993,
    )
    assert passwords_of(stored["support"]) == (SUPPORT_PASSWORD, SUPPORT_PASSWORD)
    sales_settings = stored["sales"].settings
    assert (sales_settings["after_import"], sales_settings["move_to_folder"]) == (
        "move",
        "Imported",
    )
    assert (sales_settings["use_idle"], sales_settings["poll_seconds"]) == (False, 120)
    assert (sales_settings["smtp_user"], sales_settings["smtp_password"]) == ("", "")
    created = await audit_rows(sessions, "channel_account.create")
    assert [row.actor_label for row in created] == ["config-file", "config-file"]
    assert sorted(
        e.ids["channel_account"] for e in events if e.type == "channel_account.created"
    ) == sorted(m.id for m in stored.values())

    # Nothing changed in the file: nothing changes in the database.
    assert await sync(sessions, path) == ConfigSync()
    assert await audit_rows(sessions, "channel_account.update") == []

    rotated = "support-Rotated-1618"
    monkeypatch.setenv("TEST_SUPPORT_PASSWORD", rotated)
    edited = support(smtp_port=2525)
    del edited["imap_folder"]  # a setting left out goes back to its default
    config_file(path, edited, sales())
    assert await sync(sessions, path) == ConfigSync(updated=["email:support"])
    again = await mailboxes_by_name(sessions)
    assert (again["support"].settings["imap_folder"], again["support"].settings["smtp_port"]) == (
        "INBOX",
        2525,
    )
    assert passwords_of(again["support"])[0] == rotated
    [update] = await audit_rows(sessions, "channel_account.update")
    assert update.details["fields"] == [
        "imap_folder",
        "imap_password",
        "smtp_password",
        "smtp_port",
    ]
    assert rotated not in json.dumps(update.details)

    config_file(path, edited)
    assert await sync(sessions, path) == ConfigSync(disabled=["email:sales"])
    removed = (await mailboxes_by_name(sessions))["sales"]
    assert (removed.enabled, removed.from_config) == (False, False)
    assert [e.ids for e in events if e.type == "channel_account.updated"][-1] == {
        "channel_account": removed.id
    }

    # Declared again (as a [[channels]] table this time): the file owns it again, enabled.
    config_file(path, edited, {"channel": "email", **sales()})
    assert await sync(sessions, path) == ConfigSync(updated=["email:sales"])
    back = (await mailboxes_by_name(sessions))["sales"]
    assert (back.enabled, back.from_config, back.id) == (True, True, removed.id)


@pytest.mark.both_databases
async def test_servers_starting_together_create_each_account_once(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    await support_queue(sessions)
    path = config_file(tmp_path / "omnicrm.toml", support(), sales())
    first, second = await asyncio.gather(sync(sessions, path), sync(sessions, path))
    assert sorted([*first.created, *second.created]) == ["email:sales", "email:support"]
    assert first.updated == second.updated == []
    assert sorted(await mailboxes_by_name(sessions)) == ["sales", "support"]


async def test_the_config_file_takes_over_an_account_of_the_same_name(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        made = await add_account(
            session,
            CLI,
            REGISTRY,
            CIPHER,
            channel="email",
            name="sales",
            settings={
                "address": "old-sales@shop.example",
                "imap_host": "old.shop.example",
                "imap_user": "sales",
                "smtp_host": "old.shop.example",
            },
        )
    path = config_file(tmp_path / "omnicrm.toml", sales())
    assert await sync(sessions, path) == ConfigSync(updated=["email:sales"])
    taken = (await mailboxes_by_name(sessions))["sales"]
    assert (taken.id, taken.from_config, taken.settings["address"]) == (
        made.id,
        True,
        "sales@shop.example",
    )
    [update] = await audit_rows(sessions, "channel_account.update")
    assert "from_config" in update.details["fields"]


async def test_an_unknown_queue_stops_the_sync(sessions: SessionFactory, tmp_path: Path) -> None:
    path = config_file(tmp_path / "omnicrm.toml", sales(), support())
    with pytest.raises(InvalidInput, match="no queue named 'Support'") as raised:
        await sync(sessions, path)
    assert raised.value.fields == {"queue": raised.value.message}
    assert await mailboxes_by_name(sessions) == {}


async def test_the_api_shows_config_accounts_but_refuses_to_change_them(
    sessions: SessionFactory, make_user: UserFactory, tmp_path: Path
) -> None:
    await support_queue(sessions)
    await sync(sessions, config_file(tmp_path / "omnicrm.toml", support()))
    account = (await mailboxes_by_name(sessions))["support"]
    admin = await make_user(Role.ADMIN)
    path = f"/api/v1/channel-accounts/{account.id}"

    shown = await admin.get(path)
    text = await shown.text()
    assert shown.status == 200
    assert SUPPORT_PASSWORD not in text
    body = json.loads(text)
    assert (body["from_config"], body["settings"]["imap_password_set"]) == (True, True)

    for response in (
        await admin.patch(path, json={"settings": {"imap_port": 143}}),
        await admin.patch(path, json={"enabled": False}),
        await admin.delete(path),
    ):
        assert response.status == 409
        error = (await response.json())["error"]
        assert "config file" in error["message"]
    unchanged = (await mailboxes_by_name(sessions))["support"]
    assert (unchanged.settings["imap_port"], unchanged.enabled) == (993, True)
    assert await audit_rows(sessions, "channel_account.update") == []

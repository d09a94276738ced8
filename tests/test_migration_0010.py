"""Migration 0010 on a real 0009 database, on both backends: mailboxes become email channel
accounts with every reference moved along (the cursor, interactions' account, quarantine),
and the poller resumes from the migrated cursor against a real Dovecot, importing only what
is new; the downgrade puts the mailboxes back as they were."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from channels.email.inbound import to_inbound_event
from channels.email.message import parse_message
from channels.email.settings import EmailSettings
from core.channel_accounts import AccountView, view_of
from core.credentials import CredentialCipher
from core.events import EventBus, session_info
from core.ingest import InboundEvent
from core.migrate import downgrade, upgrade
from core.models import ChannelAccount, JSONType, UTCDateTime
from tests.mailservers import DovecotServer, MailUser
from tests.test_credentials_migration import engine_of, fetch
from tests.test_email_imap import append, mail, message_id_of, poller_of
from tests.waiting import eventually

pytest_plugins = ["tests.mailservers"]  # the `dovecot` fixture

KEY = "the installation's credentials key, 0010"
CIPHER = CredentialCipher(KEY)
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SMTP_SECRET = "smtp-Secret-0009"

pytestmark = [pytest.mark.usefixtures("keep_logging"), pytest.mark.both_databases]


def json_of(value: Any) -> Any:
    """A JSON column as plain SQL reads it (text on SQLite, JSONB's text from asyncpg)."""
    return json.loads(value) if isinstance(value, str) else value


async def execute(url: str, statement: str, **values: Any) -> None:
    query = text(statement)
    if "now" in values:
        query = query.bindparams(bindparam("now", type_=UTCDateTime()))
    async with engine_of(url) as engine, engine.begin() as connection:
        await connection.execute(query, values)


async def store_as_0009(url: str, event: InboundEvent) -> None:
    """What 0009's ingest stored for a first message: a contact, its address, a conversation
    and the interaction, in that version's columns."""
    [address] = event.addresses
    async with engine_of(url) as engine, engine.begin() as connection:

        async def insert(statement: str, **values: Any) -> int:
            query = text(statement + " RETURNING id").bindparams(
                *(
                    bindparam(name, type_=UTCDateTime() if name == "now" else JSONType)
                    for name in ("now", "meta", "empty_list", "empty_object")
                    if name in values
                )
            )
            return int((await connection.execute(query, values)).scalar_one())

        contact = await insert(
            "INSERT INTO contact (display_name, tags, custom_fields, priority_tier,"
            " marketing_source, created_at, updated_at) VALUES (:name, :empty_list,"
            " :empty_object, 'standard', :empty_object, :now, :now)",
            name=event.display_name, empty_list=[], empty_object={}, now=NOW,
        )  # fmt: skip
        await insert(
            "INSERT INTO identity (contact_id, kind, address, created_at) VALUES (:contact,"
            " :kind, :address, :now)",
            contact=contact, kind=str(address.kind), address=address.value.lower(), now=NOW,
        )  # fmt: skip
        conversation = await insert(
            "INSERT INTO conversation (contact_id, channel, thread_key, status, priority,"
            " subject, created_at, updated_at, last_inbound_at) VALUES (:contact, 'email',"
            " :thread, 'open', 0, :subject, :now, :now, :now)",
            contact=contact, thread=event.thread_key, subject=event.subject, now=NOW,
        )  # fmt: skip
        await insert(
            "INSERT INTO interaction (conversation_id, contact_id, kind, direction, channel,"
            " external_id, subject, text, attachments, meta, occurred_at, created_at) VALUES"
            " (:conversation, :contact, 'message', 'in', 'email', :external_id, :subject,"
            " :text, :empty_list, :meta, :now, :now)",
            conversation=conversation, contact=contact, external_id=event.external_id,
            subject=event.subject, text=event.text, empty_list=[], meta=event.meta, now=NOW,
        )  # fmt: skip


async def at_0009(url: str, server: DovecotServer, user: MailUser) -> dict[str, Any]:
    """A 0009 database as that version left it: an account of another channel, two
    mailboxes (one inactive, from the config file), the first's cursor past UID 2, UID 1
    imported, UID 2 quarantined; UID 3 arrived since."""
    good, broken, new = mail("Imported before"), mail("No sender", sender=""), mail("New")
    for raw in (good, broken, new):
        await append(server, user, raw)
    uidvalidity = await asyncio.to_thread(server.uidvalidity, user)
    await upgrade(url, "0009", credentials=CIPHER)
    imap_password, smtp_password = CIPHER.encrypt(user.password), CIPHER.encrypt(SMTP_SECRET)
    await execute(url, "INSERT INTO queue (id, name, description, config, created_at)"
        " VALUES (3, 'Support', '', '{}', :now)", now=NOW)  # fmt: skip
    # Another channel's account comes first: the mailboxes' new ids are not their old ones.
    await execute(url, "INSERT INTO channel_account (channel, name, settings, enabled,"
        " from_config, created_at, updated_at) VALUES ('fakesms', 'support', '{}', true,"
        " false, :now, :now)", now=NOW)  # fmt: skip
    for mailbox_id, name, active, from_config in ((5, "migrated", True, False),
                                                  (9, "old", False, True)):  # fmt: skip
        await execute(
            url,
            "INSERT INTO mailbox (id, name, address, display_name, imap_host, imap_port,"
            " imap_tls, imap_user, imap_password, imap_folder, smtp_host, smtp_port, smtp_tls,"
            " smtp_user, smtp_password, queue_id, after_import, move_to_folder, use_idle,"
            " poll_seconds, backfill_days, active, from_config, last_success_at, created_at,"
            " updated_at) VALUES (:id, :name, :address, 'Support', :host, :port, 'none', :login,"
            " :imap, 'INBOX', '127.0.0.1', 2525, 'none', 'relay', :smtp, 3, 'leave', NULL, false,"
            " 1, 0, :active, :from_config, :now, :now, :now)",
            id=mailbox_id, name=name, address=f"{name}@omnicrm.test", host=server.host,
            port=server.port, login=user.login, imap=imap_password, smtp=smtp_password,
            active=active, from_config=from_config, now=NOW,
        )  # fmt: skip
    await execute(url, "INSERT INTO channel_cursor (channel, account, state, updated_at) VALUES"
        " ('email', '5', :state, :now)",
        state=json.dumps({"uidvalidity": uidvalidity, "last_uid": 2}), now=NOW)  # fmt: skip
    await execute(url, "INSERT INTO quarantined_message (mailbox_id, uidvalidity, uid, raw,"
        " reason, status, created_at, updated_at) VALUES (5, :uidvalidity, 2, :raw,"
        " 'no sender address', 'quarantined', :now, :now)",
        uidvalidity=uidvalidity, raw=broken, now=NOW)  # fmt: skip
    # UID 1 as 0009's poller stored it: the mailbox's id in meta.mailbox_id. Written as 0009's
    # tables are (today's models have columns 0009 has not).
    event = to_inbound_event(parse_message(good), AccountView(5, "email", "migrated"))
    meta = {key: value for key, value in event.meta.items() if key != "account_id"}
    await store_as_0009(url, replace(event, meta={**meta, "mailbox_id": 5}))
    return {
        "uidvalidity": uidvalidity,
        "good": good,
        "broken": broken,
        "new": new,
        "imap_password": imap_password,
        "smtp_password": smtp_password,
    }


async def test_mailboxes_become_email_accounts_and_the_poller_resumes_where_it_stood(
    scratch_url: str, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("migrated")
    before = await at_0009(scratch_url, dovecot, user)
    await upgrade(scratch_url, "0010")

    rows = {
        row["name"]: row
        for row in await fetch(scratch_url, "SELECT * FROM channel_account WHERE channel = 'email'")
    }
    assert sorted(rows) == ["migrated", "old"]
    account, old = rows["migrated"], rows["old"]
    [other] = await fetch(scratch_url, "SELECT * FROM channel_account WHERE channel = 'fakesms'")
    assert account["id"] not in (other["id"], 5)
    settings = json_of(account["settings"])
    assert settings == {
        "address": "migrated@omnicrm.test",
        "display_name": "Support",
        "imap_host": dovecot.host,
        "imap_port": dovecot.port,
        "imap_tls": "none",
        "imap_user": user.login,
        # The ciphertexts moved as they were: no key was needed, nothing re-encrypted.
        "imap_password": before["imap_password"],
        "imap_folder": "INBOX",
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_tls": "none",
        "smtp_user": "relay",
        "smtp_password": before["smtp_password"],
        "after_import": "leave",
        "move_to_folder": None,
        "use_idle": False,
        "poll_seconds": 1,
        "backfill_days": 0,
    }
    assert (account["queue_id"], bool(account["enabled"]), bool(account["from_config"])) == (
        3,
        True,
        False,
    )
    assert (bool(old["enabled"]), bool(old["from_config"])) == (False, True)
    assert account["last_success_at"] is not None

    [cursor] = await fetch(scratch_url, "SELECT * FROM channel_cursor")
    assert (cursor["channel"], cursor["account"]) == ("email", f"account:{account['id']}")
    assert json_of(cursor["state"]) == {"uidvalidity": before["uidvalidity"], "last_uid": 2}
    [imported] = await fetch(scratch_url, "SELECT meta FROM interaction")
    meta = json_of(imported["meta"])
    assert meta["account_id"] == account["id"]
    assert "mailbox_id" not in meta
    [held] = await fetch(scratch_url, "SELECT * FROM quarantined_message")
    assert (held["channel"], held["account_id"], held["reference"], held["status"]) == (
        "email",
        account["id"],
        f"{before['uidvalidity']}:2",
        "quarantined",
    )
    tables = await fetch(scratch_url, "SELECT * FROM interaction")
    assert len(tables) == 1

    # The email channel (of today: the later migrations first) reads the migrated account as
    # one of its own ...
    await upgrade(scratch_url)
    async with engine_of(scratch_url) as engine:
        sessions = async_sessionmaker(engine, expire_on_commit=False, info=session_info(EventBus()))
        async with sessions() as session:
            row = await session.get(ChannelAccount, account["id"])
            assert row is not None
            view = view_of(row, CIPHER, ("imap_password", "smtp_password"))
        assert EmailSettings.model_validate(dict(view.settings)).smtp_password == SMTP_SECRET
        # ... and its poller resumes after UID 2: UID 3 only, nothing twice, the held message
        # stays held.
        poller = await poller_of(sessions, account["id"], cipher=CIPHER)
        task = asyncio.create_task(poller.run())
        try:

            async def resumed() -> bool:
                return poller.status.counted("stored") == 1

            await eventually(resumed, "the poller to import the new message")
        finally:
            poller.stop()
            await asyncio.wait_for(task, 15)
        assert (poller.status.counted("duplicate"), poller.status.errors) == (0, 0)
    external_ids = [
        row["external_id"]
        for row in await fetch(scratch_url, "SELECT external_id FROM interaction ORDER BY id")
    ]
    assert external_ids == [message_id_of(before["good"]), message_id_of(before["new"])]
    [still_held] = await fetch(scratch_url, "SELECT status FROM quarantined_message")
    assert still_held["status"] == "quarantined"
    [moved_on] = await fetch(scratch_url, "SELECT state FROM channel_cursor")
    assert json_of(moved_on["state"])["last_uid"] == 3

    await downgrade(scratch_url, "0009")
    mailboxes = {row["name"]: row for row in await fetch(scratch_url, "SELECT * FROM mailbox")}
    assert sorted(mailboxes) == ["migrated", "old"]
    back = mailboxes["migrated"]
    assert (back["imap_password"], back["smtp_password"]) == (
        before["imap_password"],
        before["smtp_password"],
    )
    assert (back["smtp_port"], back["queue_id"], bool(back["active"])) == (2525, 3, True)
    assert (bool(mailboxes["old"]["active"]), bool(mailboxes["old"]["from_config"])) == (
        False,
        True,
    )
    [cursor] = await fetch(scratch_url, "SELECT account FROM channel_cursor")
    assert cursor["account"] == str(back["id"])
    metas = [
        json_of(row["meta"]) for row in await fetch(scratch_url, "SELECT meta FROM interaction")
    ]
    assert [meta.get("mailbox_id") for meta in metas] == [back["id"], back["id"]]
    assert all("account_id" not in meta for meta in metas)
    [held] = await fetch(
        scratch_url, "SELECT mailbox_id, uidvalidity, uid FROM quarantined_message"
    )
    assert held == {"mailbox_id": back["id"], "uidvalidity": before["uidvalidity"], "uid": 2}
    assert [
        row["channel"] for row in await fetch(scratch_url, "SELECT * FROM channel_account")
    ] == ["fakesms"]
    await upgrade(scratch_url)  # and up again: the round trip loses nothing
    [again] = await fetch(
        scratch_url, "SELECT settings FROM channel_account WHERE name = 'migrated'"
    )
    assert json_of(again["settings"]) == settings


async def test_an_email_account_of_a_mailboxs_name_stops_the_migration_before_any_change(
    scratch_url: str, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("clash")
    await at_0009(scratch_url, dovecot, user)
    await execute(scratch_url, "INSERT INTO channel_account (channel, name, settings, enabled,"
        " from_config, created_at, updated_at) VALUES ('email', 'old', '{}', true, false,"
        " :now, :now)", now=NOW)  # fmt: skip
    with pytest.raises(RuntimeError, match="cannot move mailbox 'old'"):
        await upgrade(scratch_url, "0010")
    [version] = await fetch(scratch_url, "SELECT version_num FROM alembic_version")
    assert version["version_num"] == "0009"
    assert len(await fetch(scratch_url, "SELECT id FROM mailbox")) == 2

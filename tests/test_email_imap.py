"""The IMAP poller against a real Dovecot, on both databases: exactly once through restarts,
outages and UIDVALIDITY changes; quarantine; after-import actions; IDLE; backfill; threading."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from channels.base import ChannelServices, PollOptions
from channels.email.imap import Cursor, ImapOptions, ImapPoller, load_cursor
from channels.email.inbound import content_key, external_id_of
from channels.email.message import parse_message
from channels.email.plugin import EmailChannel
from channels.email.settings import SECRET_FIELDS
from channels.email.smtp import EmailSender
from channels.pollers import PollerSupervisor
from channels.registry import ChannelRegistry, validated_settings
from core.audit import CLI
from core.channel_accounts import create_account, update_account, view_without_secrets
from core.conversations import reply, set_status
from core.credentials import CredentialCipher
from core.db import SessionFactory, make_engine
from core.events import Event, EventBus, session_info
from core.ingest import IngestPolicy
from core.models import (
    ChannelAccount,
    Conversation,
    ConversationStatus,
    Interaction,
    OutboxItem,
    OutboxStatus,
    QuarantinedMessage,
    Role,
    utcnow,
)
from core.outbox import OutboxWorker
from core.settings import Settings
from core.storage import MemoryStore
from tests.conftest import UserFactory
from tests.mailservers import DovecotServer, MailUser, SmtpServer
from tests.test_email_message import CORPUS_FILES, corpus_message
from tests.waiting import eventually

pytest_plugins = ["tests.mailservers"]  # the `dovecot` and `smtp_server` fixtures

POLICY = IngestPolicy()
# Email accounts hold passwords encrypted with this; the pollers and senders read them with it.
CIPHER = CredentialCipher("the email tests' credentials key")
FAST = PollOptions(
    backoff_base_seconds=0.1,
    backoff_cap_seconds=0.5,
    lock_wait_seconds=0.2,
    success_record_seconds=0,
)
FAST_IMAP = ImapOptions(batch_size=5, command_timeout_seconds=10)
WAIT_SECONDS = 30.0


def mail(
    subject: str,
    *,
    sender: str = "Ann Customer <ann@customer.test>",
    message_id: str | None = "",
    headers: str = "",
    body: str | None = None,
) -> bytes:
    """A customer's message; a fresh Message-ID unless one (or None: no header) is given."""
    lines = [f"From: {sender}"] if sender else []
    lines += ["To: support@omnicrm.test", f"Subject: {subject}"]
    if message_id is not None:
        lines.append(f"Message-ID: {message_id or f'<{secrets.token_hex(6)}@customer.test>'}")
    text = body if body is not None else f"About {subject}."
    return ("\r\n".join(lines) + "\r\n" + headers + "\r\n" + text + "\r\n").encode()


async def append(server: DovecotServer, user: MailUser, raw: bytes, **options: Any) -> int:
    return await asyncio.to_thread(server.append, user, raw, **options)


async def add_account(
    sessions: SessionFactory,
    server: DovecotServer,
    user: MailUser,
    *,
    cipher: CredentialCipher = CIPHER,
    queue_id: int | None = None,
    **settings: Any,
) -> int:
    """An email account on the test Dovecot, made as the API and CLI make one (its settings
    checked by the email channel, its passwords encrypted with `cipher`); its id."""
    values: dict[str, Any] = {
        "address": f"{user.login}@omnicrm.test",
        "imap_host": server.host,
        "imap_port": server.port,
        "imap_tls": "none",
        "imap_user": user.login,
        "imap_password": user.password,
        "smtp_host": "127.0.0.1",
        "poll_seconds": 1,
        **settings,
    }
    name = values.pop("name", user.login)
    async with sessions() as session, session.begin():
        row = await create_account(
            session,
            CLI,
            channel="email",
            name=name,
            settings=validated_settings(EmailChannel(), values),
            secret_fields=SECRET_FIELDS,
            cipher=cipher,
            queue_id=queue_id,
        )
        return row.id


def services_of(
    sessions: SessionFactory,
    cipher: CredentialCipher = CIPHER,
    bus: EventBus | None = None,
    store: MemoryStore | None = None,
) -> ChannelServices:
    """What the email channel's adapters get from an app, for tests that run them alone."""
    return ChannelServices(
        sessions=sessions,
        bus=bus or EventBus(),
        store=store or MemoryStore(),
        policy=POLICY,
        cipher=cipher,
        settings=Settings(secret_key="the email tests' secret key"),
    )


async def poller_of(
    sessions: SessionFactory,
    account_id: int,
    imap: ImapOptions = FAST_IMAP,
    *,
    cipher: CredentialCipher = CIPHER,
    store: MemoryStore | None = None,
) -> ImapPoller:
    """The email channel's poller of an account, as the supervisor starts it."""
    async with sessions() as session:
        row = await session.get(ChannelAccount, account_id)
    assert row is not None
    channel = EmailChannel(imap, FAST)
    services = services_of(sessions, cipher, store=store)
    poller = channel.poller(view_without_secrets(row, SECRET_FIELDS), services)
    assert isinstance(poller, ImapPoller)
    return poller


def supervisor_of(
    sessions: SessionFactory,
    bus: EventBus,
    cipher: CredentialCipher = CIPHER,
    store: MemoryStore | None = None,
) -> PollerSupervisor:
    """The pollers of every email account, following account changes on `bus`."""
    registry = ChannelRegistry([EmailChannel(FAST_IMAP, FAST)])
    return PollerSupervisor(registry, services_of(sessions, cipher, bus, store))


@contextlib.asynccontextmanager
async def polling(
    sessions: SessionFactory, account_id: int, imap: ImapOptions = FAST_IMAP
) -> AsyncIterator[ImapPoller]:
    poller = await poller_of(sessions, account_id, imap)
    task = asyncio.create_task(poller.run())
    try:
        yield poller
    finally:
        poller.stop()
        await asyncio.wait_for(task, 15)


async def cursor_of(sessions: SessionFactory, account_id: int) -> Cursor | None:
    async with sessions() as session:
        return await load_cursor(session, account_id)


async def synced_to(sessions: SessionFactory, account_id: int, uid: int) -> None:
    async def reached() -> bool:
        cursor = await cursor_of(sessions, account_id)
        return cursor is not None and not cursor.backfilling and cursor.last_uid >= uid

    await eventually(reached, f"the cursor to reach UID {uid}")


async def external_ids(sessions: SessionFactory) -> list[str]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Interaction.external_id)
                .where(Interaction.direction == "in")
                .order_by(Interaction.id)
            )
        )


def message_id_of(raw: bytes) -> str:
    return external_id_of(parse_message(raw))


async def interaction_for(sessions: SessionFactory, raw: bytes) -> Interaction:
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction).where(Interaction.external_id == message_id_of(raw))
        )
    assert found is not None, f"no interaction for {message_id_of(raw)}"
    return found


async def account_row(sessions: SessionFactory, account_id: int) -> ChannelAccount:
    async with sessions() as session:
        account = await session.get(ChannelAccount, account_id)
    assert account is not None
    return account


# --- the corpus


# Valid mail that ingest refuses: a quoted local part with a space ("big bug bb"@bug.com).
# Every corpus message is importable; a quarantine here would be a regression.
CORPUS_QUARANTINED: dict[str, str] = {}


async def test_the_whole_corpus_is_imported_through_imap(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    if not CORPUS_FILES:
        corpus_message("(missing)")  # skips, or fails under CI=true, with the reason
    user = dovecot.add_user("corpus")
    appended = await asyncio.to_thread(
        dovecot.append_many, user, [corpus_message(name) for name in CORPUS_FILES]
    )
    uids = dict(zip(CORPUS_FILES, appended, strict=True))
    account_id = await add_account(sessions, dovecot, user)
    async with polling(sessions, account_id, ImapOptions(batch_size=10)) as poller:
        await synced_to(sessions, account_id, max(uids.values()))

    async with sessions() as session:
        held = {
            int(row.reference.partition(":")[2]): row.reason
            for row in await session.scalars(select(QuarantinedMessage))
        }
        stored = {
            row.external_id: row
            for row in await session.scalars(
                select(Interaction).where(Interaction.channel == "email")
            )
        }
    outcomes: dict[str, str] = {}
    first_of: dict[tuple[str | None, str], str] = {}
    for name, uid in uids.items():
        # Dovecot hands messages back with CRLF line ends: parse what the poller got.
        raw = await asyncio.to_thread(fetch_raw, dovecot, user, uid)
        parsed = parse_message(raw)
        if uid in held:
            outcomes[name] = f"quarantined: {held[uid]}"
            continue
        # The corpus repeats Message-IDs: copies of one message are stored once, other
        # messages under a reused id each as their own interaction.
        same = (parsed.message_id, parsed.content_digest)
        if same in first_of:
            outcomes[name] = f"duplicate of {first_of[same]}"
            continue
        first_of[same] = name
        outcomes[name] = "ingested"
        interaction = stored.get(content_key(parsed)) or stored[external_id_of(parsed)]
        assert interaction.meta["content_digest"] == parsed.content_digest, name
        assert interaction.subject == parsed.subject[:500], name
        assert [a["filename"] for a in interaction.attachments] == [
            a.filename for a in parsed.attachments
        ], name
    expected_quarantine = {
        name: f"quarantined: {reason}" for name, reason in CORPUS_QUARANTINED.items()
    }
    assert {n: o for n, o in outcomes.items() if o.startswith("quarantined")} == expected_quarantine
    duplicates = [name for name, outcome in outcomes.items() if outcome.startswith("duplicate")]
    ingested = [name for name, outcome in outcomes.items() if outcome == "ingested"]
    assert len(ingested) + len(duplicates) + len(CORPUS_QUARANTINED) == len(CORPUS_FILES)
    assert len(stored) == len(ingested)
    assert poller.status.counted("stored") == len(ingested)
    assert poller.status.counted("duplicate") == len(duplicates)
    assert poller.status.counted("quarantined") == len(CORPUS_QUARANTINED)
    assert poller.status.errors == 0


def fetch_raw(server: DovecotServer, user: MailUser, uid: int) -> bytes:
    with server.imap(user) as connection:
        connection.select('"INBOX"', readonly=True)
        status, data = connection.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert status == "OK"
    literal: bytes = data[0][1]
    return literal


# --- exactly once


@pytest.mark.both_databases
async def test_a_poller_killed_mid_batch_resumes_without_loss_or_duplicates(
    sessions: SessionFactory, dovecot: DovecotServer, bus: EventBus
) -> None:
    user = dovecot.add_user("killed")
    messages = [mail(f"Message {n}") for n in range(12)]
    for raw in messages:
        await append(dovecot, user, raw)
    account_id = await add_account(sessions, dovecot, user)
    poller = await poller_of(sessions, account_id)
    task = asyncio.create_task(poller.run())
    committed = 0

    def kill_after_the_third(event: Event) -> None:
        nonlocal committed
        if event.type == "interaction.created":
            committed += 1
            if committed == 3:
                task.cancel()  # no goodbye, in the middle of the first batch of 5

    bus.add_listener(kill_after_the_third)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT_SECONDS)
    cursor = await cursor_of(sessions, account_id)
    assert cursor is not None
    assert 3 <= cursor.last_uid < 12
    # What the cursor covers is stored, nothing beyond it.
    assert await external_ids(sessions) == [message_id_of(m) for m in messages[: cursor.last_uid]]

    async with polling(sessions, account_id):
        await synced_to(sessions, account_id, 12)
    assert await external_ids(sessions) == [message_id_of(m) for m in messages]


async def test_an_outage_is_recorded_and_import_resumes_after_it(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("outage")
    account_id = await add_account(sessions, dovecot, user)
    before, after = mail("Before the outage"), mail("After the outage")
    await append(dovecot, user, before)
    async with polling(sessions, account_id) as poller:
        await synced_to(sessions, account_id, 1)
        await asyncio.to_thread(dovecot.stop)
        try:

            async def error_recorded() -> bool:
                return (await account_row(sessions, account_id)).last_error is not None

            await eventually(error_recorded, "the error to be recorded on the mailbox")
        finally:
            await asyncio.to_thread(dovecot.start)
        failed = await account_row(sessions, account_id)
        assert failed.last_error_at is not None
        assert poller.status.errors >= 1
        await append(dovecot, user, after)
        await synced_to(sessions, account_id, 2)

        async def error_cleared() -> bool:
            return (await account_row(sessions, account_id)).last_error is None

        await eventually(error_cleared, "the error to be cleared")
    recovered = await account_row(sessions, account_id)
    assert recovered.last_success_at is not None
    assert recovered.last_success_at > failed.last_error_at
    assert await external_ids(sessions) == [message_id_of(before), message_id_of(after)]


async def test_mail_that_arrived_while_omnicrm_was_down_is_fetched(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("down")
    account_id = await add_account(sessions, dovecot, user)
    first = mail("First")
    await append(dovecot, user, first)
    async with polling(sessions, account_id):
        await synced_to(sessions, account_id, 1)
    # Arrived while no poller ran; dated long ago, beyond any backfill window.
    missed = [mail(f"Missed {n}") for n in range(3)]
    for raw in missed:
        await append(dovecot, user, raw, date=utcnow() - timedelta(days=400))
    async with polling(sessions, account_id):
        await synced_to(sessions, account_id, 4)
    assert await external_ids(sessions) == [message_id_of(m) for m in [first, *missed]]


@pytest.mark.both_databases
async def test_a_new_uidvalidity_rescans_without_duplicates(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("uidvalidity")
    account_id = await add_account(sessions, dovecot, user)
    # One without Message-ID: its content hash keeps it from being stored twice.
    messages = [mail("One"), mail("Two", message_id=None), mail("Three")]
    for raw in messages:
        await append(dovecot, user, raw)
    async with polling(sessions, account_id) as poller:
        await synced_to(sessions, account_id, 3)
        old = await cursor_of(sessions, account_id)
        assert old is not None
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)
        meanwhile = mail("Added meanwhile")
        await append(dovecot, user, meanwhile)

        async def rescanned() -> bool:
            cursor = await cursor_of(sessions, account_id)
            return (
                cursor is not None
                and cursor.uidvalidity != old.uidvalidity
                and not cursor.backfilling
                and len(await external_ids(sessions)) == 4
            )

        await eventually(rescanned, "the folder to be re-scanned")
        assert poller.status.counted("duplicate") == 3
    assert await external_ids(sessions) == [message_id_of(m) for m in [*messages, meanwhile]]


# --- quarantine


async def test_a_quarantined_message_does_not_block_and_is_not_retried_by_itself(
    sessions: SessionFactory, dovecot: DovecotServer, make_user: UserFactory
) -> None:
    user = dovecot.add_user("quarantine")
    account_id = await add_account(sessions, dovecot, user)
    good, broken, behind = mail("Good"), mail("No sender", sender=""), mail("Behind")
    for raw in (good, broken, behind):
        await append(dovecot, user, raw)
    async with polling(sessions, account_id) as poller:
        await synced_to(sessions, account_id, 3)
        assert await external_ids(sessions) == [message_id_of(good), message_id_of(behind)]
        # Another round: the held message is behind the cursor and stays alone.
        await append(dovecot, user, mail("Later"))
        await synced_to(sessions, account_id, 4)
        assert poller.status.counted("quarantined") == 1
    async with sessions() as session:
        [held] = list(await session.scalars(select(QuarantinedMessage)))
    uidvalidity = await asyncio.to_thread(dovecot.uidvalidity, user)
    assert (held.channel, held.account_id) == ("email", account_id)
    assert (held.reference, held.raw, held.status) == (f"{uidvalidity}:2", broken, "quarantined")
    assert "no sender address" in held.reason

    admin = await make_user(Role.ADMIN)
    retried = await admin.post(f"/api/v1/quarantine/{held.id}/retry")
    assert retried.status == 200
    body = await retried.json()
    assert (body["status"], body["reason"]) == ("quarantined", held.reason)
    discarded = await admin.post(f"/api/v1/quarantine/{held.id}/discard")
    assert (await discarded.json())["status"] == "discarded"
    assert len(await external_ids(sessions)) == 3


class BrokenDisk(MemoryStore):
    """An attachment store that fails while `broken` is set, as a full disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def put(self, data: bytes) -> str:
        if self.broken:
            raise OSError(28, "No space left on device")
        return await super().put(data)


def with_attachment(subject: str) -> bytes:
    boundary = "omnicrm-test-boundary"
    return (
        "From: Ann Customer <ann@customer.test>\r\nTo: support@omnicrm.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{secrets.token_hex(6)}@customer.test>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThe invoice, attached.\r\n"
        f"--{boundary}\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
        f"--{boundary}--\r\n"
    ).encode()


async def test_a_failing_message_keeps_what_came_before_it_in_its_batch_and_is_retried(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("brokendisk")
    account_id = await add_account(sessions, dovecot, user)
    messages = [mail("First"), mail("Second"), with_attachment("Third"), mail("Fourth")]
    for raw in messages:
        await append(dovecot, user, raw)
    disk = BrokenDisk()
    poller = await poller_of(sessions, account_id, store=disk)
    task = asyncio.create_task(poller.run())
    try:

        async def failed() -> bool:
            return poller.status.errors >= 1

        await eventually(failed, "the full disk to fail the third message")
        # The two before it are committed with the cursor past them, in their batch.
        cursor = await cursor_of(sessions, account_id)
        assert cursor is not None
        assert cursor.last_uid == 2
        assert await external_ids(sessions) == [message_id_of(m) for m in messages[:2]]
        disk.broken = False
        await synced_to(sessions, account_id, 4)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 15)
    assert await external_ids(sessions) == [message_id_of(m) for m in messages]
    assert len(disk.blobs) == 1


# --- after import


@pytest.mark.parametrize("action", ["leave", "seen", "move"])
async def test_after_import_acts_on_the_server_only_after_commit(
    sessions: SessionFactory, dovecot: DovecotServer, action: str
) -> None:
    user = dovecot.add_user(f"after-{action}")
    account_id = await add_account(
        sessions,
        dovecot,
        user,
        after_import=action,
        move_to_folder="Processed" if action == "move" else None,
    )
    messages = {await append(dovecot, user, raw): raw for raw in (mail("A"), mail("B"))}

    def handled_on_server() -> set[int]:
        """UIDs the server shows as marked or moved."""
        if action == "move":
            return set(messages) - set(dovecot.uids(user))
        return {uid for uid in messages if "\\Seen" in dovecot.flags(user, "INBOX", uid)}

    async with polling(sessions, account_id):
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            # Server first, database second: whatever the server shows as handled must
            # already be committed when we look.
            handled = await asyncio.to_thread(handled_on_server)
            stored = set(await external_ids(sessions))
            assert {message_id_of(messages[uid]) for uid in handled} <= stored
            if len(stored) == 2 and (action == "leave" or handled == set(messages)):
                break
            assert time.monotonic() < deadline, f"after_import={action} did not finish"
            await asyncio.sleep(0.02)
        await synced_to(sessions, account_id, max(messages))
    if action == "leave":
        # BODY.PEEK: people sharing the mailbox still see the mail as unread, where it was.
        assert sorted(dovecot.uids(user)) == sorted(messages)
        assert all(dovecot.flags(user, "INBOX", uid) == frozenset() for uid in messages)
    elif action == "seen":
        assert sorted(dovecot.uids(user)) == sorted(messages)
    else:
        assert dovecot.uids(user) == []
        assert len(dovecot.uids(user, "Processed")) == 2


# --- waiting for mail


async def test_idle_brings_new_mail_within_seconds(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("idle")
    # Polling once an hour: only IDLE can bring the message in time.
    account_id = await add_account(sessions, dovecot, user, use_idle=True, poll_seconds=3600)
    async with polling(sessions, account_id) as poller:

        async def idling() -> bool:
            return poller.status.state == "idle"

        await eventually(idling, "the poller to IDLE")
        raw = mail("Pushed")
        started = time.monotonic()
        await append(dovecot, user, raw)
        await eventually(lambda: _has(sessions, message_id_of(raw)), "the pushed message", within=3)
        assert time.monotonic() - started < 3


async def test_without_idle_the_mailbox_is_polled(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("poll")
    account_id = await add_account(sessions, dovecot, user, use_idle=False, poll_seconds=1)
    async with polling(sessions, account_id) as poller:

        async def polling_state() -> bool:
            return poller.status.state == "polling"

        await eventually(polling_state, "the poller to poll")
        raw = mail("Polled")
        await append(dovecot, user, raw)
        await eventually(lambda: _has(sessions, message_id_of(raw)), "the polled message", 5)


async def _has(sessions: SessionFactory, external_id: str) -> bool:
    return external_id in await external_ids(sessions)


async def test_the_first_sync_backfills_only_the_window(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("backfill")
    old, recent = mail("Old"), mail("Recent")
    await append(dovecot, user, old, date=utcnow() - timedelta(days=40))
    await append(dovecot, user, recent, date=utcnow() - timedelta(days=2))
    account_id = await add_account(sessions, dovecot, user, backfill_days=30)
    async with polling(sessions, account_id):
        await synced_to(sessions, account_id, 2)
        assert await external_ids(sessions) == [message_id_of(recent)]
        # After the first sync nothing is filtered by date: a message moved in by a person
        # keeps its old date and is still new to us.
        moved_in = mail("Moved in")
        await append(dovecot, user, moved_in, date=utcnow() - timedelta(days=90))
        await synced_to(sessions, account_id, 3)
    assert await external_ids(sessions) == [message_id_of(recent), message_id_of(moved_in)]


# --- conversations


async def conversation_of(sessions: SessionFactory, raw: bytes) -> Conversation:
    interaction = await interaction_for(sessions, raw)
    async with sessions() as session:
        conversation = await session.get(Conversation, interaction.conversation_id)
    assert conversation is not None
    return conversation


async def test_an_auto_reply_neither_reopens_nor_gets_an_answer(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("autoreply")
    account_id = await add_account(sessions, dovecot, user)
    question = mail("My order", message_id="<question@customer.test>")
    out_of_office = mail(
        "Automatic reply: My order",
        headers="Auto-Submitted: auto-replied\r\nIn-Reply-To: <question@customer.test>\r\n",
    )
    again = mail("Re: My order", headers="In-Reply-To: <question@customer.test>\r\n")
    async with polling(sessions, account_id):
        await append(dovecot, user, question)
        await synced_to(sessions, account_id, 1)
        conversation = await conversation_of(sessions, question)
        async with sessions() as session, session.begin():
            await set_status(session, CLI, conversation.id, "resolved")
        await append(dovecot, user, out_of_office)
        await synced_to(sessions, account_id, 2)
        recorded = await conversation_of(sessions, out_of_office)
        assert recorded.id == conversation.id
        assert recorded.status == ConversationStatus.RESOLVED
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0
        # A person writing again does reopen it.
        await append(dovecot, user, again)
        await synced_to(sessions, account_id, 3)
    reopened = await conversation_of(sessions, again)
    assert (reopened.id, reopened.status) == (conversation.id, ConversationStatus.OPEN)


async def test_customer_operator_customer_is_one_conversation(
    sessions: SessionFactory, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    user = dovecot.add_user("roundtrip")
    account_id = await add_account(
        sessions,
        dovecot,
        user,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_tls="none",
    )
    worker = OutboxWorker(
        sessions, {"email": EmailSender(sessions, cipher=CIPHER, timeout_seconds=10)}
    )
    question = mail("Delivery date", message_id="<q1@customer.test>")
    async with polling(sessions, account_id):
        await append(dovecot, user, question)
        await synced_to(sessions, account_id, 1)
        conversation = await conversation_of(sessions, question)
        async with sessions() as session, session.begin():
            await reply(session, CLI, conversation.id, text="Friday.")
        assert await worker.run_once() == 1
        [sent] = await smtp_server.wait_for(1, timeout=10)
        our_id = sent.message["Message-ID"]
        assert sent.message["In-Reply-To"] == "<q1@customer.test>"
        # The customer's client answers our message, quoting its id only.
        answer = mail(
            f"Re: {sent.message['Subject']}",
            headers=f"In-Reply-To: {our_id}\r\nReferences: {our_id}\r\n",
        )
        await append(dovecot, user, answer)
        unrelated = mail("Invoice address")
        await append(dovecot, user, unrelated)
        await synced_to(sessions, account_id, 3)
    async with sessions() as session:
        item = await session.scalar(select(OutboxItem))
    assert item is not None
    assert (item.status, item.provider_id) == (OutboxStatus.SENT, our_id)
    assert (await conversation_of(sessions, answer)).id == conversation.id
    assert (await conversation_of(sessions, unrelated)).id != conversation.id


# --- one poller per account


def poller_in(supervisor: PollerSupervisor, account_id: int) -> ImapPoller:
    poller = supervisor.pollers()[account_id]
    assert isinstance(poller, ImapPoller)
    return poller


# The advisory lock is PostgreSQL's; SQLite serves one process.
@pytest.mark.postgresql_only
async def test_two_processes_on_postgresql_poll_an_account_once(
    sessions: SessionFactory, dovecot: DovecotServer, database_url: str
) -> None:
    user = dovecot.add_user("twoprocs")
    account_id = await add_account(sessions, dovecot, user)
    # A second engine and bus: another server process as far as the database can tell.
    other_engine = make_engine(database_url)
    other_bus = EventBus()
    other_sessions = async_sessionmaker(
        other_engine, expire_on_commit=False, info=session_info(other_bus)
    )
    supervisors = [
        supervisor_of(sessions, EventBus()),
        supervisor_of(other_sessions, other_bus),
    ]

    def stored_by(supervisor: PollerSupervisor) -> int:
        return poller_in(supervisor, account_id).status.counted("stored")

    try:
        for supervisor in supervisors:
            await supervisor.start()

        async def one_active() -> bool:
            states = sorted(poller_in(s, account_id).status.state for s in supervisors)
            return states == ["idle", "standby"]

        await eventually(one_active, "one poller to poll and the other to stand by")
        messages = [mail(f"Shared {n}") for n in range(6)]
        for raw in messages:
            await append(dovecot, user, raw)
        await synced_to(sessions, account_id, 6)
        assert sorted(stored_by(s) for s in supervisors) == [0, 6]
        assert all(poller_in(s, account_id).status.counted("duplicate") == 0 for s in supervisors)

        # The active process stops: the other takes over.
        active = next(s for s in supervisors if stored_by(s) == 6)
        standby = next(s for s in supervisors if s is not active)
        await active.stop()
        late = mail("After the handover")
        await append(dovecot, user, late)
        await synced_to(sessions, account_id, 7)
        assert stored_by(standby) == 1
    finally:
        for supervisor in supervisors:
            await supervisor.stop()
        await other_engine.dispose()
    assert await external_ids(sessions) == [message_id_of(m) for m in [*messages, late]]


# --- the supervisor follows account changes


async def test_the_supervisor_restarts_a_poller_when_its_account_changes(
    sessions: SessionFactory, dovecot: DovecotServer, bus: EventBus
) -> None:
    user = dovecot.add_user("changes")
    account_id = await add_account(sessions, dovecot, user, imap_password="wrong")
    supervisor = supervisor_of(sessions, bus)
    await supervisor.start()
    try:

        async def login_refused() -> bool:
            error = (await account_row(sessions, account_id)).last_error
            return error is not None and "login failed" in error

        await eventually(login_refused, "the wrong password to be reported")
        assert poller_in(supervisor, account_id).status.errors >= 1

        async def change(settings: dict[str, Any], enabled: bool | None = None) -> None:
            async with sessions() as session, session.begin():
                row = await session.get(ChannelAccount, account_id)
                assert row is not None
                # Emits channel_account.updated, as every writer of accounts does.
                await update_account(
                    session,
                    CLI,
                    row,
                    settings=settings,
                    secret_fields=SECRET_FIELDS,
                    cipher=CIPHER,
                    enabled=enabled,
                )

        await change({"imap_password": user.password})
        raw = mail("After the fix")
        await append(dovecot, user, raw)
        await eventually(lambda: _has(sessions, message_id_of(raw)), "the message after the fix")
        assert poller_in(supervisor, account_id).status.errors == 0

        await change({}, enabled=False)

        async def stopped() -> bool:
            return account_id not in supervisor.pollers()

        await eventually(stopped, "the poller of the disabled account to stop")

        # A new account: its creation's event starts its poller.
        second_user = dovecot.add_user("created")
        await add_account(sessions, dovecot, second_user)
        first_mail = mail("To the new account")
        await append(dovecot, second_user, first_mail)
        await eventually(
            lambda: _has(sessions, message_id_of(first_mail)), "mail of the new account"
        )
    finally:
        await supervisor.stop()
    assert supervisor.pollers() == {}


# --- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_in_front_of(
    server: DovecotServer, certificate: tuple[Path, Path], *, starttls: bool
) -> AsyncIterator[int]:
    """A TLS endpoint for the plaintext test Dovecot, as a real provider would offer:
    implicit TLS, or a STARTTLS greeting. Yields its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if starttls:
            writer.write(b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
            while True:
                line = await reader.readline()
                tag, _, command = line.strip().partition(b" ")
                if command.upper() == b"CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n")
                    writer.write(tag + b" OK done\r\n")
                elif command.upper() == b"STARTTLS":
                    writer.write(tag + b" OK Begin TLS negotiation now\r\n")
                    await writer.drain()
                    await writer.start_tls(context)
                    break
                else:
                    writer.close()
                    return
        upstream_reader, upstream_writer = await asyncio.open_connection(server.host, server.port)
        if starttls:
            await upstream_reader.readline()  # the client had its greeting already
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(serve(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    listener = await asyncio.start_server(track, "127.0.0.1", 0, ssl=None if starttls else context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await listener.wait_closed()


def trusting(certificate: tuple[Path, Path]) -> ImapOptions:
    return replace(FAST_IMAP, ssl_context=ssl.create_default_context(cafile=str(certificate[0])))


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
async def test_mail_is_fetched_over_tls(
    sessions: SessionFactory,
    dovecot: DovecotServer,
    certificate: tuple[Path, Path],
    mode: str,
) -> None:
    user = dovecot.add_user(f"tls-{mode}")
    raw = mail(f"Over {mode}")
    await append(dovecot, user, raw)
    async with tls_in_front_of(dovecot, certificate, starttls=mode == "starttls") as port:
        account_id = await add_account(sessions, dovecot, user, imap_tls=mode, imap_port=port)
        async with polling(sessions, account_id, trusting(certificate)):
            await synced_to(sessions, account_id, 1)
    assert await external_ids(sessions) == [message_id_of(raw)]


async def test_an_untrusted_certificate_is_refused(
    sessions: SessionFactory, dovecot: DovecotServer, certificate: tuple[Path, Path]
) -> None:
    user = dovecot.add_user("tls-untrusted")
    await append(dovecot, user, mail("Never read"))
    async with tls_in_front_of(dovecot, certificate, starttls=False) as port:
        account_id = await add_account(sessions, dovecot, user, imap_tls="ssl", imap_port=port)
        async with polling(sessions, account_id):  # the system's trust store only

            async def refused() -> bool:
                error = (await account_row(sessions, account_id)).last_error
                return error is not None and "CERTIFICATE_VERIFY_FAILED" in error

            await eventually(refused, "the certificate to be refused")
    assert await external_ids(sessions) == []

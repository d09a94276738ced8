"""Different emails that share a Message-ID are each kept; the same email is stored once.

"The same email" is the same Message-ID and the same content digest (what the sender wrote,
not the headers servers add). The digest's unit tests, import_message on both databases
(rows stored before digests existed, replies' threading headers) and the real corpus's
colliding Message-IDs through a real Dovecot (copies counted in the metric, a UIDVALIDITY
re-scan, threading of a reply that names a reused id).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import pytest
from sqlalchemy import select, text

from channels.email.digest import content_digest
from channels.email.imap import load_cursor, reference_of
from channels.email.inbound import (
    ImportStatus,
    content_key,
    external_id_of,
    import_message,
    store_attachments,
    to_inbound_event,
)
from channels.email.message import parse_message
from channels.email.smtp import thread_message_ids
from core.audit import CLI
from core.channel_accounts import AccountView
from core.conversations import reply
from core.db import SessionFactory
from core.events import EventBus
from core.ingest import IngestPolicy, ingest
from core.models import Interaction
from core.storage import MemoryStore
from tests.email_accounts import create_email_account
from tests.mailservers import DovecotServer
from tests.test_email_imap import add_account, mail, supervisor_of, synced_to
from tests.test_email_message import corpus_message
from tests.waiting import eventually
from web.metrics import Metrics

pytestmark = pytest.mark.both_databases  # tests/conftest.py

pytest_plugins = ["tests.mailservers"]  # the `dovecot` fixture

POLICY = IngestPolicy()

# Real mail (tests/test_email_message.py: the shared corpus) whose Message-IDs collide.
PDF = "attachment_emails/attachment_pdf.eml"
# Same Message-ID, Date, sender and PDF; another line of text: a different message.
PDF_OTHER_TEXT = "attachment_emails/attachment_pdf_non_ascii.eml"
# PDF with LF line ends: what the server hands back is the same message.
PDF_LF = "attachment_emails/attachment_pdf_lf.eml"
# RFC 2822 examples: 01 and 05 are byte for byte the same; 02 reuses the id for other headers.
HELLO = "rfc2822/example01.eml"
HELLO_AGAIN = "rfc2822/example05.eml"
HELLO_OTHER = "rfc2822/example02.eml"
# Jamis Buck twice with one Message-ID and two subjects (two conversations).
JAMIS_FIRST = "plain_emails/raw_email.eml"
JAMIS_SECOND = "plain_emails/raw_email_with_partially_quoted_subject.eml"


def redelivered(raw: bytes, *, mailbox: str = "sales@omnicrm.test") -> bytes:
    """`raw` as another server delivered it: no mbox line, LF line ends, its own trace headers
    on top, a Bcc and a spam verdict appended to the header block (a Bcc copy, a second
    mailbox)."""
    text = raw.replace(b"\r\n", b"\n")
    if text.startswith(b"From "):
        text = text.partition(b"\n")[2]
    head, _, body = text.partition(b"\n\n")
    trace = (
        f"Return-Path: <bounces@sender.test>\nDelivered-To: {mailbox}\n"
        "Received: from mx2.omnicrm.test (mx2.omnicrm.test [192.0.2.7])\n"
        "\tby imap.omnicrm.test with LMTP id 42; Tue, 10 May 2005 17:30:00 +0000\n"
    ).encode()
    added = f"\nBcc: {mailbox}\nX-Spam-Status: No, score=-1.2\n\n".encode()
    return trace + head + added + body


def first_base64_line(raw: bytes) -> bytes:
    return next(line for line in raw.splitlines() if re.fullmatch(rb"[A-Za-z0-9+/]{60,}", line))


# --- the digest


def test_the_same_message_through_other_servers_has_the_same_digest() -> None:
    raw = corpus_message(PDF)
    assert content_digest(redelivered(raw)) == content_digest(raw)
    assert content_digest(raw.replace(b"\r\n", b"\n")) == content_digest(raw)
    # Trailing line ends and a header folded elsewhere by a server are no change either.
    assert content_digest(raw + b"\r\n\r\n") == content_digest(raw)
    refolded = raw.replace(
        b"To: xxxx@xxxx.com, xxxx@xxxx.com", b"To: xxxx@xxxx.com,\r\n  xxxx@xxxx.com"
    )
    assert refolded != raw
    assert content_digest(refolded) == content_digest(raw)


def test_one_changed_byte_in_the_text_an_attachment_or_a_sender_header_changes_the_digest() -> None:
    raw = corpus_message(PDF)
    line = first_base64_line(raw)
    changed_pdf = raw.replace(line, line[:-1] + (b"A" if line[-1:] != b"A" else b"B"))
    [pdf], [other_pdf] = parse_message(raw).attachments, parse_message(changed_pdf).attachments
    assert pdf.content is not None
    assert other_pdf.content is not None
    assert len(pdf.content) == len(other_pdf.content)
    assert sum(a != b for a, b in zip(pdf.content, other_pdf.content, strict=True)) == 1
    changed = {
        "text": raw.replace(b"see if I can figure", b"see if I can fIgure"),
        "attachment": changed_pdf,
        "subject": raw.replace(b"Subject: Another PDF", b"Subject: Another PDG"),
        "date": raw.replace(b"Date: Tue, 10 May 2005 11:26:39", b"Date: Tue, 10 May 2005 11:26:38"),
        "recipients": raw.replace(b"To: xxxx@xxxx.com,", b"To: xxxy@xxxx.com,"),
    }
    for what, variant in changed.items():
        assert variant != raw, what
        assert content_digest(variant) != content_digest(raw), what
    # The real pair: one Message-ID, one line of text apart.
    assert parse_message(corpus_message(PDF_OTHER_TEXT)).message_id == (
        parse_message(raw).message_id
    )
    assert content_digest(corpus_message(PDF_OTHER_TEXT)) != content_digest(raw)


def test_an_obsolete_from_header_on_the_first_line_is_not_taken_for_an_mbox_line() -> None:
    def message(sender: str) -> bytes:
        return f"From : {sender}\r\nSubject: Hi\r\n\r\nHello\r\n".encode()

    assert content_digest(message("ann@customer.test")) != content_digest(message("bob@x.test"))
    mbox_line = b"From ann@customer.test Tue May 10 11:28:07 2005\r\n"
    assert content_digest(mbox_line + message("ann@customer.test")) == content_digest(
        message("ann@customer.test")
    )


def test_the_corpus_copies_are_the_same_message_and_the_reused_ids_are_not() -> None:
    same = [(PDF, PDF_LF), (HELLO, HELLO_AGAIN)]
    different = [(PDF, PDF_OTHER_TEXT), (HELLO, HELLO_OTHER), (JAMIS_FIRST, JAMIS_SECOND)]
    for first, second in same + different:
        assert parse_message(corpus_message(first)).message_id == (
            parse_message(corpus_message(second)).message_id
        )
    for first, second in same:
        assert content_digest(corpus_message(first)) == content_digest(corpus_message(second))
    for first, second in different:
        assert content_digest(corpus_message(first)) != content_digest(corpus_message(second))


# --- import_message on both databases


async def import_all(
    sessions: SessionFactory, mailbox: AccountView, messages: Sequence[bytes], store: MemoryStore
) -> list[ImportStatus]:
    statuses = []
    for uid, raw in enumerate(messages, start=1):
        async with sessions() as session, session.begin():
            outcome = await import_message(
                session, mailbox, reference_of(1, uid), raw, store, POLICY
            )
        statuses.append(outcome.status)
    return statuses


async def inbound(sessions: SessionFactory) -> list[Interaction]:
    async with sessions() as session:
        return list(await session.scalars(select(Interaction).order_by(Interaction.id)))


async def store_as_before_digests(
    sessions: SessionFactory, mailbox: AccountView, raw: bytes, store: MemoryStore
) -> int:
    """What the version before content digests stored for `raw`: the same interaction under
    the Message-ID (or the raw bytes' hash), without a digest."""
    parsed = parse_message(raw)
    attachments = await store_attachments(parsed, store)
    event = to_inbound_event(parsed, mailbox, attachments)
    meta = {key: value for key, value in event.meta.items() if key != "content_digest"}
    old_key = parsed.message_id or f"sha256:{parsed.content_hash}"
    async with sessions() as session, session.begin():
        result = await ingest(session, replace(event, external_id=old_key, meta=meta), POLICY)
    return result.interaction_id


async def test_a_different_message_with_a_used_message_id_is_kept_with_its_attachment(
    sessions: SessionFactory,
) -> None:
    mailbox = await create_email_account(sessions)
    store = MemoryStore()
    first, second = corpus_message(PDF), corpus_message(PDF_OTHER_TEXT)
    statuses = await import_all(sessions, mailbox, [first, second, redelivered(second)], store)

    assert statuses == [ImportStatus.INGESTED, ImportStatus.INGESTED, ImportStatus.DUPLICATE]
    stored = await inbound(sessions)
    parsed = parse_message(second)
    assert [row.external_id for row in stored] == ["<xxxx@xxxx.com>", content_key(parsed)]
    assert stored[1].external_id == f"<xxxx@xxxx.com> sha256:{content_digest(second)}"
    assert stored[1].meta["full_text"] == parsed.text_full != stored[0].meta["full_text"]
    [pdf] = stored[1].attachments
    [expected] = parsed.attachments
    assert pdf["filename"] == expected.filename
    assert pdf["content_type"] == "application/pdf"
    assert await store.get(pdf["key"]) == expected.content
    # One sender, one subject: the second joins the first one's conversation, as any would.
    assert stored[1].conversation_id == stored[0].conversation_id


async def test_mail_stored_before_digests_is_recognized_when_it_comes_again(
    sessions: SessionFactory,
) -> None:
    mailbox = await create_email_account(sessions)
    store = MemoryStore()
    # Both keys of the earlier version: a Message-ID, and the raw bytes' hash without one.
    without_id = mail("No id here", message_id=None)
    old_ids = [
        await store_as_before_digests(sessions, mailbox, raw, store)
        for raw in (corpus_message(PDF), without_id)
    ]

    # The same bytes (a UIDVALIDITY re-scan), and the PDF as another mailbox received it.
    again = [corpus_message(PDF), without_id, redelivered(corpus_message(PDF))]
    statuses = await import_all(sessions, mailbox, again, store)

    assert statuses == [ImportStatus.DUPLICATE] * 3
    assert [row.id for row in await inbound(sessions)] == old_ids


async def test_a_different_message_reusing_the_id_of_mail_stored_before_digests_is_kept(
    sessions: SessionFactory,
) -> None:
    mailbox = await create_email_account(sessions)
    store = MemoryStore()
    old_id = await store_as_before_digests(sessions, mailbox, corpus_message(PDF), store)

    statuses = await import_all(sessions, mailbox, [corpus_message(PDF_OTHER_TEXT)], store)

    assert statuses == [ImportStatus.INGESTED]
    stored = await inbound(sessions)
    assert stored[0].id == old_id
    assert [row.external_id for row in stored] == [
        "<xxxx@xxxx.com>",
        content_key(parse_message(corpus_message(PDF_OTHER_TEXT))),
    ]


async def test_a_reply_names_the_reused_message_id_of_the_message_it_answers(
    sessions: SessionFactory,
) -> None:
    mailbox = await create_email_account(sessions)
    store = MemoryStore()

    def dated(day: int) -> str:
        return f"Date: Mon, {day} Jun 2025 10:00:00 +0000\r\n"

    same_id = "<same@broken-mailer.test>"
    order = mail("Order 42", message_id=same_id, headers=dated(2), body="Where is it?")
    invoice = mail("Invoice 7", message_id=same_id, headers=dated(3), body="Send the PDF")
    follow_up = mail("Re: Invoice 7", headers=dated(4), body="Still waiting for it.")
    await import_all(sessions, mailbox, [order, invoice, follow_up], store)
    stored = await inbound(sessions)
    assert [row.external_id for row in stored] == [
        "<same@broken-mailer.test>",
        content_key(parse_message(invoice)),
        external_id_of(parse_message(follow_up)),
    ]
    conversation_id = stored[1].conversation_id
    assert conversation_id is not None
    assert stored[2].conversation_id == conversation_id != stored[0].conversation_id

    async with sessions() as session, session.begin():
        _interaction, item = await reply(session, CLI, conversation_id, text="Attached.")
        references = await thread_message_ids(session, conversation_id, item.id)
    # Both messages of this conversation, oldest first, by the ids their sender gave them.
    assert references == ["<same@broken-mailer.test>", external_id_of(parse_message(follow_up))]


# PostgreSQL lets two transactions race for the key; SQLite has a single writer.
@pytest.mark.postgresql_only
async def test_two_different_messages_with_one_id_imported_at_once_are_both_kept(
    sessions: SessionFactory,
) -> None:
    mailbox = await create_email_account(sessions)
    store = MemoryStore()
    first, second = corpus_message(PDF), corpus_message(PDF_OTHER_TEXT)

    async def import_second() -> ImportStatus:
        async with sessions() as session, session.begin():
            return (
                await import_message(session, mailbox, reference_of(1, 2), second, store, POLICY)
            ).status

    async def someone_waits() -> bool:
        async with sessions() as session:
            # Other test runs share the server: only this database's waits count.
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE NOT l.granted AND a.datname = current_database()"
                )
            )
        return bool(waiting)

    async with sessions() as session, session.begin():
        outcome = await import_message(session, mailbox, reference_of(1, 1), first, store, POLICY)
        racer = asyncio.create_task(import_second())
        # The second import waits for this transaction (same sender, same Message-ID).
        await eventually(someone_waits, "the second import to wait for the first")
        assert not racer.done()
    assert outcome.status is ImportStatus.INGESTED
    assert await racer is ImportStatus.INGESTED
    stored = await inbound(sessions)
    assert [row.external_id for row in stored] == [
        "<xxxx@xxxx.com>",
        content_key(parse_message(second)),
    ]
    assert len({row.contact_id for row in stored}) == 1


# --- through a real Dovecot


async def test_colliding_corpus_ids_through_imap_keep_each_message_once_and_count_copies(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("collide")
    messages = {
        PDF: corpus_message(PDF),
        PDF_OTHER_TEXT: corpus_message(PDF_OTHER_TEXT),
        PDF_LF: corpus_message(PDF_LF),
        "the PDF as another mailbox got it": redelivered(corpus_message(PDF)),
        HELLO: corpus_message(HELLO),
        HELLO_AGAIN: corpus_message(HELLO_AGAIN),
        HELLO_OTHER: corpus_message(HELLO_OTHER),
    }
    uids = await asyncio.to_thread(dovecot.append_many, user, list(messages.values()))
    account_id = await add_account(sessions, dovecot, user)
    store = MemoryStore()
    supervisor = supervisor_of(sessions, EventBus(), store=store)
    metrics = Metrics()
    metrics.watch_pollers(supervisor)

    def sample(outcome: str) -> float | None:
        labels = {"channel": "email", "account": user.login, "outcome": outcome}
        return metrics.registry.get_sample_value("omnicrm_channel_items_total", labels)

    def counted(total: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return (sample("stored") or 0) + (sample("duplicate") or 0) >= total

        return check

    await supervisor.start()
    try:
        await synced_to(sessions, account_id, max(uids))
        await eventually(counted(len(messages)), "the poller to count what it read")
        assert (sample("stored"), sample("duplicate"), sample("quarantined")) == (4, 3, 0)
        stored = await inbound(sessions)
        assert [row.external_id for row in stored] == [
            "<xxxx@xxxx.com>",
            content_key(parse_message(messages[PDF_OTHER_TEXT])),
            "<1234@local.machine.example>",
            content_key(parse_message(messages[HELLO_OTHER])),
        ]
        [pdf] = stored[1].attachments
        [expected] = parse_message(messages[PDF_OTHER_TEXT]).attachments
        assert await store.get(pdf["key"]) == expected.content

        # The server renumbers the folder: everything is read again, nothing is new.
        async with sessions() as session:
            before = await load_cursor(session, account_id)
        assert before is not None
        await asyncio.to_thread(dovecot.reset_uidvalidity, user)

        async def rescanned() -> bool:
            async with sessions() as session:
                cursor = await load_cursor(session, account_id)
            return (
                cursor is not None
                and cursor.uidvalidity != before.uidvalidity
                and not cursor.backfilling
            )

        await eventually(rescanned, "the folder to be re-scanned")
        await eventually(counted(2 * len(messages)), "the poller to count what it read again")
        assert (sample("stored"), sample("duplicate")) == (4, 3 + len(messages))
        assert [row.id for row in await inbound(sessions)] == [row.id for row in stored]
    finally:
        await supervisor.stop()


async def test_a_reply_naming_a_reused_message_id_joins_the_first_imported_messages_thread(
    sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("reused")
    first, second = corpus_message(JAMIS_FIRST), corpus_message(JAMIS_SECOND)
    reused_id = parse_message(first).message_id
    assert reused_id == "<d3b8cf8e49f04480850c28713a1f473e@37signals.com>"
    answer = mail(
        "Something else entirely",
        sender="Jamis Buck <jamis@37signals.com>",
        headers=f"In-Reply-To: {reused_id}\r\n",
    )
    await asyncio.to_thread(dovecot.append_many, user, [first, second, answer])
    account_id = await add_account(sessions, dovecot, user)
    supervisor = supervisor_of(sessions, EventBus())
    await supervisor.start()
    try:
        await synced_to(sessions, account_id, 3)
    finally:
        await supervisor.stop()

    stored = await inbound(sessions)
    assert [row.external_id for row in stored] == [
        reused_id,
        content_key(parse_message(second)),
        external_id_of(parse_message(answer)),
    ]
    # Two subjects, two conversations; the answer names the id both messages carry and
    # joins the conversation of the one imported first.
    assert stored[0].conversation_id != stored[1].conversation_id
    assert stored[2].conversation_id == stored[0].conversation_id

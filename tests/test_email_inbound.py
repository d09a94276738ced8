"""Inbound email without a mail server: the mapping to ingest, and import_message on both
databases (attachments, bounces, quarantine, duplicates)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.email.digest import content_digest
from channels.email.imap import reference_of
from channels.email.inbound import (
    ImportStatus,
    external_id_of,
    import_message,
    to_inbound_event,
)
from channels.email.message import parse_message
from channels.email.threads import make_message_id
from core.audit import CLI
from core.channel_accounts import AccountView
from core.conversations import reply
from core.db import SessionFactory
from core.ingest import IngestPolicy
from core.models import (
    IdentityKind,
    Interaction,
    OutboxItem,
    OutboxStatus,
    QuarantinedMessage,
    QuarantineStatus,
)
from core.storage import MemoryStore
from tests.email_accounts import account_view, create_email_account
from tests.test_email_message import (
    CORPUS_FILES,
    PYTHON_FAILS,
    corpus_message,
    fixture,
    python_subject_and_sender,
)

POLICY = IngestPolicy()


def message(
    *,
    sender: str = "Ann Customer <ANN@Customer.test>",
    subject: str = "Order 42",
    message_id: str | None = "<first@customer.test>",
    headers: str = "",
    body: str = "Where is my order?\r\n",
) -> bytes:
    lines = [f"From: {sender}"] if sender else []
    lines += [
        "To: Support <support@omnicrm.test>",
        "Cc: boss@customer.test",
        f"Subject: {subject}",
        "Date: Tue, 02 May 2023 10:15:00 +0200",
    ]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    head = "\r\n".join(lines) + "\r\n" + headers
    return f"{head}\r\n{body}".encode()


async def count(sessions: SessionFactory, model: type[object]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- the mapping


def test_a_reply_maps_to_an_email_interaction_threaded_under_what_it_answers() -> None:
    raw = fixture("gmail_reply.eml")
    parsed = parse_message(raw)
    event = to_inbound_event(parsed, account_view(queue_id=3))

    assert event.channel == "email"
    assert event.external_id == "<CAJ2x8Fq1=reply@mail.gmail.com>"
    assert [(a.kind, a.value) for a in event.addresses] == [
        (IdentityKind.EMAIL, "jane@example.com")
    ]
    assert event.display_name == "Jane Customer"
    assert event.subject == "Re: Your order 1234"
    assert event.thread_key == "your order 1234"
    # In-Reply-To first, then the rest of References, without repeats.
    assert event.reply_to_external_ids == [
        "<omnicrm.41.0123456789abcdef@omnicrm.test>",
        "<CAJ0root=thread@mail.gmail.com>",
    ]
    assert event.queue_id == 3
    assert event.may_reopen
    assert event.occurred_at is not None
    assert event.occurred_at.isoformat() == "2023-05-02T10:15:00+02:00"
    # The new text is shown; the quote and the whole original are kept beside it.
    assert event.text.startswith("Thanks, the parcel arrived today.")
    assert "your order 1234 has shipped" not in event.text
    assert "your order 1234 has shipped" in event.meta["quoted_text"]
    assert event.meta["full_text"] == parsed.text_full
    assert event.meta["account_id"] == 7
    assert event.meta["message_id"] == "<CAJ2x8Fq1=reply@mail.gmail.com>"
    assert event.meta["to"] == ["support@omnicrm.test"]
    assert event.meta["auto_reply"] is False
    assert event.meta["bounce"] is None


def test_a_message_without_message_id_is_known_by_its_content_digest() -> None:
    raw = message(message_id=None)
    event = to_inbound_event(parse_message(raw), account_view())
    assert event.external_id == f"sha256:{content_digest(raw)}"
    assert event.meta["message_id"] is None
    assert event.meta["content_digest"] == content_digest(raw)
    # The copy another mailbox received is the same message.
    copy = b"Delivered-To: sales@omnicrm.test\r\n" + raw
    assert to_inbound_event(parse_message(copy), account_view()).external_id == event.external_id


def test_an_auto_reply_is_recorded_but_may_not_reopen() -> None:
    raw = message(subject="Out of office", headers="Auto-Submitted: auto-replied\r\n")
    event = to_inbound_event(parse_message(raw), account_view())
    assert not event.may_reopen
    assert event.meta["auto_reply"] is True
    assert event.meta["auto_reply_reason"] == "Auto-Submitted: auto-replied"


def test_a_bounce_names_the_outbox_item_and_may_not_reopen() -> None:
    event = to_inbound_event(parse_message(fixture("dsn_failed.eml")), account_view())
    assert not event.may_reopen
    bounce = event.meta["bounce"]
    assert bounce["outbox_id"] == 12
    assert bounce["original_message_id"] == "<omnicrm.12.5a5b5c5d5e5f6061@omnicrm.test>"
    assert "User unknown" in bounce["reason"]


def test_a_message_that_is_all_quote_shows_its_whole_text() -> None:
    raw = message(body="> what you wrote\r\n> before\r\n")
    event = to_inbound_event(parse_message(raw), account_view())
    assert "what you wrote" in event.text


def test_a_huge_subject_fits_the_thread_key_column() -> None:
    event = to_inbound_event(parse_message(message(subject="x" * 2000)), account_view())
    assert event.thread_key is not None
    assert len(event.thread_key) == 500


@pytest.mark.parametrize("name", CORPUS_FILES or ["(corpus missing)"])
def test_every_corpus_message_maps_with_sender_and_subject_as_python_reads_them(
    name: str,
) -> None:
    raw = corpus_message(name)
    event = to_inbound_event(parse_message(raw), account_view())
    subject, sender = PYTHON_FAILS.get(name) or python_subject_and_sender(raw)
    assert event.subject == (subject or "")
    assert [a.value for a in event.addresses] == [sender]
    assert event.external_id == external_id_of(parse_message(raw))


# --- import_message


async def test_attachments_go_to_the_store_and_the_interaction_lists_them(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    raw = corpus_message("multi_charset/japanese_attachment.eml")
    store = MemoryStore()
    async with sessions() as session, session.begin():
        outcome = await import_message(session, account, reference_of(1, 1), raw, store, POLICY)
    assert outcome.status is ImportStatus.INGESTED
    async with sessions() as session:
        interaction = await session.get(Interaction, outcome.interaction_id)
    assert interaction is not None
    parsed = parse_message(raw)
    assert [entry["filename"] for entry in interaction.attachments] == [
        attachment.filename for attachment in parsed.attachments
    ]
    for entry, attachment in zip(interaction.attachments, parsed.attachments, strict=True):
        assert await store.get(entry["key"]) == attachment.content
        assert entry["size"] == attachment.size
        assert entry["content_type"] == attachment.content_type
        assert entry["too_large"] is False


async def test_an_attachment_over_the_limit_keeps_its_metadata_only(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    raw = corpus_message("attachment_emails/attachment_pdf.eml")
    store = MemoryStore()
    async with sessions() as session, session.begin():
        outcome = await import_message(
            session, account, reference_of(1, 1), raw, store, POLICY, max_attachment_bytes=1024
        )
    async with sessions() as session:
        interaction = await session.get(Interaction, outcome.interaction_id)
    assert interaction is not None
    [entry] = interaction.attachments
    assert entry["too_large"] is True
    assert entry["key"] is None
    assert entry["size"] > 1024
    assert store.blobs == {}


@pytest.mark.both_databases
async def test_the_same_message_twice_is_one_interaction(sessions: SessionFactory) -> None:
    account = await create_email_account(sessions)
    raw = message(message_id=None)
    outcomes = []
    for uid in (1, 2):
        async with sessions() as session, session.begin():
            outcomes.append(
                await import_message(
                    session, account, reference_of(1, uid), raw, MemoryStore(), POLICY
                )
            )
    assert [o.status for o in outcomes] == [ImportStatus.INGESTED, ImportStatus.DUPLICATE]
    assert outcomes[0].interaction_id == outcomes[1].interaction_id
    async with sessions() as session:
        external_ids = list(await session.scalars(select(Interaction.external_id)))
    assert external_ids == [external_id_of(parse_message(raw))]


async def test_a_message_without_sender_is_quarantined_once_with_the_reason(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    raw = message(sender="")
    for _ in range(2):
        async with sessions() as session, session.begin():
            outcome = await import_message(
                session, account, reference_of(5, 9), raw, MemoryStore(), POLICY
            )
        assert outcome.status is ImportStatus.QUARANTINED
        assert outcome.reason is not None
        assert "no sender address" in outcome.reason
    async with sessions() as session:
        rows = list(await session.scalars(select(QuarantinedMessage)))
    assert [(r.channel, r.account_id, r.reference, r.raw, r.status) for r in rows] == [
        ("email", account.id, "5:9", raw, QuarantineStatus.QUARANTINED)
    ]
    assert await count(sessions, Interaction) == 0


async def test_a_message_ingest_refuses_is_quarantined_and_nothing_else_is_stored(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    # An address longer than any mail system allows (320 characters).
    raw = message(sender=f"{'a' * 320}@customer.test")
    async with sessions() as session, session.begin():
        outcome = await import_message(
            session, account, reference_of(1, 1), raw, MemoryStore(), POLICY
        )
    assert outcome.status is ImportStatus.QUARANTINED
    assert outcome.reason == "ingest refused the message: email: not a valid email address"
    assert await count(sessions, Interaction) == 0
    assert await count(sessions, QuarantinedMessage) == 1


@pytest.mark.both_databases
async def test_the_same_bytes_held_under_a_new_uidvalidity_stay_one_row(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    raw = message(sender="")
    for uidvalidity, uid in ((1, 3), (2, 1)):
        async with sessions() as session, session.begin():
            await import_message(
                session, account, reference_of(uidvalidity, uid), raw, MemoryStore(), POLICY
            )
    assert await count(sessions, QuarantinedMessage) == 1


async def test_a_held_message_that_goes_through_is_marked_ingested(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    raw = message()
    async with sessions() as session, session.begin():
        # Held by an earlier version that could not read it, say.
        session.add(
            QuarantinedMessage(
                channel="email", account_id=account.id, reference="1:4", raw=raw, reason="old"
            )
        )
    async with sessions() as session, session.begin():
        outcome = await import_message(
            session, account, reference_of(1, 4), raw, MemoryStore(), POLICY
        )
    assert outcome.status is ImportStatus.INGESTED
    async with sessions() as session:
        row = await session.scalar(select(QuarantinedMessage))
    assert row is not None
    assert row.status == QuarantineStatus.INGESTED
    assert row.interaction_id == outcome.interaction_id


async def sent_reply(sessions: SessionFactory, account: AccountView) -> tuple[int, str]:
    """A customer wrote; an operator answered; the answer went out with our Message-ID."""
    async with sessions() as session, session.begin():
        first = await import_message(
            session, account, reference_of(1, 1), message(), MemoryStore(), POLICY
        )
        assert first.conversation_id is not None
        _interaction, item = await reply(session, CLI, first.conversation_id, text="On its way.")
        message_id = make_message_id(item.id, "omnicrm.test")
        item.status = OutboxStatus.SENT
        item.provider_id = message_id
    return item.id, message_id


def bounce_of(message_id: str) -> bytes:
    report = fixture("dsn_failed.eml")
    return report.replace(b"<omnicrm.12.5a5b5c5d5e5f6061@omnicrm.test>", message_id.encode())


async def test_a_bounce_of_our_message_fails_its_outbox_item_with_the_reason(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    outbox_id, message_id = await sent_reply(sessions, account)
    async with sessions() as session, session.begin():
        outcome = await import_message(
            session, account, reference_of(1, 2), bounce_of(message_id), MemoryStore(), POLICY
        )
    assert outcome.status is ImportStatus.INGESTED
    assert outcome.bounced_outbox_id == outbox_id
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
        bounce = await session.get(Interaction, outcome.interaction_id)
    assert item is not None
    assert item.status == OutboxStatus.FAILED
    assert item.last_error is not None
    assert "550 5.1.1" in item.last_error
    assert "User unknown" in item.last_error
    # The report itself is recorded too.
    assert bounce is not None
    assert bounce.meta["bounce"]["outbox_id"] == outbox_id


async def test_a_bounce_naming_our_item_with_another_message_id_changes_nothing(
    sessions: SessionFactory,
) -> None:
    account = await create_email_account(sessions)
    outbox_id, _message_id = await sent_reply(sessions, account)
    forged = make_message_id(outbox_id, "omnicrm.test")  # right item, wrong random part
    async with sessions() as session, session.begin():
        outcome = await import_message(
            session, account, reference_of(1, 2), bounce_of(forged), MemoryStore(), POLICY
        )
    assert outcome.bounced_outbox_id is None
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    assert item.status == OutboxStatus.SENT

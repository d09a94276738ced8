"""Ingest: idempotency, identity resolution, threading, events after commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DataError

from core.db import SessionFactory
from core.errors import InvalidInput
from core.events import EventBus
from core.html import sanitize_html
from core.identity import Address
from core.ingest import InboundEvent, IngestPolicy, IngestResult, ingest
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    IdentityKind,
    Interaction,
    OutboxStatus,
    utcnow,
)
from core.outbox import enqueue

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE


def message(external_id: str, *addresses: Address, **fields: object) -> InboundEvent:
    return InboundEvent(
        channel=str(fields.pop("channel", "sms")),
        external_id=external_id,
        addresses=addresses,
        text=str(fields.pop("text", f"message {external_id}")),
        **fields,  # type: ignore[arg-type]
    )


async def store(sessions: SessionFactory, event: InboundEvent, **policy: object) -> IngestResult:
    async with sessions() as session, session.begin():
        return await ingest(session, event, IngestPolicy(**policy))  # type: ignore[arg-type]


async def count(sessions: SessionFactory, model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_new_address_creates_a_contact_with_normalized_identities(
    sessions: SessionFactory,
) -> None:
    result = await store(
        sessions,
        message(
            "m1",
            Address(EMAIL, "  Anna.Schmidt@Example.COM "),
            Address(PHONE, "030 1234567"),
            display_name="Anna Schmidt",
        ),
        default_region="DE",
    )
    assert result.created
    async with sessions() as session:
        identities = {
            (row.kind, row.address)
            for row in await session.scalars(
                select(Identity).where(Identity.contact_id == result.contact_id)
            )
        }
        contact = await session.get(Contact, result.contact_id)
    assert identities == {("email", "anna.schmidt@example.com"), ("phone", "+49301234567")}
    assert contact is not None
    assert contact.display_name == "Anna Schmidt"


async def test_same_person_on_another_channel_is_one_contact_with_one_history(
    sessions: SessionFactory,
) -> None:
    first = await store(
        sessions, message("form-1", Address(EMAIL, "bo@example.com"), channel="webform")
    )
    second = await store(
        sessions,
        message(
            "SM1",
            Address(PHONE, "+1 415 555 0100"),
            Address(EMAIL, "BO@example.com"),
            channel="sms",
        ),
    )
    third = await store(sessions, message("SM2", Address(PHONE, "(415) 555-0100"), channel="sms"))
    assert first.contact_id == second.contact_id == third.contact_id
    assert await count(sessions, Contact) == 1
    # One conversation per channel, one history across them.
    assert first.conversation_id != second.conversation_id
    assert second.conversation_id == third.conversation_id


async def test_redelivery_of_the_same_provider_id_is_stored_once(sessions: SessionFactory) -> None:
    event = message("SM42", Address(PHONE, "+14155550100"))
    first = await store(sessions, event)
    again = await store(sessions, event)
    assert first.created
    assert not again.created
    assert again.interaction_id == first.interaction_id
    assert await count(sessions, Interaction) == 1
    # The same id on another channel is another interaction.
    other = await store(sessions, message("SM42", Address(PHONE, "+14155550100"), channel="api"))
    assert other.created
    assert other.interaction_id != first.interaction_id


async def test_a_repeat_in_the_callers_transaction_keeps_what_came_before_it(
    sessions: SessionFactory,
) -> None:
    first = message("batch-1", Address(EMAIL, "batch@example.com"), channel="email")
    second = message("batch-2", Address(EMAIL, "new@example.com"), channel="email")
    async with sessions() as session, session.begin():
        stored = await ingest(session, first)
        # A repeat undoes only what it did itself (none of it is kept), not the caller's work.
        again = await ingest(session, first)
        after = await ingest(session, second)
    assert (stored.created, again.created, after.created) == (True, False, True)
    assert again.interaction_id == stored.interaction_id
    assert await count(sessions, Interaction) == 2
    assert await count(sessions, Contact) == 2


@pytest.mark.postgresql_only  # SQLite stores a text of any length in a 500-character column
async def test_a_value_the_database_refuses_leaves_the_callers_transaction_usable(
    sessions: SessionFactory,
) -> None:
    too_long = message("long-1", Address(EMAIL, "long@example.com"), thread_key="k" * 501)
    fine = message("fine-1", Address(EMAIL, "fine@example.com"))
    async with sessions() as session, session.begin():
        with pytest.raises(DataError, match="value too long"):
            await ingest(session, too_long)
        # Nothing of the refused message was kept, and the transaction goes on (the email
        # poller quarantines such a message in it).
        stored = await ingest(session, fine)
    assert stored.created
    assert await count(sessions, Interaction) == 1
    assert await count(sessions, Contact) == 1


async def test_a_returning_customer_keeps_what_their_record_holds_and_gains_what_is_new(
    sessions: SessionFactory,
) -> None:
    who = Address(EMAIL, "back@example.com")
    await store(
        sessions,
        message(
            "f-1",
            who,
            channel="webform",
            display_name="Nino",
            contact_fields={"company": "Kartuli Ltd", "size": "10"},
            marketing={"utm_campaign": "spring"},
            text="",
        ),
    )
    again = await store(
        sessions,
        message(
            "f-2",
            who,
            channel="webform",
            display_name="Someone Else",
            contact_fields={"size": "50", "city": "Tbilisi"},
            marketing={"utm_campaign": "autumn"},
            language="ka",
            text="",
        ),
    )
    async with sessions() as session:
        contact = await session.get(Contact, again.contact_id)
    assert contact is not None
    assert contact.display_name == "Nino"
    assert contact.custom_fields == {"company": "Kartuli Ltd", "size": "50", "city": "Tbilisi"}
    assert contact.marketing_source == {"utm_campaign": "spring"}  # the first touch stays
    assert contact.language == "ka"  # what the browser said fills a contact without one


async def test_simultaneous_identical_deliveries_give_one_interaction(
    sessions: SessionFactory,
) -> None:
    event = message("race-1", Address(EMAIL, "race@example.com"), channel="webform")
    results = await asyncio.gather(*(store(sessions, event) for _ in range(8)))
    assert len({r.interaction_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await count(sessions, Interaction) == 1
    assert await count(sessions, Contact) == 1
    assert await count(sessions, Conversation) == 1


async def test_simultaneous_first_messages_of_a_new_person_make_one_contact(
    sessions: SessionFactory,
) -> None:
    events = [message(f"burst-{n}", Address(EMAIL, "burst@example.com")) for n in range(6)]
    results = await asyncio.gather(*(store(sessions, event) for event in events))
    assert all(r.created for r in results)
    assert len({r.contact_id for r in results}) == 1
    assert await count(sessions, Contact) == 1
    assert await count(sessions, Identity) == 1
    assert await count(sessions, Interaction) == 6


async def test_invalid_phone_is_rejected_and_nothing_is_stored(sessions: SessionFactory) -> None:
    with pytest.raises(InvalidInput) as raised:
        await store(sessions, message("bad", Address(PHONE, "call me maybe")))
    assert raised.value.fields == {"phone": "not a phone number"}
    assert await count(sessions, Interaction) == 0
    assert await count(sessions, Contact) == 0


async def test_html_is_sanitized_and_text_derived(sessions: SessionFactory) -> None:
    result = await store(
        sessions,
        message(
            "h1",
            Address(EMAIL, "h@example.com"),
            channel="email",
            text="",
            html='<p onclick="x()">Hello <b>there</b></p><script>alert(1)</script>'
            '<a href="javascript:alert(2)">link</a>',
        ),
    )
    async with sessions() as session:
        stored = await session.get(Interaction, result.interaction_id)
    assert stored is not None
    assert stored.html is not None
    assert "script" not in stored.html
    assert "onclick" not in stored.html
    assert "javascript:" not in stored.html
    assert "<b>there</b>" in stored.html
    assert stored.text.startswith("Hello there")


async def resolve(sessions: SessionFactory, conversation_id: int, ago: timedelta) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(status=ConversationStatus.RESOLVED, resolved_at=utcnow() - ago)
        )


async def test_threading_joins_open_and_reopens_recent_resolved(sessions: SessionFactory) -> None:
    who = Address(PHONE, "+14155550199")
    first = await store(sessions, message("t1", who))
    joined = await store(sessions, message("t2", who))
    assert joined.conversation_id == first.conversation_id

    await resolve(sessions, first.conversation_id, timedelta(days=2))
    reopened = await store(sessions, message("t3", who))
    assert reopened.conversation_id == first.conversation_id
    async with sessions() as session:
        conversation = await session.get(Conversation, first.conversation_id)
    assert conversation is not None
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.resolved_at is None

    await resolve(sessions, first.conversation_id, timedelta(days=8))
    fresh = await store(sessions, message("t4", who))
    assert fresh.conversation_id != first.conversation_id


async def test_reopen_window_is_configurable(sessions: SessionFactory) -> None:
    who = Address(PHONE, "+14155550198")
    first = await store(sessions, message("w1", who))
    await resolve(sessions, first.conversation_id, timedelta(hours=3))
    later = await store(sessions, message("w2", who), reopen_window=timedelta(hours=1))
    assert later.conversation_id != first.conversation_id


async def test_auto_reply_never_reopens_a_resolved_conversation(sessions: SessionFactory) -> None:
    who = Address(EMAIL, "robot@example.com")
    first = await store(sessions, message("a1", who, channel="email"))
    await resolve(sessions, first.conversation_id, timedelta(hours=1))
    auto = await store(sessions, message("a2", who, channel="email", may_reopen=False))
    assert auto.conversation_id == first.conversation_id
    async with sessions() as session:
        conversation = await session.get(Conversation, first.conversation_id)
    assert conversation is not None
    assert conversation.status == ConversationStatus.RESOLVED


async def test_thread_key_and_reply_references_pick_the_conversation(
    sessions: SessionFactory,
) -> None:
    who = Address(EMAIL, "threads@example.com")
    invoice = await store(sessions, message("<a@x>", who, channel="email", thread_key="invoice 42"))
    delivery = await store(
        sessions, message("<b@x>", who, channel="email", thread_key="delivery date")
    )
    assert invoice.conversation_id != delivery.conversation_id
    # A reply whose subject changed still follows its references.
    reply = await store(
        sessions,
        message(
            "<c@x>",
            who,
            channel="email",
            thread_key="re: whatever",
            reply_to_external_ids=["<a@x>"],
        ),
    )
    assert reply.conversation_id == invoice.conversation_id


async def test_events_are_published_only_after_commit(
    sessions: SessionFactory, bus: EventBus
) -> None:
    async with bus.subscribe() as queue:
        async with sessions() as session, session.begin():
            await ingest(session, message("rb", Address(EMAIL, "rb@example.com")))
            assert queue.empty()
            await session.rollback()
        assert queue.empty()
        result = await store(sessions, message("ok", Address(EMAIL, "rb@example.com")))
        types = [queue.get_nowait().type for _ in range(queue.qsize())]
    assert types == ["contact.created", "conversation.created", "interaction.created"]
    assert await count(sessions, Interaction) == 1
    assert result.created


async def test_a_duplicate_publishes_nothing(sessions: SessionFactory, bus: EventBus) -> None:
    event = message("dup", Address(EMAIL, "dup@example.com"))
    await store(sessions, event)
    async with bus.subscribe() as queue:
        await store(sessions, event)
        assert queue.empty()


async def test_a_reply_to_our_outbound_message_joins_its_conversation_across_channels(
    sessions: SessionFactory,
) -> None:
    who = Address(EMAIL, "form-then-mail@example.com")
    form = await store(sessions, message("f-1", who, channel="webform"))
    async with sessions() as session, session.begin():
        item = await enqueue(
            session,
            channel="email",
            recipient="form-then-mail@example.com",
            payload={"text": "Thanks, here is the answer"},
            conversation_id=form.conversation_id,
        )
        item.status = OutboxStatus.SENT
        item.provider_id = "<omnicrm.1.abc@support.example>"
    answer = await store(
        sessions,
        message(
            "<customer-answer@mail.example>",
            who,
            channel="email",
            thread_key="re: your request",
            reply_to_external_ids=["<omnicrm.1.abc@support.example>"],
        ),
    )
    assert answer.conversation_id == form.conversation_id
    # Someone else quoting our Message-ID does not get into this customer's conversation.
    stranger = await store(
        sessions,
        message(
            "<stranger@mail.example>",
            Address(EMAIL, "stranger@example.com"),
            channel="email",
            reply_to_external_ids=["<omnicrm.1.abc@support.example>"],
        ),
    )
    assert stranger.conversation_id != form.conversation_id


async def test_remote_content_in_customer_html_is_held_back_and_sanitizing_is_stable(
    sessions: SessionFactory,
) -> None:
    result = await store(
        sessions,
        message(
            "pixel",
            Address(EMAIL, "tracker@example.com"),
            channel="email",
            html='<p>Hi</p><img src="https://tracker.example/p.gif" alt="x">'
            '<img src="cid:logo@x" alt="logo">',
        ),
    )
    async with sessions() as session:
        stored = await session.get(Interaction, result.interaction_id)
    assert stored is not None
    assert stored.html is not None
    assert '<img src="https://tracker.example' not in stored.html
    assert 'data-omnicrm-src="https://tracker.example/p.gif"' in stored.html
    assert 'src="cid:logo@x"' in stored.html
    assert sanitize_html(stored.html) == stored.html


async def test_a_released_savepoint_does_not_publish_before_the_commit(
    sessions: SessionFactory, bus: EventBus
) -> None:
    async with bus.subscribe() as queue:
        async with sessions() as session, session.begin():
            await ingest(session, message("sp-1", Address(EMAIL, "sp@example.com")))
            # A second ingest in the same transaction releases a savepoint of its own.
            await ingest(session, message("sp-2", Address(EMAIL, "sp@example.com")))
            assert queue.empty()
            await session.rollback()
        assert queue.empty()
    assert await count(sessions, Interaction) == 0

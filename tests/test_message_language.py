"""The customer's language, per message (core/ingest.py): detected in what they write, kept on
the message and on their contact; short or machine-made texts, calls and duplicates change
nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, IngestResult, ingest, record_edit
from core.models import Contact, IdentityKind, Interaction, InteractionKind, utcnow

pytestmark = pytest.mark.both_databases  # tests/conftest.py

PHONE = Address(IdentityKind.PHONE, "+14155550123")

ENGLISH = "Hello, where is my order? It should have arrived last week."
RUSSIAN = "Здравствуйте, где мой заказ? Он должен был прийти на прошлой неделе."
GERMAN = "Hallo, wo ist meine Bestellung? Sie sollte letzte Woche ankommen."
GEORGIAN = "გამარჯობა, სად არის ჩემი შეკვეთა? გასულ კვირას უნდა მოსულიყო."


async def write(
    sessions: SessionFactory, external_id: str, text: str, **fields: Any
) -> IngestResult:
    async with sessions() as session, session.begin():
        return await ingest(
            session,
            InboundEvent(
                channel=str(fields.pop("channel", "sms")),
                external_id=external_id,
                addresses=[fields.pop("address", PHONE)],
                text=text,
                **fields,
            ),
        )


async def language_of(sessions: SessionFactory, contact_id: int) -> str | None:
    async with sessions() as session:
        return await session.scalar(select(Contact.language).where(Contact.id == contact_id))


async def message_language(sessions: SessionFactory, interaction_id: int) -> str | None:
    async with sessions() as session:
        meta = await session.scalar(
            select(Interaction.meta).where(Interaction.id == interaction_id)
        )
    assert meta is not None
    found = meta.get("language")
    return found if isinstance(found, str) else None


async def test_each_message_sets_the_language_the_customer_wrote_in(
    sessions: SessionFactory,
) -> None:
    for n, (text, code) in enumerate(
        ((ENGLISH, "en"), (RUSSIAN, "ru"), (GERMAN, "de"), (GEORGIAN, "ka")), start=1
    ):
        stored = await write(sessions, f"m{n}", text)
        assert await message_language(sessions, stored.interaction_id) == code
        assert await language_of(sessions, stored.contact_id) == code, text


async def test_a_short_reply_keeps_the_language_known_before(sessions: SessionFactory) -> None:
    first = await write(sessions, "m1", GERMAN)
    ok = await write(sessions, "m2", "ok")
    thanks = await write(sessions, "m3", "Thanks!")
    assert await language_of(sessions, first.contact_id) == "de"
    assert await message_language(sessions, ok.interaction_id) is None
    assert await message_language(sessions, thanks.interaction_id) is None


async def test_a_duplicate_delivery_changes_nothing(sessions: SessionFactory) -> None:
    english = await write(sessions, "m1", ENGLISH)
    await write(sessions, "m2", RUSSIAN)
    again = await write(sessions, "m1", ENGLISH)
    assert not again.created
    assert again.interaction_id == english.interaction_id
    assert await language_of(sessions, english.contact_id) == "ru"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 2


async def test_the_channels_language_fills_an_empty_contact_and_what_they_write_wins(
    sessions: SessionFactory,
) -> None:
    """A browser's or app's language (webchat, forms, Telegram) is a hint for a contact with
    none; an operator's explicit choice stands until the customer writes in another one."""
    hint = await write(sessions, "m1", "Hej", language="sv-SE")
    assert await language_of(sessions, hint.contact_id) == "sv-SE"
    await write(sessions, "m2", GERMAN, language="sv-SE")
    assert await language_of(sessions, hint.contact_id) == "de"
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == hint.contact_id).values(language="fr")
        )
    await write(sessions, "m3", "ok merci")
    assert await language_of(sessions, hint.contact_id) == "fr"
    await write(sessions, "m4", ENGLISH)
    assert await language_of(sessions, hint.contact_id) == "en"


async def test_machine_made_messages_and_calls_detect_nothing(sessions: SessionFactory) -> None:
    email = Address(IdentityKind.EMAIL, "anna@example.com")
    first = await write(sessions, "<1@x>", ENGLISH, channel="email", address=email)
    away = await write(
        sessions,
        "<2@x>",
        "Ich bin bis Montag nicht im Büro und lese meine E-Mails danach.",
        channel="email",
        address=email,
        may_reopen=False,
    )
    call = await write(
        sessions, "call-1", RUSSIAN, channel="voice", kind=InteractionKind.CALL, address=PHONE
    )
    assert await language_of(sessions, first.contact_id) == "en"
    assert await message_language(sessions, away.interaction_id) is None
    assert await message_language(sessions, call.interaction_id) is None
    async with sessions() as session:
        meta = await session.scalar(
            select(Interaction.meta).where(Interaction.id == away.interaction_id)
        )
    assert meta is not None
    assert meta["machine_made"] is True


async def test_an_old_message_stored_late_does_not_outvote_a_newer_one(
    sessions: SessionFactory,
) -> None:
    now = utcnow()
    newer = await write(sessions, "m2", RUSSIAN, occurred_at=now)
    older = await write(sessions, "m1", ENGLISH, occurred_at=now - timedelta(days=3))
    assert await message_language(sessions, older.interaction_id) == "en"
    assert await language_of(sessions, newer.contact_id) == "ru"


async def test_an_edited_message_is_detected_anew(sessions: SessionFactory) -> None:
    stored = await write(sessions, "m1", ENGLISH, channel="telegram")
    async with sessions() as session, session.begin():
        await record_edit(session, "telegram", "m1", GERMAN, utcnow())
    assert await message_language(sessions, stored.interaction_id) == "de"
    async with sessions() as session, session.begin():
        await record_edit(session, "telegram", "m1", "ok", utcnow())
    assert await message_language(sessions, stored.interaction_id) is None

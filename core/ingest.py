"""Ingest: the only writer of inbound interactions.

Every channel hands its input over as an `InboundEvent`. Ingest is idempotent on
(channel, external_id) through a unique constraint, resolves the contact from the event's
addresses, threads the interaction into a conversation and records the events to publish
after the caller commits. A customer editing a message they sent (Telegram) goes through
`record_edit`: the stored interaction gets the new text and keeps the earlier ones.

Language, per message: what a customer writes (a message or a form's text) is run through
`core.language.detect`; a confident answer is kept in the interaction's `meta["language"]`
and becomes the contact's `language`, so the latest confident detection wins (by when the
messages were written: an old email imported late does not outvote a newer one). A text too
short or too unclear to tell ("ok") leaves the contact as it was. The language a channel
reports (`InboundEvent.language`: the visitor's browser, a form's `?lang=`, Telegram's app
language) only fills a contact that has none, before detection. An operator's or the API's
explicit choice (`PATCH /api/v1/contacts/{id}`) stands until the customer next writes
something detected in another language: what they write is the better evidence of the
language they read. Machine-made messages (`may_reopen=False`: auto-replies, bounces) are not
the customer writing: they are marked `meta["machine_made"]` and detect nothing. A duplicate
delivery is answered from the stored row, and what it did meanwhile is rolled back with its
savepoint, so it changes nothing.

Round trips: on PostgreSQL the store is one statement, the function omnicrm_ingest
(core/ingest_postgresql.py, migration 0020), plus the lead's INSERT when a form asks for one;
on SQLite the same steps run through the ORM in a savepoint (`_store`): the identities looked
up, the contact, identity, conversation and interaction inserted with their final fields. The
ingest tests run on both databases, which holds the two to the same rules: a change here is
a change to the function too (a new migration replacing it). The events go with one
notification at commit (core/events.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from core.event_types import (
    CONTACT_CREATED,
    CONVERSATION_BY_STATE,
    INTERACTION_CREATED,
    INTERACTION_EDITED,
    LEAD_CREATED,
)
from core.events import Event, emit
from core.html import html_to_text, sanitize_html
from core.identity import Address, normalize, resolve_contact
from core.ingest_postgresql import Stored, in_one_statement
from core.language import detect
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Lead,
    LeadStageChange,
    OutboxItem,
    utcnow,
)
from core.pipelines import default_pipeline_query, first_stage_query
from core.routing_log import REOPENED_NOTE
from core.sql import insert_ignoring_conflicts
from core.validation import check_storable
from core.visibility import audience_labels, conversation_labels, placement_of

MAX_EXTERNAL_ID = 500
MAX_TEXT = 1_000_000
# Earlier texts an edited message keeps (the oldest are dropped beyond this).
MAX_EDITS = 20


@dataclass(frozen=True, kw_only=True)
class LeadRequest:
    """Ask ingest to open a sales lead for this interaction."""

    source: str
    marketing: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class InboundEvent:
    """What a channel adapter hands to ingest: one customer interaction."""

    channel: str
    external_id: str
    addresses: Sequence[Address]
    kind: InteractionKind = InteractionKind.MESSAGE
    display_name: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: Sequence[dict[str, Any]] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    # Threading hooks: a channel-specific thread identity (e.g. a normalized email subject)
    # and the external ids this message answers (e.g. In-Reply-To and References).
    thread_key: str | None = None
    reply_to_external_ids: Sequence[str] = ()
    queue_id: int | None = None
    language: str | None = None
    # Merged into the contact's custom fields (e.g. extra web-form fields).
    contact_fields: dict[str, Any] = field(default_factory=dict)
    # First touch: kept on the contact only if it has none yet.
    marketing: dict[str, str] = field(default_factory=dict)
    lead: LeadRequest | None = None
    # Auto-replies and bounces are recorded but never reopen a resolved conversation.
    may_reopen: bool = True
    # Small labels for the interaction.created event (ids, never content): the website chat
    # names its visitor, so their open widget learns of their new conversation.
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestPolicy:
    default_region: str | None = "US"
    reopen_window: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class IngestResult:
    interaction_id: int
    conversation_id: int
    contact_id: int
    created: bool
    lead_id: int | None = None


async def ingest(
    session: AsyncSession, event: InboundEvent, policy: IngestPolicy | None = None
) -> IngestResult:
    """Store `event` once. The caller owns the transaction and commits it.

    A repeated (channel, external_id) changes nothing and returns the stored interaction
    with created=False, also when the twin is being committed concurrently.
    """
    policy = policy or IngestPolicy()
    _validate(event)
    addresses = [normalize(address, policy.default_region) for address in event.addresses]
    written = _written(event)
    if session.get_bind().dialect.name == "postgresql":
        stored = await in_one_statement(session, _arguments(event, addresses, written, policy))
    else:
        stored = await _store_in_savepoint(session, event, addresses, written, policy)
    if not stored.created:
        return IngestResult(
            stored.interaction_id, stored.conversation_id, stored.contact_id, created=False
        )
    lead_id = await _open_lead(session, event.lead, stored) if event.lead is not None else None
    for published in _events(event, stored, lead_id):
        await emit(session, published)
    return IngestResult(
        stored.interaction_id, stored.conversation_id, stored.contact_id, True, lead_id
    )


def _validate(event: InboundEvent) -> None:
    if not event.external_id or len(event.external_id) > MAX_EXTERNAL_ID:
        raise InvalidInput("external_id must be 1 to 500 characters", field="external_id")
    if not event.addresses:
        raise InvalidInput("at least one customer address is needed", field="addresses")
    if len(event.text) > MAX_TEXT or len(event.html or "") > MAX_TEXT:
        raise InvalidInput("the message is too long", field="text")
    for name in ("external_id", "display_name", "subject", "text", "html", "thread_key"):
        check_storable(getattr(event, name), name)
    check_storable(event.meta, "meta")
    check_storable(event.contact_fields, "contact_fields")
    check_storable(list(event.attachments), "attachments")


@dataclass(frozen=True)
class _Written:
    """What is stored of the message itself, worked out before the database is asked."""

    occurred_at: datetime
    # Whether the message brought its own time (an email's Date) or was written now (a form).
    own_time: bool
    html: str | None
    text: str
    language: str | None


def _written(event: InboundEvent) -> _Written:
    html = sanitize_html(event.html) if event.html else None
    text = event.text or (html_to_text(html) if html else "")
    return _Written(
        occurred_at=event.occurred_at or utcnow(),
        own_time=event.occurred_at is not None,
        html=html,
        text=text,
        language=_language_of(event, text),
    )


def _arguments(
    event: InboundEvent, addresses: list[Address], written: _Written, policy: IngestPolicy
) -> dict[str, Any]:
    """omnicrm_ingest's argument: what `_store` is given, as JSON (core/ingest_postgresql)."""
    new_contact = _new_contact(event, written.language)
    return {
        "now": utcnow().isoformat(),
        "channel": event.channel,
        "external_id": event.external_id,
        "addresses": [[str(address.kind), address.value] for address in addresses],
        "display_name": event.display_name[:200],
        "new_contact_language": new_contact.get("language"),
        "new_contact_marketing": dict(event.marketing),
        "contact_fields": dict(event.contact_fields),
        "channel_language": (event.language or "")[:16],
        "detected_language": written.language,
        "occurred_at": written.occurred_at.isoformat(),
        "own_time": written.own_time,
        "reply_to": list(event.reply_to_external_ids),
        "thread_key": event.thread_key,
        "queue_id": event.queue_id,
        "may_reopen": event.may_reopen,
        "reopen_seconds": policy.reopen_window.total_seconds(),
        "reopened_note": REOPENED_NOTE,
        "new_subject": _subject_of(event.subject, event.text),
        "kind": str(event.kind),
        "subject": event.subject[:500],
        "text": written.text,
        "html": written.html,
        "attachments": list(event.attachments),
        "meta": _meta_of(event, written.language),
    }


async def _store_in_savepoint(
    session: AsyncSession,
    event: InboundEvent,
    addresses: list[Address],
    written: _Written,
    policy: IngestPolicy,
) -> Stored:
    """What omnicrm_ingest does on PostgreSQL, through the ORM (SQLite).

    Everything happens in a savepoint, so a repeat (the interaction's INSERT finds the stored
    one, also one being committed concurrently) undoes the new contact and conversation too,
    leaving the caller's transaction as it was. No look-up first: a new message, the common
    case, pays no round trip for the rare repeat.
    """
    savepoint = await session.begin_nested()
    try:
        stored = await _store(session, event, addresses, written, policy)
    except BaseException:
        await savepoint.rollback()
        raise
    if stored is not None:
        await savepoint.commit()
        return stored
    await savepoint.rollback()
    row = (
        await session.execute(
            select(Interaction.id, Interaction.conversation_id, Interaction.contact_id).where(
                Interaction.channel == event.channel,
                Interaction.external_id == event.external_id,
            )
        )
    ).first()
    if row is None:  # pragma: no cover - a conflict means the row exists
        raise RuntimeError("interaction conflict without a row")
    return Stored.repeat(row.id, row.conversation_id, row.contact_id)


async def _store(
    session: AsyncSession,
    event: InboundEvent,
    addresses: list[Address],
    written: _Written,
    policy: IngestPolicy,
) -> Stored | None:
    occurred_at = written.occurred_at
    language = written.language
    contact, contact_created = await resolve_contact(
        session, addresses, event.display_name, _new_contact(event, language)
    )
    if not contact_created:
        _update_contact(contact, event)
        # A message without a time of its own (a web form) is written now: nothing of the
        # contact's is later, and the look-up is saved.
        if language is not None and (
            not written.own_time or not await _wrote_later(session, contact.id, occurred_at)
        ):
            contact.language = language
    conversation, conversation_state = await _thread(
        session, contact, contact_created, event, policy, occurred_at
    )
    if conversation_state != "created" and (
        event.may_reopen or conversation.status != ConversationStatus.RESOLVED
    ):
        conversation.last_inbound_at = occurred_at
    interaction_id = await session.scalar(
        insert_ignoring_conflicts(session, Interaction, ["channel", "external_id"])
        .values(
            conversation_id=conversation.id,
            contact_id=contact.id,
            kind=event.kind,
            direction=Direction.IN,
            channel=event.channel,
            external_id=event.external_id,
            subject=event.subject[:500],
            text=written.text,
            html=written.html,
            attachments=list(event.attachments),
            meta=_meta_of(event, language),
            occurred_at=occurred_at,
        )
        .returning(Interaction.id)
    )
    if interaction_id is None:
        return None
    return Stored(
        interaction_id=interaction_id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        created=True,
        contact_created=contact_created,
        conversation_state=conversation_state,
        placement=placement_of(conversation),
    )


async def _open_lead(session: AsyncSession, request: LeadRequest, stored: Stored) -> int:
    """A lead for the new interaction, in the default pipeline's first open stage (both read
    by the INSERT itself), with its first stage change."""
    now = utcnow()
    pipeline_id = default_pipeline_query().scalar_subquery()
    inserted = await session.execute(
        insert(Lead)
        .values(
            contact_id=stored.contact_id,
            conversation_id=stored.conversation_id,
            interaction_id=stored.interaction_id,
            pipeline_id=pipeline_id,
            stage=first_stage_query(pipeline_id).scalar_subquery(),
            title="",
            source=request.source,
            marketing=request.marketing,
            stage_entered_at=now,
            created_at=now,
            updated_at=now,
        )
        .returning(Lead.id, Lead.pipeline_id, Lead.stage)
    )
    lead_id, lead_pipeline, lead_stage = inserted.one()
    session.add(
        LeadStageChange(
            lead_id=lead_id,
            pipeline_id=lead_pipeline,
            from_stage=None,
            to_stage=lead_stage,
            changed_at=now,
        )
    )
    return int(lead_id)


def _events(event: InboundEvent, stored: Stored, lead_id: int | None) -> list[Event]:
    """What a new interaction tells the rest (published after the caller commits)."""
    ids = {"contact": stored.contact_id, "conversation": stored.conversation_id}
    # Who may hear of it (core.visibility), as the conversation sits now.
    labels = {"channel": event.channel, **audience_labels([stored.placement])}
    events = []
    if stored.contact_created:
        events.append(Event(CONTACT_CREATED, {"contact": stored.contact_id}))
    if stored.conversation_state:
        events.append(Event(CONVERSATION_BY_STATE[stored.conversation_state], ids, labels))
    created = {**event.labels, **labels, "direction": "in"}  # replies and notes too
    events.append(
        Event(INTERACTION_CREATED, {**ids, "interaction": stored.interaction_id}, created)
    )
    if lead_id is not None:
        events.append(Event(LEAD_CREATED, {**ids, "lead": lead_id}, labels))
    return events


# What a customer writes themselves: a message's or a form's text (a call's is not theirs).
_WRITTEN = frozenset({InteractionKind.MESSAGE, InteractionKind.FORM})


def _language_of(event: InboundEvent, text: str) -> str | None:
    """The language detected in what the customer wrote, if confident (see the module's
    docstring); None for machine-made messages, calls and events."""
    if event.kind not in _WRITTEN or not event.may_reopen or not text.strip():
        return None
    found = detect(text)
    return found[:16] if found else None


def _meta_of(event: InboundEvent, language: str | None) -> dict[str, Any]:
    meta = dict(event.meta)
    if language is not None:
        meta["language"] = language
    if not event.may_reopen:
        meta["machine_made"] = True
    return meta


async def _wrote_later(session: AsyncSession, contact_id: int, occurred_at: datetime) -> bool:
    """Whether a message of the contact written after `occurred_at` had its language detected
    (a message stored late, e.g. an old email imported now, does not outvote it)."""
    later = await session.scalar(
        select(Interaction.id)
        .where(
            Interaction.contact_id == contact_id,
            Interaction.direction == Direction.IN,
            Interaction.occurred_at > occurred_at,
            Interaction.meta["language"].as_string().is_not(None),
        )
        .limit(1)
    )
    return later is not None


def _new_contact(event: InboundEvent, language: str | None) -> dict[str, Any]:
    """A new contact's fields from its first interaction, written by the INSERT itself: the
    same that `_update_contact` and detection would give it afterwards."""
    fields: dict[str, Any] = {"custom_fields": dict(event.contact_fields)}
    if language is not None or event.language:
        fields["language"] = language or (event.language or "")[:16]
    if event.marketing:
        fields["marketing_source"] = dict(event.marketing)
    return fields


def _update_contact(contact: Contact, event: InboundEvent) -> None:
    if event.language and not contact.language:
        contact.language = event.language[:16]
    if event.contact_fields:
        contact.custom_fields = {**contact.custom_fields, **event.contact_fields}
    if event.marketing and not contact.marketing_source:
        contact.marketing_source = dict(event.marketing)


async def _thread(
    session: AsyncSession,
    contact: Contact,
    contact_created: bool,
    event: InboundEvent,
    policy: IngestPolicy,
    occurred_at: datetime,
) -> tuple[Conversation, str | None]:
    """The conversation this interaction belongs to, and "created"/"reopened" if it changed
    (a contact created just now has none to look for)."""
    candidate = None
    if event.reply_to_external_ids and not contact_created:
        candidate = await _answered_conversation(session, contact, event)
    if candidate is None and not contact_created:
        query = select(Conversation).where(
            Conversation.contact_id == contact.id, Conversation.channel == event.channel
        )
        if event.thread_key is not None:
            query = query.where(Conversation.thread_key == event.thread_key)
        candidate = await session.scalar(query.order_by(Conversation.id.desc()).limit(1))
    if candidate is not None:
        if candidate.status != ConversationStatus.RESOLVED:
            return candidate, None
        if not event.may_reopen:
            return candidate, None
        resolved_at = candidate.resolved_at or candidate.updated_at
        if utcnow() - resolved_at <= policy.reopen_window:
            candidate.status = ConversationStatus.OPEN
            candidate.resolved_at = None
            candidate.resolution_seconds = None
            candidate.reopened_count += 1
            # Routing looks at it again: it stays with its operator only if they have room.
            candidate.queue_entered_at = None
            candidate.routing_note = REOPENED_NOTE
            return candidate, "reopened"
    conversation = Conversation(
        contact_id=contact.id,
        channel=event.channel,
        thread_key=event.thread_key,
        queue_id=event.queue_id,
        subject=_subject_of(event.subject, event.text),
        status=ConversationStatus.OPEN,
        last_inbound_at=occurred_at,
    )
    session.add(conversation)
    await session.flush()
    return conversation, "created"


def _subject_of(subject: str, text: str) -> str:
    """A new conversation's subject: the message's, else the start of its text."""
    return (subject or text[:80]).strip()[:500]


async def _answered_conversation(
    session: AsyncSession, contact: Contact, event: InboundEvent
) -> Conversation | None:
    """The contact's conversation holding a message this one answers: one of theirs, or one
    we sent (its provider id, e.g. our email's Message-ID, which may answer a web form)."""
    references = list(event.reply_to_external_ids)
    theirs = await session.scalar(
        select(Conversation)
        .join(Interaction, Interaction.conversation_id == Conversation.id)
        .where(
            Interaction.channel == event.channel,
            Interaction.external_id.in_(references),
            Conversation.contact_id == contact.id,
        )
        .order_by(Interaction.id.desc())
        .limit(1)
    )
    if theirs is not None:
        return theirs
    return await session.scalar(
        select(Conversation)
        .join(OutboxItem, OutboxItem.conversation_id == Conversation.id)
        .where(
            OutboxItem.channel == event.channel,
            OutboxItem.provider_id.in_(references),
            Conversation.contact_id == contact.id,
        )
        .order_by(OutboxItem.id.desc())
        .limit(1)
    )


async def record_edit(
    session: AsyncSession, channel: str, external_id: str, text: str, edited_at: datetime
) -> int | None:
    """The customer changed a message they sent: the stored interaction (channel,
    external_id) gets `text`, and its meta["edits"] keeps the earlier texts with when they
    were replaced; its meta["language"] is detected anew. The id of the interaction, or None
    if it was never stored. Repeating an edit changes nothing (the text is already the new
    one). The caller commits."""
    if len(text) > MAX_TEXT:
        raise InvalidInput("the message is too long", field="text")
    check_storable(text, "text")
    interaction = await session.scalar(
        select(Interaction)
        .where(Interaction.channel == channel, Interaction.external_id == external_id)
        .with_for_update()
    )
    if interaction is None:
        return None
    if interaction.text == text:
        return interaction.id
    earlier = {"text": interaction.text, "until": edited_at.isoformat()}
    edits = [*(interaction.meta or {}).get("edits", []), earlier]
    meta = {**(interaction.meta or {}), "edits": edits[-MAX_EDITS:]}
    # The message's language is the new text's (the contact's stays as its messages set it).
    meta.pop("language", None)
    language = detect(text) if interaction.kind in _WRITTEN else None
    if language:
        meta["language"] = language[:16]
    interaction.meta = meta
    conversation = (
        await session.get(Conversation, interaction.conversation_id)
        if interaction.conversation_id is not None
        else None
    )
    if conversation is not None and conversation.subject == _subject_of("", interaction.text):
        conversation.subject = _subject_of("", text)  # it was named after this message
    interaction.text = text
    await session.flush()
    if conversation is not None:
        ids = {
            "conversation": conversation.id,
            "contact": interaction.contact_id,
            "interaction": interaction.id,
        }
        labels = {"channel": channel, **conversation_labels(conversation)}
        await emit(session, Event(INTERACTION_EDITED, ids, labels))
    return interaction.id

"""Inbound email: one raw message becomes an interaction, or a quarantine row.

`to_inbound_event` is the pure mapping from a parsed message to what ingest takes.
`import_message` is the one path every inbound message goes through, from the IMAP poller
and from an admin's retry alike: parse, store the attachments, ingest, record a bounce on
the outbox item it answers; anything ingest refuses is quarantined with the reason instead.
The caller owns the transaction (and commits the poller's cursor in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.message import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    ParsedEmail,
    parse_message,
    parse_outbox_id,
    thread_subject,
)
from core import quarantine
from core.errors import InvalidInput
from core.identity import Address
from core.ingest import MAX_TEXT, InboundEvent, IngestPolicy, ingest
from core.models import IdentityKind, Mailbox, OutboxItem
from core.outbox import record_bounce
from core.storage import AttachmentStore

CHANNEL = "email"
# Conversation.thread_key is a 500-character column.
MAX_THREAD_KEY = 500
# A message can note many problems (one per broken part); the first ones tell the story.
MAX_PROBLEMS = 50


class ImportStatus(StrEnum):
    INGESTED = "ingested"
    # Stored before (the same Message-ID or, without one, the same bytes).
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class ImportOutcome:
    status: ImportStatus
    interaction_id: int | None = None
    conversation_id: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None
    # The outbox item this message reported as undeliverable, if it changed it.
    bounced_outbox_id: int | None = None


def external_id_of(parsed: ParsedEmail) -> str:
    """The Message-ID, or the content hash for a message without a usable one."""
    return parsed.message_id or f"sha256:{parsed.content_hash}"


def to_inbound_event(
    parsed: ParsedEmail,
    mailbox: Mailbox,
    attachments: Sequence[dict[str, Any]] = (),
    *,
    received_at: datetime | None = None,
) -> InboundEvent:
    """What ingest stores for this message; `attachments` are the stored parts' entries."""
    problems = list(parsed.problems)
    text = _bounded(parsed.text if parsed.text.strip() else parsed.text_full, "text", problems)
    html = _bounded(parsed.html, "html", problems) if parsed.html is not None else None
    machine_made = parsed.is_auto_reply or parsed.is_bounce
    bounce = None
    if parsed.is_bounce:
        bounce = {
            "original_message_id": parsed.bounce_original_message_id,
            "reason": parsed.bounce_reason,
            "outbox_id": parse_outbox_id(parsed.bounce_original_message_id),
        }
    return InboundEvent(
        channel=CHANNEL,
        external_id=external_id_of(parsed),
        addresses=[Address(IdentityKind.EMAIL, parsed.sender_address)]
        if parsed.sender_address
        else [],
        display_name=parsed.sender_name,
        subject=parsed.subject,
        text=text,
        html=html,
        attachments=list(attachments),
        meta={
            "mailbox_id": mailbox.id,
            "message_id": parsed.message_id,
            "to": list(parsed.to),
            "cc": list(parsed.cc),
            "reply_to": list(parsed.reply_to),
            "auto_reply": parsed.is_auto_reply,
            "auto_reply_reason": parsed.auto_reply_reason,
            "bounce": bounce,
            "quoted_text": _bounded(parsed.text_quoted, "quoted text", problems),
            "full_text": _bounded(parsed.text_full, "full text", problems),
            "problems": problems[:MAX_PROBLEMS],
        },
        occurred_at=parsed.date or received_at,
        thread_key=thread_subject(parsed.subject)[:MAX_THREAD_KEY],
        reply_to_external_ids=list(
            dict.fromkeys(
                [*([parsed.in_reply_to] if parsed.in_reply_to else []), *parsed.references]
            )
        ),
        queue_id=mailbox.queue_id,
        # An out-of-office or a bounce is recorded, but a person did not write again.
        may_reopen=not machine_made,
    )


def _bounded(value: str, what: str, problems: list[str]) -> str:
    if len(value) <= MAX_TEXT:
        return value
    problems.append(f"{what} cut to {MAX_TEXT} characters")
    return value[:MAX_TEXT]


async def store_attachments(parsed: ParsedEmail, store: AttachmentStore) -> list[dict[str, Any]]:
    """Put each attachment's bytes in the store; the entries an interaction keeps.

    Parts over the size limit keep their metadata only (`too_large`, no key).
    """
    entries = []
    for attachment in parsed.attachments:
        key = await store.put(attachment.content) if attachment.content is not None else None
        entries.append(
            {
                "key": key,
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "inline": attachment.inline,
                "content_id": attachment.content_id,
                "too_large": attachment.too_large,
                "undecodable": attachment.undecodable,
            }
        )
    return entries


async def import_message(
    session: AsyncSession,
    mailbox: Mailbox,
    uidvalidity: int,
    uid: int,
    raw: bytes,
    store: AttachmentStore,
    policy: IngestPolicy,
    *,
    received_at: datetime | None = None,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> ImportOutcome:
    """Ingest the message at (uidvalidity, uid) of `mailbox`, or quarantine it with why.

    Storage and database failures propagate (the caller retries); a message that can never
    be ingested as it is, is quarantined, so it never blocks the messages behind it. A
    message quarantined before at this place becomes "ingested" when it goes through.
    """
    held = await quarantine.held_at(session, mailbox.id, uidvalidity, uid)

    async def hold(reason: str) -> ImportOutcome:
        row = await quarantine.quarantine(
            session, mailbox_id=mailbox.id, uidvalidity=uidvalidity, uid=uid, raw=raw, reason=reason
        )
        return ImportOutcome(ImportStatus.QUARANTINED, quarantine_id=row.id, reason=row.reason)

    try:
        parsed = parse_message(raw, max_attachment_bytes=max_attachment_bytes)
    except Exception as exc:
        # parse_message is built never to raise; if it does, the message is the cause.
        return await hold(f"the message could not be parsed: {_describe(exc)}")
    if not parsed.sender_address:
        return await hold("no sender address: the message has no usable From or Sender header")
    attachments = await store_attachments(parsed, store)
    event = to_inbound_event(parsed, mailbox, attachments, received_at=received_at)
    try:
        # Ingest writes in a savepoint of its own: when it raises, nothing of it remains.
        result = await ingest(session, event, policy)
    except InvalidInput as exc:
        fields = "; ".join(f"{name}: {message}" for name, message in exc.fields.items())
        return await hold(f"ingest refused the message: {fields or exc.message}")
    except DataError as exc:
        # A value the database refuses is a property of this message, not a passing failure.
        return await hold(f"the database refused the message: {_describe(exc.orig or exc)}")
    if held is not None:
        await quarantine.mark_ingested(session, held, result.interaction_id)
    bounced = await _record_bounce(session, parsed) if result.created else None
    return ImportOutcome(
        ImportStatus.INGESTED if result.created else ImportStatus.DUPLICATE,
        interaction_id=result.interaction_id,
        conversation_id=result.conversation_id,
        quarantine_id=held.id if held is not None else None,
        bounced_outbox_id=bounced,
    )


async def _record_bounce(session: AsyncSession, parsed: ParsedEmail) -> int | None:
    """Fail the outbox item a bounce reports on; returns its id if it changed.

    Our Message-IDs name their outbox item and carry a random part; the id must be the one
    the item was sent with, so a forged bounce naming an item cannot fail it.
    """
    original = parsed.bounce_original_message_id
    outbox_id = parse_outbox_id(original) if parsed.is_bounce else None
    if outbox_id is None:
        return None
    item = await session.get(OutboxItem, outbox_id)
    # provider_id is still unset while the send that produced the bounce is being recorded.
    if item is None or item.channel != CHANNEL or item.provider_id not in (None, original):
        return None
    reason = parsed.bounce_reason or "the message bounced"
    changed = await record_bounce(session, outbox_id, f"bounced: {reason}")
    return outbox_id if changed else None


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__

"""Inbound email: one raw message becomes an interaction, or a quarantine row.

`to_inbound_event` is the pure mapping from a parsed message to what ingest takes.
`import_message` is the one path every inbound message goes through, from the IMAP poller
and from an admin's retry alike: parse, store the attachments, ingest, record a bounce on
the outbox item it answers; anything ingest refuses is quarantined with the reason instead
(under the account and the message's place in its folder, `<uidvalidity>:<uid>`). The caller
owns the transaction (and commits the poller's cursor in it). An interaction records the
email account it came in through as `meta.account_id`; replies go out through it.

The same message is imported once; "the same" means the same Message-ID (or none) and the
same content digest (channels.email.digest: what the sender wrote, not the servers' headers).
A message is stored under its Message-ID; a different message whose Message-ID is already
held (broken mailers reuse ids) is stored under `<Message-ID> sha256:<digest>` instead, so a
reply naming that Message-ID threads into the conversation of the first message imported
with it. A message without a Message-ID is stored under `sha256:<digest>`. Interactions
stored before digests were recorded are recognized by what they kept (`is_same_message`)
and, without a Message-ID, by the hash of their raw bytes, their key then.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.message import DEFAULT_MAX_ATTACHMENT_BYTES, ParsedEmail, parse_message
from channels.email.threads import parse_outbox_id, thread_subject
from core import quarantine
from core.channel_accounts import AccountView
from core.delivery import record_receipt
from core.errors import InvalidInput
from core.identity import Address
from core.ingest import MAX_EXTERNAL_ID, MAX_TEXT, InboundEvent, IngestPolicy, IngestResult, ingest
from core.logfields import log_fields
from core.models import IdentityKind, Interaction, OutboxItem, QuarantinedMessage, Receipt
from core.storage import AttachmentStore

log = logging.getLogger(__name__)

CHANNEL = "email"
# Conversation.thread_key is a 500-character column.
MAX_THREAD_KEY = 500
# A message can note many problems (one per broken part); the first ones tell the story.
MAX_PROBLEMS = 50


class ImportStatus(StrEnum):
    INGESTED = "ingested"
    # Stored before: the same Message-ID (or none) and the same content digest.
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
    """The key a message is stored under unless a different message holds it: its
    Message-ID, or `sha256:<content digest>` for a message without a usable one."""
    return parsed.message_id or content_key(parsed)


def content_key(parsed: ParsedEmail) -> str:
    """The key of a message whose Message-ID a different message holds: `<id> sha256:<digest>`,
    which still names the Message-ID for our replies' In-Reply-To and References; the digest
    alone for an id too long for that (it covers the Message-ID header too)."""
    digest = f"sha256:{parsed.content_digest}"
    if parsed.message_id is None:
        return digest
    keyed = f"{parsed.message_id} {digest}"
    return keyed if len(keyed) <= MAX_EXTERNAL_ID else digest


def message_id_in(external_id: str) -> str | None:
    """The Message-ID an email interaction's external id names; None for a content digest."""
    candidate = external_id.split(" ", 1)[0]
    looks_like_one = candidate.startswith("<") and candidate.endswith(">") and "@" in candidate
    return candidate if looks_like_one else None


def is_same_message(stored: Interaction, event: InboundEvent) -> bool:
    """Whether `stored`, held under the key `event` asks for, is the message `event` is from.

    Interactions record their message's content digest. Ones stored before that (under the
    bare Message-ID) are compared by what they kept of the message: subject, full text,
    recipients and attachments (content-addressed keys, names, sizes). A re-delivery of such
    a message is thus recognized, and a different message reusing its id is not swallowed.
    """
    kept = stored.meta or {}
    recorded = kept.get("content_digest")
    if recorded is not None:
        return bool(recorded == event.meta["content_digest"])
    return (
        stored.subject == event.subject[:500]
        and all(kept.get(key) == event.meta[key] for key in ("full_text", "to", "cc"))
        and _attachment_identities(stored.attachments) == _attachment_identities(event.attachments)
    )


def _attachment_identities(entries: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(entry.get("key"), entry.get("filename"), entry.get("size")) for entry in entries]


def to_inbound_event(
    parsed: ParsedEmail,
    account: AccountView,
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
            "account_id": account.id,
            "message_id": parsed.message_id,
            "content_digest": parsed.content_digest,
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
        queue_id=account.queue_id,
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


class LookUp(enum.Enum):
    """`import_message`'s `held` when the caller has not looked it up."""

    LOOK_UP = "look up"


LOOK_UP: Final = LookUp.LOOK_UP


async def import_message(
    session: AsyncSession,
    account: AccountView,
    reference: str,
    raw: bytes,
    store: AttachmentStore,
    policy: IngestPolicy,
    *,
    received_at: datetime | None = None,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    held: QuarantinedMessage | LookUp | None = LOOK_UP,
) -> ImportOutcome:
    """Ingest the message found at `reference` of `account`, or quarantine it with why.

    Storage and database failures propagate (the caller retries); a message that can never
    be ingested as it is, is quarantined, so it never blocks the messages behind it. A
    message quarantined before at this place (`held`: looked up unless the caller did it
    for a batch, `quarantine.held_among`) becomes "ingested" when it goes through.
    """
    if held is LOOK_UP:
        held = await quarantine.held_at(session, account.id, reference)

    async def hold(reason: str) -> ImportOutcome:
        row = await quarantine.quarantine(
            session,
            channel=CHANNEL,
            account_id=account.id,
            reference=reference,
            raw=raw,
            reason=reason,
        )
        return ImportOutcome(ImportStatus.QUARANTINED, quarantine_id=row.id, reason=row.reason)

    try:
        # In a thread: parsing a large message takes milliseconds of CPU that the event loop
        # (answering HTTP in a one-process server) should not wait out.
        parsed = await asyncio.to_thread(
            parse_message, raw, max_attachment_bytes=max_attachment_bytes
        )
    except Exception as exc:
        # parse_message is built never to raise; if it does, the message is the cause.
        return await hold(f"the message could not be parsed: {_describe(exc)}")
    if not parsed.sender_address:
        return await hold("no sender address: the message has no usable From or Sender header")
    attachments = await store_attachments(parsed, store)
    event = to_inbound_event(parsed, account, attachments, received_at=received_at)
    try:
        # Ingest undoes its own writes when it raises (a savepoint; on PostgreSQL its
        # function), so a message the database refuses can be quarantined in this transaction.
        result = await _ingest_once(session, parsed, event, policy)
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


async def _ingest_once(
    session: AsyncSession, parsed: ParsedEmail, event: InboundEvent, policy: IngestPolicy
) -> IngestResult:
    """Ingest `event` unless the same message is stored; created=False with its ids if it is.

    Ingest's unique (channel, external_id) decides every race: a twin committed meanwhile
    is found by the second ingest call or the lookup that follows the first.
    """
    if parsed.message_id is None:
        earlier = await _stored_under(session, f"sha256:{parsed.content_hash}")
        if earlier is not None:
            return earlier
        return await ingest(session, event, policy)
    result = await ingest(session, event, policy)
    if result.created:
        return result
    holder = await session.get(Interaction, result.interaction_id, populate_existing=True)
    if holder is None or is_same_message(holder, event):
        return result
    result = await ingest(session, replace(event, external_id=content_key(parsed)), policy)
    if result.created:
        log.info(
            "stored an email whose Message-ID an earlier, different message has",
            extra=log_fields(
                account_id=event.meta["account_id"],
                message_id=parsed.message_id,
                interaction_id=result.interaction_id,
                earlier_interaction_id=holder.id,
            ),
        )
    return result


async def _stored_under(session: AsyncSession, external_id: str) -> IngestResult | None:
    row = (
        await session.execute(
            select(Interaction.id, Interaction.conversation_id, Interaction.contact_id).where(
                Interaction.channel == CHANNEL, Interaction.external_id == external_id
            )
        )
    ).first()
    if row is None:
        return None
    return IngestResult(row.id, row.conversation_id or 0, row.contact_id, created=False)


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
    changed = await record_receipt(
        session,
        channel=CHANNEL,
        provider_id=original,
        receipt=Receipt.FAILED,
        error_text=f"bounced: {reason}",
        outbox_id=outbox_id,
    )
    return outbox_id if changed else None


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__

"""Privacy requests (GDPR, 152-FZ): everything held on a person, erased for good.

A *person* is a live contact together with every tombstone merged into it: a person merged
from two records is both, and a request about them covers both. What belongs to the person:

- the contact records (name, language, tags, custom fields, priority tier, marketing source,
  owner and account), and their identities (email addresses, phone numbers, chat ids...);
- their conversations (subject, thread key) and every interaction in them or of them (text,
  HTML, subject, meta, attachment list, the channel's external id), internal notes included;
- their leads (marketing data) and tasks (notes; a callback's number and reasons: open
  ones are cancelled);
- their phone calls (the numbers, the menu choice; times and outcomes stay for the monitor;
  recordings are attachments of the calls' interactions);
- outbox items of their conversations (the reply's payload, the address it went to, the
  provider's error, which often quotes the address);
- quarantined input from their addresses (an email's From, Sender or Reply-To; the sender a
  channel noted, such as a Telegram user) or ingested into their interactions: the raw bytes;
- notifications of notes in their conversations (the console shows an excerpt of the note);
- the routing decisions of their conversations and leads (reasons may quote facts);
- audit entries about their records (these hold ids, field names and counts, never values;
  quarantine retries keep a reason text, which is scrubbed).

`erase_contact` anonymises all of it in the caller's transaction and keeps what statistics
count: conversations keep channel, queue, status, assignee, priority and every timestamp and
SLA figure; interactions keep kind, direction, channel, operator and time; leads keep source,
stage, value and owner; routing decisions keep kind, queue, operator and time; offers, SLA
timers and read markers (they hold nothing of the person) stay as they are. So the monitor's
figures and later reports do not change. Identities are deleted, so the person's next message
starts a fresh contact. Each contact record stays as a tombstone named "Erased contact <id>"
with `erased_at` set (conversations and interactions must point at a contact), with no data of
the person left on it. Outbox items not yet sent are cancelled (failed, "cancelled: the contact
was erased"). Nothing is ever restored.

Attachments are content-addressed and may be shared with another person's interaction (the
same bytes), so the files are deleted only after the erasure commits (a rollback never loses a
file that is still referenced), and only those no interaction references any more:
`delete_unreferenced`. `erase` does both steps.

Erasing again is allowed and anonymises whatever arrived meanwhile (on PostgreSQL a message
ingested in the very moment of the erasure can still land on the tombstone). Mail that is still
on the mail server, and backups, are outside omnicrm: docs/privacy.md says what to do there.
The export of everything listed here is `core.privacy_export.export_contact`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Any, TypeVar
from typing import cast as typed

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    LargeBinary,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core import audit
from core.audit import Actor
from core.db import SessionFactory, transaction
from core.errors import Conflict, NotFound
from core.event_types import CONTACT_ERASED, CONVERSATION_UPDATED, OUTBOX_FAILED
from core.events import Event, emit
from core.logfields import log_fields
from core.models import (
    AuditEntry,
    Contact,
    Conversation,
    Identity,
    IdentityKind,
    Interaction,
    Lead,
    LeadStageChange,
    Notification,
    OutboxItem,
    OutboxStatus,
    QuarantinedMessage,
    RoutingDecision,
    SuggestionDoc,
    Task,
    TaskOutcome,
    VoiceCall,
    utcnow,
)
from core.storage import AttachmentStore
from core.visibility import Placement, audience_labels

log = logging.getLogger(__name__)

ERASED_NAME = "Erased contact {id}"
CANCELLED = "cancelled: the contact was erased"
SCRUBBED = "erased with the contact"
# Enough of a quarantined message's head to read its sender headers.
HEADER_BYTES = 64 * 1024
SENDER_HEADERS = ("from", "sender", "reply-to")
# Rows are read in pages of this many, so a long history is never all in memory at once.
BATCH = 200
# Pages of rows that may hold a megabyte of text each (interactions, outbox items).
TEXT_BATCH = 20
# Attachment keys looked up per query when checking what is still referenced.
KEY_BATCH = 50
# Audit details that quote a quarantined message's failure (and so, possibly, its content).
_QUARANTINE_TEXTS = ("reason", "previous_reason")

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Person:
    """A live contact and every record of the same person merged into it; the filters below
    select what belongs to them (subqueries, so no id list has to fit in memory)."""

    contact: Contact
    merged: tuple[Contact, ...]

    @property
    def records(self) -> tuple[Contact, ...]:
        return (self.contact, *self.merged)

    @property
    def ids(self) -> list[int]:
        return [record.id for record in self.records]

    def conversation_ids(self) -> Select[int]:
        return select(Conversation.id).where(Conversation.contact_id.in_(self.ids))

    def owns_interaction(self) -> ColumnElement[bool]:
        return or_(
            Interaction.contact_id.in_(self.ids),
            Interaction.conversation_id.in_(self.conversation_ids()),
        )

    def interaction_ids(self) -> Select[int]:
        return select(Interaction.id).where(self.owns_interaction())

    def lead_ids(self) -> Select[int]:
        return select(Lead.id).where(Lead.contact_id.in_(self.ids))

    def owns_task(self) -> ColumnElement[bool]:
        return or_(Task.contact_id.in_(self.ids), Task.conversation_id.in_(self.conversation_ids()))

    def owns_outbox_item(self) -> ColumnElement[bool]:
        return or_(
            OutboxItem.conversation_id.in_(self.conversation_ids()),
            OutboxItem.interaction_id.in_(self.interaction_ids()),
        )

    def owns_notification(self) -> ColumnElement[bool]:
        return or_(
            Notification.conversation_id.in_(self.conversation_ids()),
            Notification.interaction_id.in_(self.interaction_ids()),
        )

    def owns_decision(self) -> ColumnElement[bool]:
        return or_(
            RoutingDecision.conversation_id.in_(self.conversation_ids()),
            RoutingDecision.lead_id.in_(self.lead_ids()),
        )

    def owns_audit_entry(self, quarantine_ids: Iterable[int] = ()) -> ColumnElement[bool]:
        """Audit entries about the person's records (entity ids are stored as text)."""

        def about(entity_type: str, ids: Select[int] | list[int]) -> ColumnElement[bool]:
            if isinstance(ids, list):
                return and_(
                    AuditEntry.entity_type == entity_type,
                    AuditEntry.entity_id.in_([str(value) for value in ids]),
                )
            column = ids.selected_columns[0]
            return and_(
                AuditEntry.entity_type == entity_type,
                AuditEntry.entity_id.in_(ids.with_only_columns(cast(column, String(60)))),
            )

        return or_(
            about("contact", self.ids),
            about("conversation", self.conversation_ids()),
            about("lead", self.lead_ids()),
            about("quarantine", list(quarantine_ids)),
        )


async def find_person(session: AsyncSession, contact_id: int, *, lock: bool = False) -> Person:
    """The live contact `contact_id` with the records merged into it; 404 if there is none,
    409 naming the survivor if it was merged into another. `lock` locks the records for the
    transaction (PostgreSQL), so a merge cannot move records while they are erased."""

    def query(condition: ColumnElement[bool]) -> Select[Contact]:
        statement = select(Contact).where(condition).order_by(Contact.id)
        return statement.with_for_update() if lock else statement

    contact = await session.scalar(query(Contact.id == contact_id))
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}")
    if contact.merged_into_id is not None:
        raise Conflict(
            f"contact {contact_id} was merged into contact {contact.merged_into_id}; use that one"
        )
    merged: list[Contact] = []
    seen = {contact.id}
    frontier = [contact.id]
    # A merge re-points older tombstones at the survivor; following the chain anyway costs
    # nothing and covers records merged before that rule.
    while frontier:
        found = [
            record
            for record in await session.scalars(query(Contact.merged_into_id.in_(frontier)))
            if record.id not in seen
        ]
        seen.update(record.id for record in found)
        merged.extend(found)
        frontier = [record.id for record in found]
    return Person(contact, tuple(merged))


async def email_addresses(session: AsyncSession, person: Person) -> set[str]:
    """The person's email addresses (stored normalized: lower-case)."""
    rows = await session.scalars(
        select(Identity.address).where(
            Identity.contact_id.in_(person.ids), Identity.kind == IdentityKind.EMAIL
        )
    )
    return set(rows)


def senders_of(head: bytes) -> set[str]:
    """The addresses in a message's From, Sender and Reply-To headers, lower-case; best
    effort, since quarantined messages are the broken ones."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(head)
        values = [str(value) for name in SENDER_HEADERS for value in headers.get_all(name, [])]
        return {address.strip().lower() for _, address in getaddresses(values) if "@" in address}
    except Exception:
        # A header so broken that the parser gives up names nobody.
        return set()


async def batches(
    session: AsyncSession,
    query: Select[RowT],
    id_column: InstrumentedAttribute[int],
    size: int = BATCH,
) -> AsyncIterator[list[RowT]]:
    """The entities of `query` in pages of `size`, by ascending id."""
    last = 0
    while True:
        rows = list(
            await session.scalars(query.where(id_column > last).order_by(id_column).limit(size))
        )
        if not rows:
            return
        yield rows
        last = _id_of(rows[-1])


async def stored_attachments(
    session: AsyncSession, person: Person
) -> AsyncIterator[tuple[int, list[tuple[int, dict[str, Any]]]]]:
    """Each of the person's interactions that has stored attachments: its id, and the
    (index, entry) of each entry with a store key. Reads the attachment lists only."""
    last = 0
    while True:
        rows = (
            await session.execute(
                select(Interaction.id, Interaction.attachments)
                .where(person.owns_interaction(), Interaction.id > last)
                .order_by(Interaction.id)
                .limit(BATCH)
            )
        ).all()
        if not rows:
            return
        for interaction_id, attachments in rows:
            stored = [
                (index, entry)
                for index, entry in enumerate(attachments)
                if isinstance(entry, dict) and entry.get("key")
            ]
            if stored:
                yield interaction_id, stored
        last = rows[-1][0]


def _id_of(row: Any) -> int:
    return int(row if isinstance(row, int) else row.id)


async def quarantined_from(session: AsyncSession, person: Person, emails: set[str]) -> list[int]:
    """Ids of quarantined messages that are the person's: sent from one of their addresses
    (an email's sender headers, or the sender the channel noted: a Telegram user), or
    ingested into one of their interactions."""
    found: set[int] = set(
        await session.scalars(
            select(QuarantinedMessage.id).where(
                QuarantinedMessage.interaction_id.in_(person.interaction_ids())
            )
        )
    )
    found.update(
        await session.scalars(
            select(QuarantinedMessage.id).join(
                Identity,
                and_(
                    Identity.kind == QuarantinedMessage.sender_kind,
                    Identity.address == QuarantinedMessage.sender_address,
                    Identity.contact_id.in_(person.ids),
                ),
            )
        )
    )
    if emails:
        last = 0
        while True:
            rows = (
                await session.execute(
                    select(
                        QuarantinedMessage.id,
                        func.substr(QuarantinedMessage.raw, 1, HEADER_BYTES, type_=LargeBinary),
                    )
                    .where(QuarantinedMessage.id > last)
                    .order_by(QuarantinedMessage.id)
                    .limit(BATCH)
                )
            ).all()
            if not rows:
                break
            found.update(row_id for row_id, head in rows if senders_of(bytes(head)) & emails)
            last = rows[-1][0]
    return sorted(found)


def part_keys(raw: bytes) -> set[str]:
    """Store keys the parts of a raw message may have been kept under: the email channel
    stores attachments before ingest, so a message ingest refused may have left some."""
    keys: set[str] = set()
    try:
        message = BytesParser(policy=default_policy).parsebytes(raw)
        for part in message.walk():
            if part.is_multipart():
                continue
            decoded = part.get_payload(decode=True)
            if isinstance(decoded, bytes) and decoded:
                keys.add(hashlib.sha256(decoded).hexdigest())
    except Exception:
        # Best effort on a broken message; what cannot be parsed was never stored in parts.
        return keys
    return keys


@dataclass(frozen=True)
class Erasure:
    """What an erasure did (counts only, never data), and the attachment keys whose files
    may be deleted once it has committed."""

    contact_id: int
    merged_ids: tuple[int, ...]
    erased_at: datetime
    counts: dict[str, int]
    attachment_keys: frozenset[str]


async def erase_contact(session: AsyncSession, actor: Actor, contact_id: int) -> Erasure:
    """Erase the person's data in the caller's transaction (see the module's docstring for
    what is erased and what stays); audited with counts. Attachment files are left for
    `delete_unreferenced` after the commit."""
    person = await find_person(session, contact_id, lock=True)
    now = utcnow()
    emails = await email_addresses(session, person)
    keys = await _attachment_keys(session, person)
    quarantine_ids = await quarantined_from(session, person, emails)
    for raw in await session.scalars(
        select(QuarantinedMessage.raw).where(QuarantinedMessage.id.in_(quarantine_ids))
    ):
        keys |= part_keys(raw)
    placements = {
        row.id: Placement(row.queue_id, row.assignee_id)
        for row in await session.execute(
            select(Conversation.id, Conversation.queue_id, Conversation.assignee_id).where(
                Conversation.id.in_(person.conversation_ids())
            )
        )
    }
    conversation_ids = list(placements)
    open_outbox = list(
        await session.scalars(
            select(OutboxItem.id).where(
                person.owns_outbox_item(),
                OutboxItem.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING)),
            )
        )
    )
    counts = {
        "records": len(person.records),
        "identities": await _run(
            session, delete(Identity).where(Identity.contact_id.in_(person.ids))
        ),
        "conversations": await _run(
            session,
            update(Conversation)
            .where(Conversation.id.in_(conversation_ids))
            .values(subject="", thread_key=None, updated_at=Conversation.updated_at),
        ),
        "interactions": await _run(
            session,
            update(Interaction)
            .where(person.owns_interaction())
            .values(subject="", text="", html=None, attachments=[], meta={}, external_id=None),
        ),
        # A lead keeps its stage, value and history (reports count them); what people wrote
        # about the person goes: its title, why it was lost, the reasons of its moves.
        "leads": await _run(
            session,
            update(Lead)
            .where(Lead.contact_id.in_(person.ids))
            .values(marketing={}, title="", lost_reason=None, updated_at=Lead.updated_at),
        ),
        "lead_moves": await _run(
            session,
            update(LeadStageChange)
            .where(
                LeadStageChange.lead_id.in_(select(Lead.id).where(Lead.contact_id.in_(person.ids))),
                LeadStageChange.reason.is_not(None),
            )
            .values(reason=None),
        ),
        # A task keeps that there was work, not who or what number (a callback's meta).
        "tasks": await _run(
            session, update(Task).where(person.owns_task()).values(note="", meta={})
        ),
        "tasks_cancelled": await _run(
            session,
            update(Task)
            .where(person.owns_task(), Task.done_at.is_(None))
            .values(done_at=now, outcome=TaskOutcome.CANCELLED),
        ),
        # A call keeps its times and outcome (the monitor's figures), not the numbers.
        "voice_calls": await _run(
            session,
            update(VoiceCall)
            .where(VoiceCall.contact_id.in_(person.ids))
            .values(from_number="", to_number="", ivr_choice=None, meta={}),
        ),
        "outbox_items": await _run(
            session,
            update(OutboxItem)
            .where(person.owns_outbox_item())
            .values(
                recipient="",
                payload={},
                # A provider's error often quotes the address: that it failed is kept.
                last_error=case((OutboxItem.last_error.is_(None), None), else_=SCRUBBED),
                updated_at=OutboxItem.updated_at,
            ),
        ),
        "outbox_cancelled": len(open_outbox),
        "notifications": await _run(
            session, delete(Notification).where(person.owns_notification())
        ),
        "routing_decisions": await _run(
            session,
            update(RoutingDecision).where(person.owns_decision()).values(reason="", details={}),
        ),
        # Their conversations' replies are no longer suggested (they quote the person).
        "suggestions": await _run(
            session,
            delete(SuggestionDoc).where(SuggestionDoc.conversation_id.in_(conversation_ids)),
        ),
        "quarantined_messages": len(quarantine_ids),
        "audit_entries_scrubbed": await _scrub_quarantine_audit(session, quarantine_ids),
    }
    await _run(
        session,
        update(OutboxItem)
        .where(OutboxItem.id.in_(open_outbox))
        .values(status=OutboxStatus.FAILED, last_error=CANCELLED, updated_at=now),
    )
    await _run(
        session,
        delete(QuarantinedMessage).where(QuarantinedMessage.id.in_(quarantine_ids)),
    )
    for record in person.records:
        _anonymise(record, now)
    await session.flush()
    erasure = Erasure(
        person.contact.id,
        tuple(record.id for record in person.merged),
        now,
        counts,
        frozenset(keys),
    )
    await audit.record(
        session,
        actor,
        "contact.erase",
        "contact",
        person.contact.id,
        {"merged_ids": list(erasure.merged_ids), **counts, "attachment_keys": len(keys)},
    )
    await emit(session, Event(CONTACT_ERASED, {"contact": person.contact.id}))
    for conversation_id, placement in placements.items():
        ids: dict[str, int] = {"conversation": conversation_id, "contact": person.contact.id}
        await emit(session, Event(CONVERSATION_UPDATED, ids, audience_labels([placement])))
    for outbox_id in open_outbox:
        await emit(session, Event(OUTBOX_FAILED, {"outbox": outbox_id}, {"reason": "erased"}))
    return erasure


async def _run(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(typed("CursorResult[Any]", result).rowcount or 0)


async def _attachment_keys(session: AsyncSession, person: Person) -> set[str]:
    keys: set[str] = set()
    async for _, index_entries in stored_attachments(session, person):
        keys.update(str(entry["key"]) for _, entry in index_entries)
    return keys


async def _scrub_quarantine_audit(session: AsyncSession, quarantine_ids: list[int]) -> int:
    """Drop the failure texts from the audit entries of the person's quarantined messages."""
    if not quarantine_ids:
        return 0
    scrubbed = 0
    entries = await session.scalars(
        select(AuditEntry).where(
            AuditEntry.entity_type == "quarantine",
            AuditEntry.entity_id.in_([str(value) for value in quarantine_ids]),
        )
    )
    for entry in entries:
        if any(name in entry.details for name in _QUARANTINE_TEXTS):
            entry.details = {
                name: (SCRUBBED if name in _QUARANTINE_TEXTS else value)
                for name, value in entry.details.items()
            }
            scrubbed += 1
    return scrubbed


def _anonymise(record: Contact, now: datetime) -> None:
    record.display_name = ERASED_NAME.format(id=record.id)
    record.language = None
    record.tags = []
    record.custom_fields = {}
    record.marketing_source = {}
    record.priority_tier = "standard"
    record.owner_id = None
    record.account_id = None
    # Their customer number in the ERP: the ERP's orders stay the ERP's (business records),
    # but omnicrm no longer links the erased person to them.
    record.erp_ref = None
    record.erased_at = now
    record.updated_at = now


async def referenced_keys(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """Which of `keys` some interaction's attachment list still holds."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    listed = cast(Interaction.attachments, Text)
    for start in range(0, len(wanted), KEY_BATCH):
        chunk = set(wanted[start : start + KEY_BATCH])
        rows = await session.scalars(
            select(Interaction.attachments).where(or_(*(listed.contains(key) for key in chunk)))
        )
        for attachments in rows:
            found.update(
                str(entry["key"])
                for entry in attachments
                if isinstance(entry, dict) and entry.get("key") in chunk
            )
    return found


@dataclass(frozen=True)
class Purge:
    deleted: int
    # Still referenced by an interaction of someone else.
    kept: int
    # The store failed to delete them (logged); the erasure stands.
    failed: int


async def delete_unreferenced(
    session: AsyncSession, store: AttachmentStore, keys: Iterable[str]
) -> Purge:
    """Delete the files of `keys` that no interaction references; run it after the erasure
    committed, so a rolled-back erasure never costs a file."""
    keys = set(keys)
    still = await referenced_keys(session, keys)
    deleted = failed = 0
    for key in sorted(keys - still):
        try:
            deleted += await store.delete(key)
        except NotFound:
            continue  # not a key the store could have made: nothing to delete
        except OSError as exc:
            failed += 1
            log.warning("attachment not deleted", extra=log_fields(error=str(exc)))
    return Purge(deleted, len(still), failed)


@dataclass(frozen=True)
class ErasureReport:
    erasure: Erasure
    purge: Purge


async def erase(
    factory: SessionFactory, store: AttachmentStore, actor: Actor, contact_id: int
) -> ErasureReport:
    """The whole request: erase in one transaction, then delete the files nobody references."""
    async with transaction(factory) as session:
        erasure = await erase_contact(session, actor, contact_id)
    async with factory() as session:
        purge = await delete_unreferenced(session, store, erasure.attachment_keys)
    log.info(
        "contact erased",
        extra=log_fields(
            erasure.counts,
            contact_id=erasure.contact_id,
            actor=actor.label,
            attachments_deleted=purge.deleted,
            attachments_kept=purge.kept,
            attachments_failed=purge.failed,
        ),
    )
    return ErasureReport(erasure, purge)

"""The export of a privacy request: everything held on a person, as one zip archive.

What belongs to a person is defined once, in `core.privacy` (the contact, the records merged
into it, and what hangs off them). The archive holds:

- ``contact.json``: UTF-8 JSON, ``{"format": "omnicrm.contact-export", "version": 1,
  "exported_at", "contact_id", "contact", "merged_records", "identities", "conversations",
  "interactions", "leads", "tasks", "voice_calls", "outbox", "quarantined_messages",
  "routing_decisions", "audit"}``. Each list holds the rows with all their columns, oldest
  first (by id), with these exceptions: an interaction's ``attachments`` entries carry
  ``file`` (the entry's path in the archive, null if the file was too large to keep or is
  missing from the store) and ``sha256`` instead of the store key; a quarantined message
  carries ``file`` instead of its bytes; routing decisions leave out their ``details`` and
  audit entries their actor (both are about operators, not the person). Timestamps are ISO
  8601 UTC, amounts strings.
- ``attachments/<interaction id>/<n>-<filename>``: the attachment files, n counting from 0 in
  the interaction's attachment list;
- ``quarantine/<id>.eml``: quarantined messages as received.

The archive is written to a file the caller gives (a temporary file for a download), page by
page, so a long history never has to fit in memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core import audit
from core.audit import Actor
from core.errors import NotFound
from core.models import (
    Account,
    AuditEntry,
    Base,
    Contact,
    Conversation,
    Identity,
    Interaction,
    Lead,
    OutboxItem,
    QuarantinedMessage,
    RoutingDecision,
    Task,
    VoiceCall,
    utcnow,
)
from core.privacy import (
    BATCH,
    TEXT_BATCH,
    Person,
    batches,
    email_addresses,
    find_person,
    quarantined_from,
    stored_attachments,
)
from core.storage import AttachmentStore

FORMAT = "omnicrm.contact-export"
FORMAT_VERSION = 1
# JSON is handed to the zip writer in pieces of about this size.
FLUSH_BYTES = 256 * 1024
MAX_FILENAME = 100
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


@dataclass(frozen=True)
class ExportSummary:
    """How much went into an archive (what the audit entry records)."""

    contact_id: int
    merged_ids: tuple[int, ...]
    conversations: int
    interactions: int
    attachments: int
    missing_attachments: int
    quarantined_messages: int

    @property
    def filename(self) -> str:
        return f"contact-{self.contact_id}-export.zip"


def archive_name(filename: str | None, interaction_id: int, index: int) -> str:
    """`attachments/<interaction>/<n>-<filename>`, the name made safe for any unzip tool."""
    base = _UNSAFE_NAME.sub("_", (filename or "").rsplit("/", 1)[-1]).strip(" .")
    return f"attachments/{interaction_id}/{index}-{base[:MAX_FILENAME] or 'attachment'}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def columns(row: Base, leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """Every column of a row by name, except `leave_out`."""
    skipped = set(leave_out)
    return {
        attribute.key: getattr(row, attribute.key)
        for attribute in inspect(type(row)).column_attrs
        if attribute.key not in skipped
    }


class _JsonWriter:
    """Writes JSON text into an open zip entry in pieces, off the event loop."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._pieces: list[str] = []
        self._size = 0

    async def text(self, piece: str) -> None:
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size >= FLUSH_BYTES:
            await self.flush()

    async def value(self, value: Any) -> None:
        await self.text(json.dumps(value, default=_plain, ensure_ascii=False))

    async def flush(self) -> None:
        data = "".join(self._pieces).encode()
        self._pieces, self._size = [], 0
        if data:
            await asyncio.to_thread(self._handle.write, data)

    async def section(self, name: str, rows: AsyncIterator[dict[str, Any]]) -> int:
        """`"name": [rows...]`, one row per line; how many rows there were."""
        await self.text(f',\n"{name}": [')
        count = 0
        async for row in rows:
            await self.text("\n" if count == 0 else ",\n")
            await self.value(row)
            count += 1
        await self.text("]")
        return count


async def _rows(
    session: AsyncSession,
    query: Select[Any],
    id_column: InstrumentedAttribute[int],
    shape: Callable[[Any], dict[str, Any]],
    size: int,
) -> AsyncIterator[dict[str, Any]]:
    async for page in batches(session, query, id_column, size):
        for row in page:
            yield shape(row)


async def export_contact(
    session: AsyncSession, store: AttachmentStore, contact_id: int, out: IO[bytes]
) -> ExportSummary:
    """Write the person's archive into `out` (a binary file open for writing); 404 for no
    such contact, 409 naming the survivor for a merged one (see `core.privacy.find_person`)."""
    person = await find_person(session, contact_id)
    quarantine_ids = await quarantined_from(session, person, await email_addresses(session, person))
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        files, missing = await _write_attachments(session, store, person, archive)
        for row_id in quarantine_ids:
            raw = await session.scalar(
                select(QuarantinedMessage.raw).where(QuarantinedMessage.id == row_id)
            )
            if raw is not None:
                await asyncio.to_thread(archive.writestr, f"quarantine/{row_id}.eml", raw)
        handle = await asyncio.to_thread(archive.open, "contact.json", "w", force_zip64=True)
        try:
            counts = await _write_json(session, person, _JsonWriter(handle), files, quarantine_ids)
        finally:
            await asyncio.to_thread(handle.close)
    return ExportSummary(
        contact_id=person.contact.id,
        merged_ids=tuple(record.id for record in person.merged),
        conversations=counts["conversations"],
        interactions=counts["interactions"],
        attachments=len(files),
        missing_attachments=missing,
        quarantined_messages=len(quarantine_ids),
    )


async def _write_attachments(
    session: AsyncSession, store: AttachmentStore, person: Person, archive: zipfile.ZipFile
) -> tuple[dict[tuple[int, int], str], int]:
    """Each stored attachment of the person's interactions as a file; the archive name of
    each (interaction id, index), and how many the store did not have."""
    files: dict[tuple[int, int], str] = {}
    missing = 0
    async for interaction_id, entries in stored_attachments(session, person):
        for index, entry in entries:
            try:
                data = await store.get(str(entry["key"]))
            except NotFound:
                missing += 1
                continue
            name = archive_name(entry.get("filename"), interaction_id, index)
            await asyncio.to_thread(archive.writestr, name, data)
            files[(interaction_id, index)] = name
    return files, missing


async def _write_json(
    session: AsyncSession,
    person: Person,
    writer: _JsonWriter,
    files: dict[tuple[int, int], str],
    quarantine_ids: list[int],
) -> dict[str, int]:
    accounts = {
        account.id: account.name
        for account in await session.scalars(
            select(Account).where(
                Account.id.in_([r.account_id for r in person.records if r.account_id])
            )
        )
    }

    def contact(record: Contact) -> dict[str, Any]:
        return {**columns(record), "account_name": accounts.get(record.account_id or 0)}

    def interaction(row: Interaction) -> dict[str, Any]:
        entries = []
        for index, entry in enumerate(row.attachments):
            described = {k: v for k, v in entry.items() if k != "key"}
            entries.append(
                {**described, "sha256": entry.get("key"), "file": files.get((row.id, index))}
            )
        return {**columns(row, ["attachments"]), "attachments": entries}

    def quarantined(row: QuarantinedMessage) -> dict[str, Any]:
        return {**columns(row, ["raw"]), "size": len(row.raw), "file": f"quarantine/{row.id}.eml"}

    await writer.text("{")
    await writer.text(f'"format": "{FORMAT}", "version": {FORMAT_VERSION}')
    await writer.text(f', "exported_at": "{utcnow().isoformat()}"')
    await writer.text(f', "contact_id": {person.contact.id}')
    await writer.text(',\n"contact": ')
    await writer.value(contact(person.contact))

    async def listed(rows: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        for row in rows:
            yield row

    counts: dict[str, int] = {}
    ids = person.ids
    counts["merged_records"] = await writer.section(
        "merged_records", listed(contact(record) for record in person.merged)
    )
    sections: list[tuple[str, Select[Any], InstrumentedAttribute[int], Callable[[Any], Any]]] = [
        (
            "identities",
            select(Identity).where(Identity.contact_id.in_(ids)),
            Identity.id,
            columns,
        ),
        (
            "conversations",
            select(Conversation).where(Conversation.contact_id.in_(ids)),
            Conversation.id,
            columns,
        ),
        (
            "interactions",
            select(Interaction).where(person.owns_interaction()),
            Interaction.id,
            interaction,
        ),
        ("leads", select(Lead).where(Lead.contact_id.in_(ids)), Lead.id, columns),
        ("tasks", select(Task).where(person.owns_task()), Task.id, columns),
        (
            "voice_calls",
            select(VoiceCall).where(VoiceCall.contact_id.in_(ids)),
            VoiceCall.id,
            columns,
        ),
        (
            "outbox",
            select(OutboxItem).where(person.owns_outbox_item()),
            OutboxItem.id,
            columns,
        ),
        (
            "quarantined_messages",
            select(QuarantinedMessage).where(QuarantinedMessage.id.in_(quarantine_ids)),
            QuarantinedMessage.id,
            quarantined,
        ),
        (
            "routing_decisions",
            select(RoutingDecision).where(person.owns_decision()),
            RoutingDecision.id,
            lambda row: columns(row, ["details"]),
        ),
        (
            "audit",
            select(AuditEntry).where(person.owns_audit_entry(quarantine_ids)),
            AuditEntry.id,
            lambda row: columns(row, ["actor_id", "actor_label"]),
        ),
    ]
    for name, query, id_column, shape in sections:
        # Interactions and outbox items may hold a megabyte of text each.
        size = TEXT_BATCH if name in ("interactions", "outbox") else BATCH
        counts[name] = await writer.section(name, _rows(session, query, id_column, shape, size))
    await writer.text("\n}\n")
    await writer.flush()
    return counts


async def record_export(session: AsyncSession, actor: Actor, summary: ExportSummary) -> None:
    """Audit an export: who, when, of whom and how much; never the data."""
    await audit.record(
        session,
        actor,
        "contact.export",
        "contact",
        summary.contact_id,
        {
            "format_version": FORMAT_VERSION,
            "merged_ids": list(summary.merged_ids),
            "conversations": summary.conversations,
            "interactions": summary.interactions,
            "attachments": summary.attachments,
            "missing_attachments": summary.missing_attachments,
            "quarantined_messages": summary.quarantined_messages,
        },
    )

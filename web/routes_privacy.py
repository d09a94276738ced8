"""Privacy requests API (admins): export everything held on a contact, or erase it."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core import privacy, privacy_export
from core.errors import InvalidInput
from web.api import ADMINS, ApiRoutes, Call, NoBody
from web.keys import ATTACHMENTS

routes = ApiRoutes(tag="privacy")

CHUNK_BYTES = 256 * 1024


class EraseQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    erase: bool = Field(
        False, description="must be true: the contact's personal data is erased, irreversibly"
    )
    confirm: str = Field(
        "",
        max_length=20,
        description="the contact's id once more, so that no request erases by accident",
    )


class ErasureOut(BaseModel):
    """What was erased: counts only."""

    contact_id: int
    merged_ids: list[int]
    erased_at: datetime
    counts: dict[str, int] = Field(
        description="records, identities, conversations, interactions, leads, tasks, "
        "outbox_items, outbox_cancelled, notifications, routing_decisions, "
        "quarantined_messages, audit_entries_scrubbed"
    )
    attachments_deleted: int
    attachments_kept: int = Field(
        description="files left in place because another contact's interaction holds them"
    )
    attachments_failed: int = Field(description="files the store failed to delete (logged)")


@routes.get(
    "/api/v1/contacts/{id}/export",
    summary="Everything held on a contact as a zip archive (contact.json and the files)",
    roles=ADMINS,
)
async def export_contact(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    contact_id = call.path_int("id")
    store = call.request.app[ATTACHMENTS]
    # Spooled to a temporary file, deleted when closed: a long history never sits in memory.
    spool = await asyncio.to_thread(tempfile.TemporaryFile)
    try:
        async with call.sessions() as session:
            summary = await privacy_export.export_contact(session, store, contact_id, spool)
        async with call.sessions() as session, session.begin():
            await privacy_export.record_export(session, call.actor, summary)
        size = await asyncio.to_thread(spool.seek, 0, 2)
        await asyncio.to_thread(spool.seek, 0)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{summary.filename}"',
                "Cache-Control": "private, no-store",
            }
        )
        response.content_length = size
        await response.prepare(call.request)
        while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(spool.close)


@routes.delete(
    "/api/v1/contacts/{id}",
    summary="Erase a contact's personal data (and its merged records'); needs "
    "erase=true&confirm=<id>; irreversible",
    roles=ADMINS,
    query=EraseQuery,
    response=ErasureOut,
)
async def erase_contact(call: Call[NoBody, EraseQuery]) -> ErasureOut:
    contact_id = call.path_int("id")
    if not call.query.erase:
        raise InvalidInput(
            "deleting a contact erases its personal data for good: send erase=true and "
            "confirm=<the contact's id>",
            field="erase",
        )
    if call.query.confirm != str(contact_id):
        raise InvalidInput(
            f"confirm must be the id of the contact to erase, {contact_id}", field="confirm"
        )
    report = await privacy.erase(
        call.sessions, call.request.app[ATTACHMENTS], call.actor, contact_id
    )
    erasure = report.erasure
    return ErasureOut(
        contact_id=erasure.contact_id,
        merged_ids=list(erasure.merged_ids),
        erased_at=erasure.erased_at,
        counts=erasure.counts,
        attachments_deleted=report.purge.deleted,
        attachments_kept=report.purge.kept,
        attachments_failed=report.purge.failed,
    )

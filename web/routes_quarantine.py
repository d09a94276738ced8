"""Quarantined inbound email: admins list, download, retry and discard what ingest refused."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.inbound import import_message
from core import quarantine
from core.models import Mailbox, QuarantinedMessage, QuarantineStatus
from web.api import ADMINS, ApiRoutes, Call, NoBody, PageQuery
from web.keys import ATTACHMENTS, INGEST_POLICY
from web.schemas import Page, QuarantineOut

routes = ApiRoutes(tag="quarantine")


class QuarantineQuery(PageQuery):
    status: Literal["quarantined", "ingested", "discarded"] | None = Field(
        None, description="only messages in this state"
    )


def _out(row: QuarantinedMessage) -> QuarantineOut:
    summary = quarantine.summarize(row.raw)
    return QuarantineOut(
        id=row.id,
        mailbox_id=row.mailbox_id,
        uidvalidity=row.uidvalidity,
        uid=row.uid,
        status=row.status,
        reason=row.reason,
        interaction_id=row.interaction_id,
        size=len(row.raw),
        sender=summary["from"],
        subject=summary["subject"],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@routes.get(
    "/api/v1/mailboxes/{id}/quarantine",
    summary="Messages of a mailbox that could not be ingested, newest first",
    roles=ADMINS,
    query=QuarantineQuery,
    response=Page[QuarantineOut],
)
async def list_quarantine(call: Call[NoBody, QuarantineQuery]) -> Page[QuarantineOut]:
    status = QuarantineStatus(call.query.status) if call.query.status else None
    async with call.sessions() as session:
        rows, next_cursor = await quarantine.list_quarantined(
            session,
            call.path_int("id"),
            status=status,
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
    return Page[QuarantineOut](items=[_out(row) for row in rows], next_cursor=next_cursor)


@routes.get(
    "/api/v1/quarantine/{id}/raw",
    summary="Download a quarantined message as it was received (message/rfc822)",
    roles=ADMINS,
)
async def download_raw(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        row = await quarantine.get_quarantined(session, call.path_int("id"))
    return web.Response(
        body=row.raw,
        content_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="quarantine-{row.id}.eml"'},
    )


@routes.post(
    "/api/v1/quarantine/{id}/retry",
    summary="Import a quarantined message again; it is ingested, or stays with the new reason",
    roles=ADMINS,
    response=QuarantineOut,
    errors=(409,),
)
async def retry(call: Call[NoBody, NoBody]) -> QuarantineOut:
    settings = call.settings
    store = call.request.app[ATTACHMENTS]
    policy = call.request.app[INGEST_POLICY]

    async def reimport(session: AsyncSession, row: QuarantinedMessage) -> None:
        mailbox = await session.get(Mailbox, row.mailbox_id)
        if mailbox is None:  # pragma: no cover - the row is deleted with its mailbox
            raise RuntimeError("quarantined message without a mailbox")
        await import_message(
            session,
            mailbox,
            row.uidvalidity,
            row.uid,
            row.raw,
            store,
            policy,
            max_attachment_bytes=settings.max_attachment_bytes,
        )

    async with call.sessions() as session, session.begin():
        row = await quarantine.retry(session, call.actor, call.path_int("id"), reimport)
        return _out(row)


@routes.post(
    "/api/v1/quarantine/{id}/discard",
    summary="Give up on a quarantined message (its bytes stay downloadable)",
    roles=ADMINS,
    response=QuarantineOut,
    errors=(409,),
)
async def discard(call: Call[NoBody, NoBody]) -> QuarantineOut:
    async with call.sessions() as session, session.begin():
        row = await quarantine.discard(session, call.actor, call.path_int("id"))
        return _out(row)

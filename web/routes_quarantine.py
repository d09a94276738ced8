"""Quarantine, for every channel: admins list, download, retry and discard what ingest refused.

Generic: a held item names its channel and account; the channel (from the registry) says how
its raw bytes read (sender, subject, media type) and retries it through its own import.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel
from channels.registry import ChannelRegistry
from core import quarantine
from core.channel_accounts import get_account, view_without_secrets
from core.errors import Conflict
from core.models import QuarantinedMessage, QuarantineStatus
from web.api import ADMINS, ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.keys import REGISTRY, SERVICES
from web.schemas import Page, QuarantineOut

routes = ApiRoutes(tag="quarantine")


class QuarantineQuery(PageQuery):
    channel: str | None = Field(None, max_length=40, description="only this channel's items")
    account_id: RecordId | None = Field(None, description="only this channel account's items")
    status: Literal["quarantined", "ingested", "discarded"] | None = Field(
        None, description="only items in this state"
    )


def _registry(call: Call[Any, Any]) -> ChannelRegistry:
    return call.request.app[REGISTRY]


def _out(registry: ChannelRegistry, row: QuarantinedMessage) -> QuarantineOut:
    channel = registry.get(row.channel)
    sender, subject = channel.describe_quarantined(row.raw) if channel else ("", "")
    return QuarantineOut(
        id=row.id,
        channel=row.channel,
        account_id=row.account_id,
        reference=row.reference,
        status=row.status,
        reason=row.reason,
        interaction_id=row.interaction_id,
        size=len(row.raw),
        sender=sender,
        subject=subject,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@routes.get(
    "/api/v1/quarantine",
    summary="Inbound items channels could not ingest, newest first (filters: channel, "
    "account_id, status)",
    roles=ADMINS,
    query=QuarantineQuery,
    response=Page[QuarantineOut],
)
async def list_quarantine(call: Call[NoBody, QuarantineQuery]) -> Page[QuarantineOut]:
    status = QuarantineStatus(call.query.status) if call.query.status else None
    async with call.sessions() as session:
        rows, next_cursor = await quarantine.list_quarantined(
            session,
            channel=call.query.channel,
            account_id=call.query.account_id,
            status=status,
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
    registry = _registry(call)
    return Page[QuarantineOut](items=[_out(registry, row) for row in rows], next_cursor=next_cursor)


@routes.get(
    "/api/v1/quarantine/{id}/raw",
    summary="Download a quarantined item as it was received (email: message/rfc822)",
    roles=ADMINS,
)
async def download_raw(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session:
        row = await quarantine.get_quarantined(session, call.path_int("id"))
    channel = _registry(call).get(row.channel)
    media_type = channel.quarantine_media_type if channel else Channel.quarantine_media_type
    extension = channel.quarantine_extension if channel else Channel.quarantine_extension
    return web.Response(
        body=row.raw,
        content_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="quarantine-{row.id}.{extension}"'},
    )


@routes.post(
    "/api/v1/quarantine/{id}/retry",
    summary="Import a quarantined item again through its channel; it is ingested, or stays "
    "with the new reason",
    roles=ADMINS,
    response=QuarantineOut,
    errors=(409,),
)
async def retry(call: Call[NoBody, NoBody]) -> QuarantineOut:
    registry = _registry(call)
    services = call.request.app[SERVICES]

    async def reimport(session: AsyncSession, row: QuarantinedMessage) -> None:
        channel = registry.get(row.channel)
        if channel is None:
            raise Conflict(f"channel {row.channel!r} is not run by this server")
        account = await get_account(session, row.account_id)
        view = view_without_secrets(account, channel.secret_fields)
        await channel.retry_quarantined(session, row, view, services)

    async with call.sessions() as session, session.begin():
        row = await quarantine.retry(session, call.actor, call.path_int("id"), reimport)
        return _out(registry, row)


@routes.post(
    "/api/v1/quarantine/{id}/discard",
    summary="Give up on a quarantined item (its bytes stay downloadable)",
    roles=ADMINS,
    response=QuarantineOut,
    errors=(409,),
)
async def discard(call: Call[NoBody, NoBody]) -> QuarantineOut:
    async with call.sessions() as session, session.begin():
        row = await quarantine.discard(session, call.actor, call.path_int("id"))
        return _out(_registry(call), row)

"""Quarantine: inbound messages that could not be ingested, kept whole for an admin.

A pull channel quarantines a message in the same transaction that moves its cursor past it,
so the message never blocks the ones behind it and is never retried by itself. An admin sees
the raw bytes and the reason, retries it (through the channel's own import path, handed in
as `Reimport`, since core does not know channels) or discards it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, NotFound
from core.event_types import QUARANTINE_CREATED, QUARANTINE_UPDATED
from core.events import Event, emit
from core.models import Mailbox, QuarantinedMessage, QuarantineStatus
from core.pagination import DEFAULT_LIMIT, keyset_page

MAX_REASON = 2000
# Enough of a message's head to show an admin its sender and subject.
_SUMMARY_BYTES = 64 * 1024

# Imports a quarantined message again; records the outcome on the row it is given.
Reimport = Callable[[AsyncSession, QuarantinedMessage], Awaitable[None]]


async def quarantine(
    session: AsyncSession,
    *,
    mailbox_id: int,
    uidvalidity: int,
    uid: int,
    raw: bytes,
    reason: str,
) -> QuarantinedMessage:
    """Keep `raw` with the reason; a message already held (same place or same bytes) is
    updated rather than held twice, e.g. after a folder was re-scanned under a new
    UIDVALIDITY."""
    row = await session.scalar(
        select(QuarantinedMessage)
        .where(
            QuarantinedMessage.mailbox_id == mailbox_id,
            QuarantinedMessage.uidvalidity == uidvalidity,
            QuarantinedMessage.uid == uid,
        )
        .limit(1)
    ) or await session.scalar(
        select(QuarantinedMessage)
        .where(QuarantinedMessage.mailbox_id == mailbox_id, QuarantinedMessage.raw == raw)
        .order_by(QuarantinedMessage.id)
        .limit(1)
    )
    if row is not None:
        row.reason = reason[:MAX_REASON]
        await session.flush()
        return row
    row = QuarantinedMessage(
        mailbox_id=mailbox_id,
        uidvalidity=uidvalidity,
        uid=uid,
        raw=raw,
        reason=reason[:MAX_REASON],
        status=QuarantineStatus.QUARANTINED,
    )
    session.add(row)
    await session.flush()
    await emit(session, Event(QUARANTINE_CREATED, {"quarantine": row.id, "mailbox": mailbox_id}))
    return row


async def held_at(
    session: AsyncSession, mailbox_id: int, uidvalidity: int, uid: int
) -> QuarantinedMessage | None:
    """The quarantine row for this place in a mailbox, if the message was ever held."""
    return await session.scalar(
        select(QuarantinedMessage).where(
            QuarantinedMessage.mailbox_id == mailbox_id,
            QuarantinedMessage.uidvalidity == uidvalidity,
            QuarantinedMessage.uid == uid,
        )
    )


async def mark_ingested(
    session: AsyncSession, row: QuarantinedMessage, interaction_id: int
) -> None:
    row.status = QuarantineStatus.INGESTED
    row.interaction_id = interaction_id
    await session.flush()
    await _emit_updated(session, row)


async def get_quarantined(session: AsyncSession, quarantine_id: int) -> QuarantinedMessage:
    row = await session.get(QuarantinedMessage, quarantine_id)
    if row is None:
        raise NotFound(f"no quarantined message {quarantine_id}")
    return row


async def list_quarantined(
    session: AsyncSession,
    mailbox_id: int,
    *,
    status: QuarantineStatus | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[QuarantinedMessage], str | None]:
    """The mailbox's quarantined messages, newest first, and the next page's cursor."""
    if await session.get(Mailbox, mailbox_id) is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    query = select(QuarantinedMessage).where(QuarantinedMessage.mailbox_id == mailbox_id)
    if status is not None:
        query = query.where(QuarantinedMessage.status == status)
    return await keyset_page(
        session,
        query,
        QuarantinedMessage.created_at,
        QuarantinedMessage.id,
        cursor=cursor,
        limit=limit,
    )


async def retry(
    session: AsyncSession, actor: Actor, quarantine_id: int, reimport: Reimport
) -> QuarantinedMessage:
    """Import the message again; it is "ingested" afterwards, or still held with the new
    reason."""
    row = await _lock(session, quarantine_id)
    if row.status != QuarantineStatus.QUARANTINED:
        raise Conflict(f"this message is {row.status} already")
    previous_reason = row.reason
    await reimport(session, row)
    await session.refresh(row)
    await audit.record(
        session,
        actor,
        "quarantine.retry",
        "quarantine",
        row.id,
        {
            "mailbox": row.mailbox_id,
            "outcome": row.status,
            "interaction": row.interaction_id,
            "previous_reason": previous_reason,
            "reason": row.reason,
        },
    )
    return row


async def discard(session: AsyncSession, actor: Actor, quarantine_id: int) -> QuarantinedMessage:
    """Give up on the message; its bytes stay downloadable. Discarding twice is a no-op."""
    row = await _lock(session, quarantine_id)
    if row.status == QuarantineStatus.DISCARDED:
        return row
    if row.status == QuarantineStatus.INGESTED:
        raise Conflict("this message was ingested; there is nothing to discard")
    row.status = QuarantineStatus.DISCARDED
    await session.flush()
    await audit.record(
        session, actor, "quarantine.discard", "quarantine", row.id, {"mailbox": row.mailbox_id}
    )
    await _emit_updated(session, row)
    return row


async def _lock(session: AsyncSession, quarantine_id: int) -> QuarantinedMessage:
    # Locked so two admins retrying at once cannot both import (PostgreSQL; SQLite has one
    # writer anyway).
    row = await session.get(
        QuarantinedMessage, quarantine_id, with_for_update=True, populate_existing=True
    )
    if row is None:
        raise NotFound(f"no quarantined message {quarantine_id}")
    return row


async def _emit_updated(session: AsyncSession, row: QuarantinedMessage) -> None:
    await emit(
        session,
        Event(QUARANTINE_UPDATED, {"quarantine": row.id, "mailbox": row.mailbox_id}),
    )


def summarize(raw: bytes) -> dict[str, str]:
    """The sender and subject as the message's head states them, for listing; best effort."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw[:_SUMMARY_BYTES])
        return {name: str(headers.get(name, "") or "")[:500] for name in ("from", "subject")}
    except Exception:
        # The message is in quarantine because it is broken; listing it must not break too.
        return {"from": "", "subject": ""}

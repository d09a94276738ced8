"""Quarantine: inbound input a channel could not ingest, kept whole for an admin.

Generic over channels: a row is the channel, the account it came in through, the channel's
`reference` of where it came from (unique per account: the email poller's is
`<uidvalidity>:<uid>`), the raw bytes and the reason.

A pull channel quarantines an item in the same transaction that moves its cursor past it, so
the item never blocks the ones behind it and is never retried by itself. An admin lists the
held items (by channel, account, status), downloads the raw bytes, retries one (through the
channel's own import path, handed in as `Reimport`, since core does not know channels) or
discards it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, NotFound
from core.event_types import QUARANTINE_CREATED, QUARANTINE_UPDATED
from core.events import Event, emit
from core.identity import Address
from core.models import ChannelAccount, QuarantinedMessage, QuarantineStatus
from core.pagination import DEFAULT_LIMIT, keyset_page

MAX_REASON = 2000
MAX_REFERENCE = 200

# Imports a quarantined item again; records the outcome on the row it is given.
Reimport = Callable[[AsyncSession, QuarantinedMessage], Awaitable[None]]


async def quarantine(
    session: AsyncSession,
    *,
    channel: str,
    account_id: int,
    reference: str,
    raw: bytes,
    reason: str,
    sender: Address | None = None,
) -> QuarantinedMessage:
    """Keep `raw` with the reason (and who it is from, if the channel can tell); an item
    already held (same reference, or the same bytes
    from the same account) is updated rather than held twice, e.g. after an email folder was
    re-scanned under a new UIDVALIDITY."""
    reference = reference[:MAX_REFERENCE]
    row = await held_at(session, account_id, reference) or await session.scalar(
        select(QuarantinedMessage)
        .where(QuarantinedMessage.account_id == account_id, QuarantinedMessage.raw == raw)
        .order_by(QuarantinedMessage.id)
        .limit(1)
    )
    if row is not None:
        row.reason = reason[:MAX_REASON]
        await session.flush()
        return row
    row = QuarantinedMessage(
        channel=channel,
        account_id=account_id,
        reference=reference,
        raw=raw,
        reason=reason[:MAX_REASON],
        sender_kind=str(sender.kind) if sender is not None else None,
        sender_address=sender.value[:320] if sender is not None else None,
        status=QuarantineStatus.QUARANTINED,
    )
    session.add(row)
    await session.flush()
    await emit(session, Event(QUARANTINE_CREATED, _ids(row)))
    return row


async def held_at(
    session: AsyncSession, account_id: int, reference: str
) -> QuarantinedMessage | None:
    """The quarantine row of this place of an account, if its item was ever held."""
    return await session.scalar(
        select(QuarantinedMessage).where(
            QuarantinedMessage.account_id == account_id,
            QuarantinedMessage.reference == reference[:MAX_REFERENCE],
        )
    )


async def held_among(
    session: AsyncSession, account_id: int, references: Sequence[str]
) -> dict[str, QuarantinedMessage]:
    """`held_at` for many places of an account at once (a poller's batch): the quarantine
    rows by reference, for those that have one."""
    wanted = [reference[:MAX_REFERENCE] for reference in references]
    if not wanted:
        return {}
    rows = await session.scalars(
        select(QuarantinedMessage).where(
            QuarantinedMessage.account_id == account_id,
            QuarantinedMessage.reference.in_(wanted),
        )
    )
    return {row.reference: row for row in rows}


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
    *,
    channel: str | None = None,
    account_id: int | None = None,
    status: QuarantineStatus | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[QuarantinedMessage], str | None]:
    """Held items, newest first, and the next page's cursor; 404 for an unknown account."""
    query = select(QuarantinedMessage)
    if account_id is not None:
        if await session.get(ChannelAccount, account_id) is None:
            raise NotFound(f"no channel account {account_id}", field="account_id")
        query = query.where(QuarantinedMessage.account_id == account_id)
    if channel is not None:
        query = query.where(QuarantinedMessage.channel == channel)
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
    """Import the item again; it is "ingested" afterwards, or still held with the new
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
            "channel": row.channel,
            "account": row.account_id,
            "outcome": row.status,
            "interaction": row.interaction_id,
            "previous_reason": previous_reason,
            "reason": row.reason,
        },
    )
    return row


async def discard(session: AsyncSession, actor: Actor, quarantine_id: int) -> QuarantinedMessage:
    """Give up on the item; its bytes stay downloadable. Discarding twice is a no-op."""
    row = await _lock(session, quarantine_id)
    if row.status == QuarantineStatus.DISCARDED:
        return row
    if row.status == QuarantineStatus.INGESTED:
        raise Conflict("this message was ingested; there is nothing to discard")
    row.status = QuarantineStatus.DISCARDED
    await session.flush()
    await audit.record(
        session,
        actor,
        "quarantine.discard",
        "quarantine",
        row.id,
        {"channel": row.channel, "account": row.account_id},
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


def _ids(row: QuarantinedMessage) -> dict[str, int]:
    return {"quarantine": row.id, "channel_account": row.account_id}


async def _emit_updated(session: AsyncSession, row: QuarantinedMessage) -> None:
    await emit(session, Event(QUARANTINE_UPDATED, _ids(row)))

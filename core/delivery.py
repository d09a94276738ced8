"""Delivery status of outbound messages, for every channel: receipts, what people see, retry.

An outbox item keeps our side's status (queued, sending, sent, failed: core/outbox.py) and the
provider's latest receipt (sent, delivered, read, failed) with its error code. Every channel
reports what its provider says through one function, `record_receipt` (Twilio's status
callbacks, email bounces, a test channel), with the provider's message id, the receipt, the
error code and text and the time.

Invariants:
- Receipts apply by rank: sent < delivered = failed < read. A receipt of a rank not above the
  stored one changes nothing, so a repeated callback stores once and an out-of-order "sent"
  never overwrites "delivered" or "read" (nor "delivered" a failure, nor the reverse).
- A failure receipt fails the item (status "failed", the provider's code and text), the one
  move out of "sent" besides an operator's retry: later knowledge of the same message.
- A receipt that names the outbox item and attempt (Twilio's callback address carries both)
  may arrive before the worker recorded the provider's answer: it moves the item from
  "sending" to what the provider says, with the provider's id, and the worker's late result
  is then fenced off like any stale attempt's.
- `delivery_state` is what a person sees, one word: queued, sending, sent, delivered, read,
  failed.
- `retry_failed` puts a failed item back in the queue for whoever may see its conversation,
  audited; the retry schedule starts over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, Forbidden, NotFound
from core.event_types import OUTBOX_BY_STATUS, OUTBOX_QUEUED
from core.events import Event, emit
from core.models import OutboxItem, OutboxStatus, Receipt, utcnow
from core.outbox import announce

RANK: Final[dict[str, int]] = {
    Receipt.SENT: 1,
    Receipt.DELIVERED: 2,
    Receipt.FAILED: 2,
    Receipt.READ: 3,
}
MAX_ERROR = 2000


def outranks(new: str, current: str | None) -> bool:
    """Whether receipt `new` tells more than the stored `current` (None: no receipt yet)."""
    return RANK[new] > (RANK.get(current, 0) if current is not None else 0)


def delivery_state(status: str, receipt: str | None) -> str:
    """The one word a person sees for an outbound message."""
    if status == OutboxStatus.FAILED or receipt == Receipt.FAILED:
        return "failed"
    if receipt in (Receipt.DELIVERED, Receipt.READ):
        return str(receipt)
    if status == OutboxStatus.SENT:
        return "sent"
    return str(status)


async def record_receipt(
    session: AsyncSession,
    *,
    channel: str,
    provider_id: str | None,
    receipt: Receipt,
    error_code: str | None = None,
    error_text: str | None = None,
    at: datetime | None = None,
    outbox_id: int | None = None,
    attempt: int | None = None,
) -> bool:
    """Apply a provider's receipt for the message it knows as `provider_id` on `channel`, in
    the caller's transaction; whether the item changed.

    `outbox_id` (and `attempt`) name the item when the provider echoes them back; then
    `provider_id` must match the stored one, or the item must still be in that attempt's
    "sending" (the receipt outran the worker). Unknown messages change nothing.
    """
    item = await _find(session, channel, provider_id, outbox_id, attempt, receipt)
    if item is None or not outranks(receipt, item.receipt):
        return False
    at = at or utcnow()
    values: dict[str, object] = {"receipt": receipt, "receipt_at": at, "updated_at": utcnow()}
    if receipt == Receipt.FAILED:
        if item.status not in (OutboxStatus.SENDING, OutboxStatus.SENT):
            return False
        reason = error_text or "the provider could not deliver the message"
        values.update(
            status=OutboxStatus.FAILED,
            error_code=error_code[:40] if error_code else None,
            last_error=(f"{error_code}: {reason}" if error_code else reason)[:MAX_ERROR],
        )
    elif item.status == OutboxStatus.SENDING and provider_id is not None:
        # The provider has it: the attempt in flight succeeded, whatever its worker records.
        values.update(status=OutboxStatus.SENT, provider_id=provider_id, sent_at=at)
    result = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.id == item.id,
            OutboxItem.status == item.status,
            OutboxItem.attempts == item.attempts,
            # Still the rank we read: a concurrent receipt of a higher rank wins.
            (OutboxItem.receipt == item.receipt)
            if item.receipt is not None
            else OutboxItem.receipt.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    status = values.get("status")
    if status is not None:
        await emit(
            session, Event(OUTBOX_BY_STATUS[str(status)], {"outbox": item.id}, {"channel": channel})
        )
    await announce(session, item.id, item.conversation_id, item.channel)
    return True


async def _find(
    session: AsyncSession,
    channel: str,
    provider_id: str | None,
    outbox_id: int | None,
    attempt: int | None,
    receipt: Receipt,
) -> OutboxItem | None:
    if outbox_id is not None:
        item = await session.get(OutboxItem, outbox_id, populate_existing=True)
        if item is None or item.channel != channel:
            return None
        if item.provider_id is not None:
            return item if item.provider_id == provider_id else None
        in_flight = item.status == OutboxStatus.SENDING and (
            attempt is None or item.attempts == attempt
        )
        # A success needs the provider's id to record; a failure (a bounce) does not.
        known = provider_id is not None or receipt == Receipt.FAILED
        return item if in_flight and known else None
    if provider_id is None:
        return None
    found: OutboxItem | None = await session.scalar(
        select(OutboxItem)
        .where(OutboxItem.channel == channel, OutboxItem.provider_id == provider_id)
        .order_by(OutboxItem.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return found


async def retry_failed(session: AsyncSession, actor: Actor, outbox_id: int) -> OutboxItem:
    """Queue a failed message again, for those who may see its conversation; 409 unless it
    failed. The schedule starts over; the old attempt's receipts no longer apply."""
    from core.conversations import get_conversation  # conversations enqueue through outbox

    item = await session.get(OutboxItem, outbox_id, with_for_update=True, populate_existing=True)
    if item is None:
        raise NotFound(f"no outbox item {outbox_id}")
    if item.conversation_id is not None:
        await get_conversation(session, actor, item.conversation_id)
    elif not actor.is_supervisor:
        raise Forbidden("only supervisors may retry messages outside a conversation")
    if item.status != OutboxStatus.FAILED:
        raise Conflict(f"the message is {item.status}; only failed messages can be retried")
    now = utcnow()
    previous = {"error": item.last_error, "error_code": item.error_code}
    item.status = OutboxStatus.QUEUED
    item.next_attempt_at = now
    item.requeued_at = now
    item.attempts_before_requeue = item.attempts
    item.receipt = None
    item.receipt_at = None
    item.error_code = None
    item.last_error = None
    item.provider_id = None
    item.sent_at = None
    await session.flush()
    await audit.record(
        session,
        actor,
        "outbox.retry",
        "outbox",
        item.id,
        {"conversation": item.conversation_id, "channel": item.channel, **previous},
    )
    await emit(session, Event(OUTBOX_QUEUED, {"outbox": item.id}, {"channel": item.channel}))
    await announce(session, item.id, item.conversation_id, item.channel)
    return item

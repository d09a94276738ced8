"""The outbox: every outbound message is committed here before any channel sends it.

Status moves only forward: queued -> sending -> sent | failed. A worker claims due items
(FOR UPDATE SKIP LOCKED on PostgreSQL), which moves them to "sending" with a lease; the
attempt number taken at claim time fences the result, so a worker that died or stalled can
never overwrite what a later attempt recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory, transaction
from core.event_types import OUTBOX_BY_STATUS, OUTBOX_FAILED, OUTBOX_QUEUED
from core.events import Event, EventBus, emit
from core.logfields import log_fields
from core.models import OutboxItem, OutboxStatus, utcnow
from core.sql import supports_skip_locked

log = logging.getLogger(__name__)

_OPEN = (OutboxStatus.QUEUED, OutboxStatus.SENDING)
# The first retry waits up to this long; each further one up to twice as long as the last.
RETRY_BASE_SECONDS = 2.0


class TransientSendError(Exception):
    """Try again later (SMTP 4xx, HTTP 5xx, timeouts); `retry_after` if the provider said."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(Exception):
    """Never going to work (SMTP 5xx, invalid recipient); the reason is shown to operators."""


@dataclass(frozen=True)
class Delivery:
    """One claimed attempt to send an outbox item; what a Sender gets."""

    outbox_id: int
    attempt: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    conversation_id: int | None


class Sender(ABC):
    """Delivers outbox items of one channel; policy (timeouts, logging) lives here once."""

    timeout_seconds: float = 60.0

    @final
    async def send(self, delivery: Delivery) -> str | None:
        """Deliver and return the provider's message id, or raise a *SendError."""
        try:
            return await asyncio.wait_for(self.do_send(delivery), self.timeout_seconds)
        except TimeoutError:
            raise TransientSendError(f"timed out after {self.timeout_seconds:g}s") from None

    @abstractmethod
    async def do_send(self, delivery: Delivery) -> str | None:
        """Channel-specific delivery."""

    async def is_ready(self) -> bool:
        """Whether the channel can send now; items of a channel that is not configured yet
        stay queued (not failed) until it is."""
        return True


async def enqueue(
    session: AsyncSession,
    *,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    conversation_id: int | None = None,
    interaction_id: int | None = None,
) -> OutboxItem:
    item = OutboxItem(
        channel=channel,
        recipient=recipient,
        payload=payload,
        conversation_id=conversation_id,
        interaction_id=interaction_id,
        status=OutboxStatus.QUEUED,
        next_attempt_at=utcnow(),
    )
    session.add(item)
    await session.flush()
    await emit(session, Event(OUTBOX_QUEUED, {"outbox": item.id}, {"channel": channel}))
    return item


async def claim_due(
    session: AsyncSession, channels: list[str], limit: int, lease: timedelta
) -> list[Delivery]:
    """Move up to `limit` due items of these channels to "sending" under a lease."""
    now = utcnow()
    query = (
        select(OutboxItem)
        .where(
            OutboxItem.status.in_(_OPEN),
            OutboxItem.next_attempt_at <= now,
            OutboxItem.channel.in_(channels),
        )
        .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
        .limit(limit)
    )
    if supports_skip_locked(session):
        query = query.with_for_update(skip_locked=True)
    items = list(await session.scalars(query))
    deliveries = []
    for item in items:
        item.status = OutboxStatus.SENDING
        item.attempts += 1
        item.next_attempt_at = now + lease
        deliveries.append(
            Delivery(
                item.id,
                item.attempts,
                item.channel,
                item.recipient,
                dict(item.payload),
                item.conversation_id,
            )
        )
    await session.flush()
    return deliveries


async def _finish(session: AsyncSession, delivery: Delivery, **values: Any) -> bool:
    """Record an attempt's outcome unless a later attempt or a final status got there first."""
    result = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.id == delivery.outbox_id,
            OutboxItem.status == OutboxStatus.SENDING,
            OutboxItem.attempts == delivery.attempt,
        )
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    recorded = bool(getattr(result, "rowcount", 0))
    if recorded:
        status = values.get("status", OutboxStatus.SENDING)
        await emit(
            session,
            Event(
                OUTBOX_BY_STATUS[status],
                {"outbox": delivery.outbox_id},
                {"channel": delivery.channel},
            ),
        )
    return recorded


async def mark_sent(session: AsyncSession, delivery: Delivery, provider_id: str | None) -> bool:
    return await _finish(
        session, delivery, status=OutboxStatus.SENT, provider_id=provider_id, sent_at=utcnow()
    )


async def mark_failed(session: AsyncSession, delivery: Delivery, reason: str) -> bool:
    return await _finish(session, delivery, status=OutboxStatus.FAILED, last_error=reason[:2000])


async def mark_retry(
    session: AsyncSession,
    delivery: Delivery,
    reason: str,
    *,
    max_attempts: int,
    retry_after: float | None = None,
    retry_base_seconds: float = RETRY_BASE_SECONDS,
) -> bool:
    """Schedule another attempt with exponential backoff, or fail after `max_attempts`."""
    if delivery.attempt >= max_attempts:
        return await mark_failed(
            session, delivery, f"gave up after {delivery.attempt} attempts: {reason}"
        )
    delay = (
        retry_after
        if retry_after is not None
        else backoff_seconds(delivery.attempt, base=retry_base_seconds)
    )
    return await _finish(
        session,
        delivery,
        last_error=reason[:2000],
        next_attempt_at=utcnow() + timedelta(seconds=delay),
    )


async def record_bounce(session: AsyncSession, outbox_id: int, reason: str) -> bool:
    """A bounce came back for a message we handed over: it failed after all.

    The only move out of "sent": a delivery report is later, better knowledge of the same
    attempt, not a step back. Returns whether the item changed.
    """
    result = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.id == outbox_id,
            OutboxItem.status.in_((OutboxStatus.SENDING, OutboxStatus.SENT)),
        )
        .values(status=OutboxStatus.FAILED, last_error=reason[:2000], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = bool(getattr(result, "rowcount", 0))
    if changed:
        await emit(session, Event(OUTBOX_FAILED, {"outbox": outbox_id}, {"reason": "bounce"}))
    return changed


def backoff_seconds(attempt: int, base: float = RETRY_BASE_SECONDS, cap: float = 900.0) -> float:
    """Exponential backoff with jitter: up to base, 2*base, 4*base … seconds, capped at 15 min."""
    return random.uniform(base / 2, min(cap, base * 2 ** (attempt - 1)))


async def outbox_depth(session: AsyncSession) -> dict[str, int]:
    """Items not yet sent or failed, per channel."""
    rows = await session.execute(
        select(OutboxItem.channel, func.count())
        .where(OutboxItem.status.in_(_OPEN))
        .group_by(OutboxItem.channel)
    )
    return dict(rows.all())


class OutboxWorker:
    """Claims due items and hands them to the channel's sender; one per server process."""

    def __init__(
        self,
        factory: SessionFactory,
        senders: Mapping[str, Sender],
        bus: EventBus | None = None,
        *,
        poll_seconds: float = 1.0,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        batch_size: int = 20,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
    ) -> None:
        self._factory = factory
        self._senders = dict(senders)
        self._bus = bus
        self._poll_seconds = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._max_attempts = max_attempts
        self._batch_size = batch_size
        self._retry_base_seconds = retry_base_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Work until cancelled; wakes early when something is queued in this process."""
        if self._bus is not None:
            self._bus.add_listener(self._on_event)
        while True:
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox worker pass failed")
                handled = 0
            if handled < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    def _on_event(self, event: Event) -> None:
        if event.type == OUTBOX_QUEUED and event.labels.get("channel") in self._senders:
            self._wake.set()

    async def run_once(self) -> int:
        """Claim one batch and deliver it; return how many items were attempted."""
        channels = [name for name, sender in self._senders.items() if await sender.is_ready()]
        if not channels:
            return 0
        async with transaction(self._factory) as session:
            deliveries = await claim_due(session, channels, self._batch_size, self._lease)
        await asyncio.gather(*(self._deliver(delivery) for delivery in deliveries))
        return len(deliveries)

    async def _deliver(self, delivery: Delivery) -> None:
        sender = self._senders[delivery.channel]
        record: Callable[[AsyncSession], Awaitable[bool]]
        try:
            provider_id = await sender.send(delivery)
            record = partial(mark_sent, delivery=delivery, provider_id=provider_id)
            outcome = "sent"
        except PermanentSendError as exc:
            record = partial(mark_failed, delivery=delivery, reason=str(exc))
            outcome = "failed"
        except Exception as exc:
            if not isinstance(exc, TransientSendError):
                # A sender's unexpected error is treated as transient: retried, then failed.
                log.exception("sender raised", extra=log_fields(outbox_id=delivery.outbox_id))
            retry_after = exc.retry_after if isinstance(exc, TransientSendError) else None
            record = partial(
                mark_retry,
                delivery=delivery,
                reason=str(exc) or type(exc).__name__,
                max_attempts=self._max_attempts,
                retry_after=retry_after,
                retry_base_seconds=self._retry_base_seconds,
            )
            outcome = "retry"
        async with transaction(self._factory) as session:
            await record(session)
        log.info(
            "outbox attempt",
            extra=log_fields(
                outbox_id=delivery.outbox_id,
                attempt=delivery.attempt,
                channel=delivery.channel,
                outcome=outcome,
            ),
        )

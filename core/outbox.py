"""The outbox: every outbound message is committed here before any channel sends it.

Status moves only forward: queued -> sending -> sent | failed. A worker claims due items
(FOR UPDATE SKIP LOCKED on PostgreSQL), which moves them to "sending" with a lease; the
attempt number taken at claim time fences the result, so a worker that died or stalled can
never overwrite what a later attempt recorded. Two moves go back on purpose, each a later
truth about the same message: a provider's failure receipt (or an email bounce) fails a sent
item (core/delivery.py), and an operator's retry puts a failed item back in the queue.

Transient failures are retried on a `RetrySchedule` that spans hours (a provider's outage, a
full disk on the mail server): exponential with "equal jitter" (each wait at least half its
nominal length, so the schedule's span has a floor), capped, and given up after
`max_attempts` or `give_up_after`, whichever comes first. Every recorded result says what it
stored ("sent", "retry", "failed", or nothing when a later attempt got there first), and that
is what the log line of the attempt says.

Each change a person would see announces itself with a `delivery.updated` event carrying the
conversation's audience, so consoles update live.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory, transaction
from core.event_types import DELIVERY_UPDATED, OUTBOX_BY_STATUS, OUTBOX_QUEUED
from core.events import Event, EventBus, emit
from core.logfields import log_fields
from core.models import Conversation, OutboxItem, OutboxStatus, utcnow
from core.sql import supports_skip_locked
from core.visibility import Placement, audience_labels
from core.workers import wait_for_any

log = logging.getLogger(__name__)

_OPEN = (OutboxStatus.QUEUED, OutboxStatus.SENDING)
# Pollers' backoff (channels/base.py, the IMAP poller): the first wait is up to this long.
RETRY_BASE_SECONDS = 2.0
# Beyond this many doublings every wait is the cap anyway (and 2**n stays a small float).
_MAX_DOUBLINGS = 40


@dataclass(frozen=True)
class RetrySchedule:
    """When the outbox tries a message again after a transient failure, and when it stops.

    Attempt n (1-based, counted from when the message was queued or an operator retried it)
    is followed by a wait of d/2 + uniform(0, d/2), d = min(cap, base * 2**(n-1)). The message
    fails after `max_attempts` attempts, or at the first failure `give_up_after_seconds` or
    more after it was queued; no wait reaches past that point, so the last attempt happens
    at it. The defaults span hours: at least `shortest_span()` (about 3.5 h) before giving
    up on a provider that keeps failing.
    """

    base_seconds: float = 30.0
    cap_seconds: float = 1800.0
    max_attempts: int = 20
    give_up_after_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("the retry base must be positive and the cap at least the base")
        if self.max_attempts < 1 or self.give_up_after_seconds <= 0:
            raise ValueError("max_attempts and give_up_after must be positive")

    def nominal(self, attempt: int) -> float:
        """The nominal wait after attempt `attempt` (before jitter)."""
        doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
        return float(min(self.cap_seconds, self.base_seconds * 2.0**doublings))

    def delay(self, attempt: int) -> float:
        nominal = self.nominal(attempt)
        return nominal / 2 + random.uniform(0, nominal / 2)

    def shortest_span(self) -> float:
        """The least time from the first attempt to giving up, whatever the jitter draws."""
        waits = sum(self.nominal(n) / 2 for n in range(1, self.max_attempts))
        return min(waits, self.give_up_after_seconds)

    def next_attempt(
        self,
        attempt: int,
        queued_at: datetime,
        now: datetime,
        retry_after: float | None = None,
    ) -> datetime | None:
        """When to try again after attempt `attempt` failed, or None to give up."""
        deadline = queued_at + timedelta(seconds=self.give_up_after_seconds)
        if attempt >= self.max_attempts or now >= deadline:
            return None
        wait = retry_after if retry_after is not None else self.delay(attempt)
        return min(now + timedelta(seconds=max(wait, 0.0)), deadline)


class TransientSendError(Exception):
    """Try again later (SMTP 4xx, HTTP 5xx, timeouts); `retry_after` if the provider said,
    `code` the provider's error code if it gave one."""

    def __init__(
        self, reason: str, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.code = code


class PermanentSendError(Exception):
    """Never going to work (SMTP 5xx, invalid recipient); the reason is shown to operators,
    with the provider's error `code` (Twilio's 21211) when it gave one."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Delivery:
    """One claimed attempt to send an outbox item; what a Sender gets."""

    outbox_id: int
    attempt: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    conversation_id: int | None
    # Where this round of attempts began (queued, or retried by an operator): the schedule
    # counts attempts and time from there.
    attempts_before: int = 0
    queued_at: datetime | None = None

    @property
    def round_attempt(self) -> int:
        """The attempt's number within its round (1 for the first)."""
        return self.attempt - self.attempts_before


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


async def announce(
    session: AsyncSession, outbox_id: int, conversation_id: int | None, channel: str
) -> None:
    """Tell the consoles that may see the conversation that a message's delivery changed."""
    placement = None
    if conversation_id is not None:
        row = (
            await session.execute(
                select(Conversation.queue_id, Conversation.assignee_id).where(
                    Conversation.id == conversation_id
                )
            )
        ).first()
        placement = Placement(row.queue_id, row.assignee_id) if row is not None else None
    ids = {"outbox": outbox_id}
    labels = {"channel": channel}
    if conversation_id is not None and placement is not None:
        ids["conversation"] = conversation_id
        labels.update(audience_labels([placement]))
    # Without a conversation, the labels name no audience: supervisors only.
    await emit(session, Event(DELIVERY_UPDATED, ids, labels))


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
                attempts_before=item.attempts_before_requeue,
                queued_at=item.requeued_at or item.created_at,
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
        await announce(session, delivery.outbox_id, delivery.conversation_id, delivery.channel)
    return recorded


async def mark_sent(session: AsyncSession, delivery: Delivery, provider_id: str | None) -> bool:
    return await _finish(
        session, delivery, status=OutboxStatus.SENT, provider_id=provider_id, sent_at=utcnow()
    )


async def mark_failed(
    session: AsyncSession, delivery: Delivery, reason: str, error_code: str | None = None
) -> bool:
    return await _finish(
        session,
        delivery,
        status=OutboxStatus.FAILED,
        last_error=reason[:2000],
        error_code=error_code[:40] if error_code else None,
    )


async def record_retry(
    session: AsyncSession,
    delivery: Delivery,
    reason: str,
    schedule: RetrySchedule,
    *,
    retry_after: float | None = None,
    error_code: str | None = None,
) -> str | None:
    """Schedule the next attempt, or fail the item when the schedule gives up. Returns what
    was stored ("retry" or "failed"), or None if a later attempt got there first."""
    now = utcnow()
    next_at = schedule.next_attempt(
        delivery.round_attempt, delivery.queued_at or now, now, retry_after
    )
    if next_at is None:
        failed = await mark_failed(
            session,
            delivery,
            f"gave up after {delivery.round_attempt} attempts: {reason}",
            error_code,
        )
        return OutboxStatus.FAILED if failed else None
    retried = await _finish(
        session,
        delivery,
        last_error=reason[:2000],
        error_code=error_code[:40] if error_code else None,
        next_attempt_at=next_at,
    )
    return "retry" if retried else None


async def mark_retry(
    session: AsyncSession,
    delivery: Delivery,
    reason: str,
    *,
    max_attempts: int,
    retry_after: float | None = None,
    retry_base_seconds: float = RETRY_BASE_SECONDS,
) -> bool:
    """Schedule another attempt with exponential backoff, or fail after `max_attempts`;
    whether the result was recorded (`record_retry` says which)."""
    schedule = RetrySchedule(
        base_seconds=retry_base_seconds,
        cap_seconds=max(retry_base_seconds, RetrySchedule.cap_seconds),
        max_attempts=max_attempts,
    )
    return (
        await record_retry(session, delivery, reason, schedule, retry_after=retry_after) is not None
    )


def backoff_seconds(attempt: int, base: float = RETRY_BASE_SECONDS, cap: float = 900.0) -> float:
    """Exponential backoff with jitter: up to base, 2*base, 4*base … seconds, capped at 15 min."""
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    return random.uniform(base / 2, max(base / 2, min(cap, base * 2.0**doublings)))


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
        max_attempts: int | None = None,
        batch_size: int = 20,
        retry_base_seconds: float | None = None,
        schedule: RetrySchedule | None = None,
    ) -> None:
        """`schedule` says when to retry (RetrySchedule's defaults unless given);
        `max_attempts` and `retry_base_seconds` override its fields."""
        schedule = schedule or RetrySchedule()
        if retry_base_seconds is not None:
            schedule = RetrySchedule(
                base_seconds=retry_base_seconds,
                cap_seconds=max(retry_base_seconds, schedule.cap_seconds),
                max_attempts=schedule.max_attempts,
                give_up_after_seconds=schedule.give_up_after_seconds,
            )
        if max_attempts is not None:
            schedule = RetrySchedule(
                base_seconds=schedule.base_seconds,
                cap_seconds=schedule.cap_seconds,
                max_attempts=max_attempts,
                give_up_after_seconds=schedule.give_up_after_seconds,
            )
        self._factory = factory
        self._senders = dict(senders)
        self._bus = bus
        self._poll_seconds = poll_seconds
        self._lease = timedelta(seconds=lease_seconds)
        self._schedule = schedule
        self._batch_size = batch_size
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work until `stop` is set (between batches; see core.workers) or cancelled; wakes
        early when something is queued in this process."""
        stop = stop or asyncio.Event()
        if self._bus is not None:
            self._bus.add_listener(self._on_event)
        while not stop.is_set():
            # Cleared before the round, so an item queued during it wakes the next.
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("outbox worker pass failed")
                handled = 0
            if handled < self._batch_size:
                await wait_for_any(self._wake, stop, seconds=self._poll_seconds)

    @property
    def schedule(self) -> RetrySchedule:
        return self._schedule

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
        error: str | None = None
        try:
            provider_id = await sender.send(delivery)

            async def record(session: AsyncSession) -> str | None:
                sent = await mark_sent(session, delivery, provider_id)
                return OutboxStatus.SENT if sent else None

        except PermanentSendError as exc:
            error, code = str(exc), exc.code

            async def record(session: AsyncSession) -> str | None:
                failed = await mark_failed(session, delivery, str(error), code)
                return OutboxStatus.FAILED if failed else None

        except Exception as exc:
            if not isinstance(exc, TransientSendError):
                # A sender's unexpected error is treated as transient: retried, then failed.
                log.exception("sender raised", extra=log_fields(outbox_id=delivery.outbox_id))
            transient = exc if isinstance(exc, TransientSendError) else None
            error = str(exc) or type(exc).__name__
            record = partial(
                record_retry,
                delivery=delivery,
                reason=error,
                schedule=self._schedule,
                retry_after=transient.retry_after if transient else None,
                error_code=transient.code if transient else None,
            )
        async with transaction(self._factory) as session:
            outcome = await record(session)
        # What the log says is what was stored: "sent", "retry", "failed", or "superseded"
        # when a later attempt (or a receipt) had already decided the item.
        log.info(
            "outbox attempt",
            extra=log_fields(
                outbox_id=delivery.outbox_id,
                attempt=delivery.attempt,
                channel=delivery.channel,
                outcome=outcome or "superseded",
                error=error,
            ),
        )

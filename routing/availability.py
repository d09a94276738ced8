"""Whether a live chat can be answered now: what the website chat widget tells visitors.

A queue takes chats when it is open (its business hours, if it has them) and one of its
members is available; work without a queue, when anyone is available. Read-only: routing
decides who answers (service.py); this only says whether someone could.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Operator, Presence, Queue, QueueMember
from routing.calendar import BusinessHours
from routing.config import parse_queue_config


@dataclass(frozen=True)
class Availability:
    online: bool
    # "closed" (outside business hours) or "nobody" (no one available); None when online.
    reason: str | None = None
    opens_at: datetime | None = None


async def chat_availability(
    session: AsyncSession, queue_id: int | None, now: datetime
) -> Availability:
    """Whether a chat arriving now in `queue_id` (None: no queue) finds someone."""
    available = select(Operator.id).where(
        Operator.presence == Presence.AVAILABLE, Operator.active.is_(True)
    )
    if queue_id is not None:
        queue = await session.get(Queue, queue_id)
        if queue is not None:
            hours = _hours(queue)
            if hours is not None and not hours.is_open(now):
                return Availability(False, "closed", hours.next_open(now))
            available = available.join(QueueMember, QueueMember.operator_id == Operator.id).where(
                QueueMember.queue_id == queue_id
            )
    if not await session.scalar(select(exists(available))):
        return Availability(False, "nobody")
    return Availability(True)


async def queue_open(session: AsyncSession, queue_id: int | None, now: datetime) -> bool:
    """Whether `queue_id` is within its business hours at `now` (no hours, no queue: open)."""
    queue = await session.get(Queue, queue_id) if queue_id is not None else None
    hours = _hours(queue) if queue is not None else None
    return hours is None or hours.is_open(now)


def _hours(queue: Queue) -> BusinessHours | None:
    return parse_queue_config(queue.config).business_hours

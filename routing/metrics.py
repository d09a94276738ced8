"""Business-time durations of conversations, measured after the fact for reports.

A conversation's time to the first response and to resolution count only its queue's business
hours (routing/calendar.py): a message on Friday evening answered on Monday at opening took
minutes, not days. Reports aggregate them in SQL, so they are stored on the conversation:
each routing pass measures up to `BATCH` conversations whose first response or resolution has
no figure yet (a partial index finds them), with the calendar of the queue they are in now;
without a queue or business hours it is the elapsed time. A reopened conversation loses its
resolution figure and gets a new one when it is resolved again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Conversation
from routing.calendar import BusinessHours

BATCH = 500

UNMEASURED = or_(
    and_(
        Conversation.first_response_at.is_not(None),
        Conversation.first_response_seconds.is_(None),
    ),
    and_(Conversation.resolved_at.is_not(None), Conversation.resolution_seconds.is_(None)),
)


def business_seconds(hours: BusinessHours | None, start: datetime, end: datetime) -> int:
    """Seconds from `start` to `end` while open (all of them without `hours`); never negative."""
    if end <= start:
        return 0
    elapsed = end - start if hours is None else hours.business_time_between(start, end)
    return int(elapsed.total_seconds())


async def measure(
    session: AsyncSession, hours_of: Mapping[int, BusinessHours | None], *, limit: int = BATCH
) -> int:
    """Fill in the missing durations of up to `limit` conversations; how many were done.
    `hours_of` maps queue ids to their business hours (None: around the clock)."""
    pending = await session.scalars(
        select(Conversation).where(UNMEASURED).order_by(Conversation.id).limit(limit)
    )
    done = 0
    for conversation in pending:
        hours = hours_of.get(conversation.queue_id) if conversation.queue_id else None
        if (
            conversation.first_response_at is not None
            and conversation.first_response_seconds is None
        ):
            conversation.first_response_seconds = business_seconds(
                hours, conversation.created_at, conversation.first_response_at
            )
        if conversation.resolved_at is not None and conversation.resolution_seconds is None:
            conversation.resolution_seconds = business_seconds(
                hours, conversation.created_at, conversation.resolved_at
            )
        done += 1
    return done

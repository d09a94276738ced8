"""The supervisor monitor: queues, operators and today's figures, computed from the tables.

"Today" is the calendar day in the time zone asked for (default UTC), from local midnight; its
hours are the local hours (23 or 25 on the days clocks change, each with its start instant).
"Now" is the moment of the request. Definitions:

- waiting: conversations open, unassigned and in the queue (snoozed ones are not open). Their
  wait starts at ``queue_entered_at`` (when routing put them in the queue; a transfer restarts
  it), else ``created_at``; ``longest_wait_seconds`` is the oldest one's (null if none waits).
- offers_pending: offers of the queue with status pending.
- service level over a window: among the queue's conversations whose first-response due time
  (``sla_due_at``) falls in the window, the share with ``first_response_at <= sla_due_at``.
  Conversations not yet due and not yet answered are left out (they can still make it); null
  when no conversation counts. "today" is the whole local day, "last hour" the hour before now.
- abandoned_today: conversations resolved today without any operator reply
  (``first_response_at`` null).
- avg_first_response_seconds_today: the mean of ``first_response_at - created_at`` over the
  conversations first answered today (null if none).
- operators (active ones): presence and since when; load per channel kind = conversations
  assigned with status open or pending plus pending offers, by the channel's capacity kind
  (`core.channels`; routing counts the same, `routing/capacity.py`);
  capacity as configured; the ids of their open and pending conversations.
- volume_today: inbound interactions per channel per local hour of today (hours without any
  are left out).
- service_level_today: per local hour up to now, the service level of the conversations due
  in that hour, all queues together.

Phone calls (``voice_call`` rows; a queue's ``calls`` counts its inbound calls only, callbacks
are operators' work, not customers waiting). A call counts in its conversation's queue: where
routing has it now (queue rules such as ``ivr_choice``, overflow and transfers move it), not
where the number's call flow first put it.

- calls.waiting: calls of the queue in state queued or ringing (an operator's phone rings
  but nobody has picked up: the caller still waits); ``longest_wait_seconds``: now minus the
  oldest one's ``queued_at`` (``started_at`` if it has none), null if none waits.
- calls.answered_today: calls answered (``answered_at``) today; ``answered_within_target_today``
  those among them whose wait (``wait_seconds``, else ``answered_at - queued_at``) was at most
  the queue's ``call_answer_target_seconds`` (its config; default 20), shown as
  ``answer_target_seconds``.
- calls.abandoned_today: calls that ended today with outcome abandoned (the caller hung up
  waiting) and never answered. A call counts once: a caller answered, then transferred to a
  queue, who hangs up waiting there is answered (``answered_at`` set), not abandoned.
- calls.service_level_today: answered within target / (answered + abandoned) today; null when
  both are 0.
- calls.avg_handle_seconds_today: the mean ``talk_seconds`` of the calls answered that ended
  today (null if none).
- operators' on_call: they have a call in state connected or on hold (either direction);
  on_call_seconds_today: the ``talk_seconds`` of their calls that ended today plus, for a call
  in progress, the time since it was answered (or since midnight, if it was answered before);
  overdue_tasks: their open tasks (core/tasks.py) whose due time has passed.

Queues, conversations and offers are those in the database now: a conversation counts in the
queue it is in at the moment of the request.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import catalog
from core.errors import InvalidInput
from core.models import (
    CallState,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    Offer,
    OfferStatus,
    Operator,
    Queue,
    Task,
    VoiceCall,
    utcnow,
)

# The monitor lists at most this many conversation ids per operator.
MAX_CONVERSATION_IDS = 100
# A queue's target for answering a call (its config's "call_answer_target_seconds", which
# routing/config.py checks and documents).
CALL_ANSWER_TARGET_SECONDS = 20
MAX_CALL_ANSWER_TARGET_SECONDS = 3600
# The caller waits in these states; the operator is on the phone in those.
_CALL_WAITING = (CallState.QUEUED, CallState.RINGING)
_CALL_TALKING = (CallState.CONNECTED, CallState.ON_HOLD)
_INBOUND = "in"
_ACTIVE = (ConversationStatus.OPEN, ConversationStatus.PENDING)


# Names in the zone database that stand for the host's settings, not for a place.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zone_names() -> frozenset[str]:
    return (frozenset(zoneinfo.available_timezones()) - _NOT_PLACES) | {"UTC"}


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name`; 400 if there is none such (host-dependent "localtime" too)."""
    if name not in _zone_names():
        raise InvalidInput(
            f"{name!r} is not a known IANA time zone, such as Europe/Berlin", field="tz"
        )
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Hour:
    """One local hour of the day: its local hour number, its start and end (UTC), and its
    start as the zone shows it (with the offset of that moment)."""

    hour: int
    start: datetime
    end: datetime
    local_start: datetime


@dataclass(frozen=True)
class CallFigures:
    """A queue's phone calls (see the module docstring)."""

    waiting: int = 0
    longest_wait_seconds: int | None = None
    answered_today: int = 0
    answered_within_target_today: int = 0
    answer_target_seconds: int = CALL_ANSWER_TARGET_SECONDS
    service_level_today: float | None = None
    abandoned_today: int = 0
    avg_handle_seconds_today: int | None = None


@dataclass(frozen=True)
class QueueFigures:
    id: int
    name: str
    waiting: int
    longest_wait_seconds: int | None
    offers_pending: int
    service_level_today: float | None
    service_level_last_hour: float | None
    abandoned_today: int
    avg_first_response_seconds_today: int | None
    calls: CallFigures = field(default_factory=CallFigures)


@dataclass(frozen=True)
class OperatorFigures:
    id: int
    name: str
    role: str
    presence: str
    presence_reason: str | None
    presence_since: datetime
    load: dict[str, int]
    capacity: dict[str, int]
    total_capacity: int | None
    conversations: list[int]
    on_call: bool = False
    on_call_seconds_today: int = 0
    overdue_tasks: int = 0


@dataclass(frozen=True)
class Volume:
    hour: int
    start: datetime
    channel: str
    count: int


@dataclass(frozen=True)
class HourlyServiceLevel:
    hour: int
    start: datetime
    value: float | None


@dataclass(frozen=True)
class Snapshot:
    tz: str
    now: datetime
    day_start: datetime
    queues: list[QueueFigures]
    operators: list[OperatorFigures]
    volume_today: list[Volume]
    service_level_today: list[HourlyServiceLevel]
    hours: list[Hour] = field(default_factory=list)


def hours_of_day(now: datetime, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime, list[Hour]]:
    """Local midnight, the next one, and the local hours from midnight up to the one of now."""
    local_now = now.astimezone(zone)
    start = datetime.combine(local_now.date(), time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(local_now.date() + timedelta(days=1), time(0), tzinfo=zone)
    end = end.astimezone(UTC)
    hours = []
    at = start
    # Stepping in UTC keeps to local hour boundaries, also across a clock change of an hour.
    while at <= now and at < end:
        following = min(at + timedelta(hours=1), end)
        local = at.astimezone(zone)
        hours.append(Hour(local.hour, at, following, local))
        at = following
    return start, end, hours


def _bucket(column: Any, hours: list[Hour]) -> ColumnElement[int]:
    """The index of the hour `column` falls in (rows must be filtered to the day already)."""
    if len(hours) == 1:
        return literal(0)
    return case(
        *[(column < hour.end, index) for index, hour in enumerate(hours[:-1])],
        else_=len(hours) - 1,
    )


def _ratio(met: int | None, total: int | None) -> float | None:
    if not total:
        return None
    return round((met or 0) / total, 4)


def _counts_toward_sla(now: datetime) -> ColumnElement[bool]:
    return or_(Conversation.first_response_at.is_not(None), Conversation.sla_due_at <= now)


def _met() -> ColumnElement[int]:
    return case(
        (
            and_(
                Conversation.first_response_at.is_not(None),
                Conversation.first_response_at <= Conversation.sla_due_at,
            ),
            1,
        ),
        else_=0,
    )


def _seconds_between(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[float]:
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
    # SQLite keeps UTC timestamps as text; julianday reads them as days.
    return cast((func.julianday(later) - func.julianday(earlier)) * 86400.0, Float)


async def snapshot(session: AsyncSession, tz: str = "UTC", now: datetime | None = None) -> Snapshot:
    """Everything the monitor shows, as of `now` (default: the present)."""
    zone = time_zone(tz)
    now = now or utcnow()
    day_start, day_end, hours = hours_of_day(now, zone)
    return Snapshot(
        tz=tz,
        now=now,
        day_start=day_start.astimezone(zone),
        queues=await _queues(session, now, day_start, day_end),
        operators=await _operators(session, now, day_start),
        volume_today=await _volume(session, now, hours),
        service_level_today=await _hourly_service_level(session, now, hours),
        hours=hours,
    )


async def _queues(
    session: AsyncSession, now: datetime, day_start: datetime, day_end: datetime
) -> list[QueueFigures]:
    queue_id = Conversation.queue_id
    waiting_since = func.coalesce(Conversation.queue_entered_at, Conversation.created_at)
    waiting = {
        row[0]: (row[1], row[2])
        for row in await session.execute(
            select(queue_id, func.count(), func.min(waiting_since))
            .where(
                queue_id.is_not(None),
                Conversation.status == ConversationStatus.OPEN,
                Conversation.assignee_id.is_(None),
            )
            .group_by(queue_id)
        )
    }
    offers = {
        row[0]: row[1]
        for row in await session.execute(
            select(Offer.queue_id, func.count())
            .where(Offer.status == OfferStatus.PENDING, Offer.queue_id.is_not(None))
            .group_by(Offer.queue_id)
        )
    }

    async def service_level(start: datetime, end: datetime) -> dict[int | None, float | None]:
        rows = await session.execute(
            select(queue_id, func.count(), func.sum(_met()))
            .where(
                queue_id.is_not(None),
                Conversation.sla_due_at >= start,
                Conversation.sla_due_at < end,
                _counts_toward_sla(now),
            )
            .group_by(queue_id)
        )
        return {row[0]: _ratio(row[2], row[1]) for row in rows}

    today = await service_level(day_start, day_end)
    last_hour = await service_level(now - timedelta(hours=1), now)
    abandoned = {
        row[0]: row[1]
        for row in await session.execute(
            select(queue_id, func.count())
            .where(
                queue_id.is_not(None),
                Conversation.status == ConversationStatus.RESOLVED,
                Conversation.resolved_at >= day_start,
                Conversation.resolved_at <= now,
                Conversation.first_response_at.is_(None),
            )
            .group_by(queue_id)
        )
    }
    response_time = _seconds_between(
        session, Conversation.first_response_at, Conversation.created_at
    )
    first_response = {
        row[0]: row[1]
        for row in await session.execute(
            select(queue_id, func.avg(response_time))
            .where(
                queue_id.is_not(None),
                Conversation.first_response_at >= day_start,
                Conversation.first_response_at <= now,
            )
            .group_by(queue_id)
        )
    }
    queues = list(await session.scalars(select(Queue).order_by(Queue.name, Queue.id)))
    targets = {queue.id: call_answer_target(queue.config) for queue in queues}
    calls = await _calls(session, now, day_start, targets)
    figures = []
    for queue in queues:
        count, oldest = waiting.get(queue.id, (0, None))
        average = first_response.get(queue.id)
        figures.append(
            QueueFigures(
                id=queue.id,
                name=queue.name,
                waiting=count,
                longest_wait_seconds=_seconds_since(oldest, now) if count else None,
                offers_pending=offers.get(queue.id, 0),
                service_level_today=today.get(queue.id),
                service_level_last_hour=last_hour.get(queue.id),
                abandoned_today=abandoned.get(queue.id, 0),
                avg_first_response_seconds_today=None
                if average is None
                else max(0, round(float(average))),
                calls=calls.get(queue.id, CallFigures(answer_target_seconds=targets[queue.id])),
            )
        )
    return figures


def call_answer_target(config: Any) -> int:
    """The queue config's ``call_answer_target_seconds``, or the default when it is missing
    or not a whole number of seconds within bounds (routing/config.py refuses those)."""
    raw = config.get("call_answer_target_seconds") if isinstance(config, dict) else None
    if isinstance(raw, bool) or not isinstance(raw, int):
        return CALL_ANSWER_TARGET_SECONDS
    if 1 <= raw <= MAX_CALL_ANSWER_TARGET_SECONDS:
        return raw
    return CALL_ANSWER_TARGET_SECONDS


async def _calls(
    session: AsyncSession, now: datetime, day_start: datetime, targets: dict[int, int]
) -> dict[int, CallFigures]:
    """Each queue's call figures, in four aggregate queries. A call counts in its
    conversation's queue (where routing has it now, see the module docstring)."""
    queue_id = Conversation.queue_id
    inbound = and_(queue_id.is_not(None), VoiceCall.direction == _INBOUND)

    def per_queue(*columns: Any) -> Select[Any]:
        return (
            select(queue_id, *columns)
            .select_from(VoiceCall)
            .join(Conversation, Conversation.id == VoiceCall.conversation_id)
            .group_by(queue_id)
        )

    waiting = {
        row[0]: (row[1], row[2])
        for row in await session.execute(
            per_queue(
                func.count(),
                func.min(func.coalesce(VoiceCall.queued_at, VoiceCall.started_at)),
            ).where(inbound, VoiceCall.state.in_(_CALL_WAITING))
        )
    }
    # The wait of an answered call: as the channel stored it, else as its times tell.
    waited = func.coalesce(
        cast(VoiceCall.wait_seconds, Float),
        _seconds_between(
            session,
            VoiceCall.answered_at,
            func.coalesce(VoiceCall.queued_at, VoiceCall.started_at),
        ),
    )
    target = (
        case(targets, value=queue_id, else_=CALL_ANSWER_TARGET_SECONDS)
        if targets
        else literal(CALL_ANSWER_TARGET_SECONDS)
    )
    answered = {
        row[0]: (row[1], row[2])
        for row in await session.execute(
            per_queue(func.count(), func.sum(case((waited <= target, 1), else_=0))).where(
                inbound,
                VoiceCall.answered_at >= day_start,
                VoiceCall.answered_at <= now,
            )
        )
    }
    ended_today = and_(inbound, VoiceCall.ended_at >= day_start, VoiceCall.ended_at <= now)
    abandoned = {
        row[0]: row[1]
        for row in await session.execute(
            per_queue(func.count()).where(
                ended_today, VoiceCall.outcome == "abandoned", VoiceCall.answered_at.is_(None)
            )
        )
    }
    handled = {
        row[0]: row[1]
        for row in await session.execute(
            per_queue(func.avg(VoiceCall.talk_seconds)).where(
                ended_today,
                VoiceCall.answered_at.is_not(None),
                VoiceCall.talk_seconds.is_not(None),
            )
        )
    }
    figures = {}
    for queue, target_seconds in targets.items():
        count, oldest = waiting.get(queue, (0, None))
        answered_count, within = answered.get(queue, (0, 0))
        abandoned_count = abandoned.get(queue, 0)
        average = handled.get(queue)
        figures[queue] = CallFigures(
            waiting=count,
            longest_wait_seconds=_seconds_since(oldest, now) if count else None,
            answered_today=answered_count,
            answered_within_target_today=int(within or 0),
            answer_target_seconds=target_seconds,
            service_level_today=_ratio(within, answered_count + abandoned_count),
            abandoned_today=abandoned_count,
            avg_handle_seconds_today=None if average is None else max(0, round(float(average))),
        )
    return figures


def _seconds_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, int((now - moment).total_seconds()))


async def _operators(
    session: AsyncSession, now: datetime, day_start: datetime
) -> list[OperatorFigures]:
    # Keyed by assignee ids, which the query keeps to non-null ones.
    load: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    conversations: dict[int | None, list[int]] = defaultdict(list)
    assigned = await session.execute(
        select(Conversation.assignee_id, Conversation.id, Conversation.channel)
        .where(Conversation.assignee_id.is_not(None), Conversation.status.in_(_ACTIVE))
        .order_by(Conversation.id)
    )
    for operator_id, conversation_id, channel in assigned:
        load[operator_id][catalog().capacity_kind(channel)] += 1
        if len(conversations[operator_id]) < MAX_CONVERSATION_IDS:
            conversations[operator_id].append(conversation_id)
    offered = await session.execute(
        select(Offer.operator_id, Conversation.channel, func.count())
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(Offer.status == OfferStatus.PENDING)
        .group_by(Offer.operator_id, Conversation.channel)
    )
    for operator_id, channel, count in offered:
        load[operator_id][catalog().capacity_kind(channel)] += count
    calls = await _operator_calls(session, now, day_start)
    ended_talk = {
        row[0]: int(row[1] or 0)
        for row in await session.execute(
            select(VoiceCall.operator_id, func.sum(VoiceCall.talk_seconds))
            .where(
                VoiceCall.operator_id.is_not(None),
                VoiceCall.ended_at >= day_start,
                VoiceCall.ended_at <= now,
            )
            .group_by(VoiceCall.operator_id)
        )
    }
    overdue = {
        row[0]: row[1]
        for row in await session.execute(
            select(Task.owner_id, func.count())
            .where(Task.owner_id.is_not(None), Task.done_at.is_(None), Task.due_at < now)
            .group_by(Task.owner_id)
        )
    }
    operators = await session.scalars(
        select(Operator).where(Operator.active.is_(True)).order_by(Operator.name, Operator.id)
    )
    return [
        OperatorFigures(
            id=operator.id,
            name=operator.name,
            role=operator.role,
            presence=operator.presence,
            presence_reason=operator.presence_reason,
            presence_since=operator.presence_since,
            load=dict(load.get(operator.id, {})),
            capacity={
                str(kind): int(value)
                for kind, value in operator.capacity.items()
                if isinstance(value, int)
            },
            total_capacity=operator.total_capacity,
            conversations=conversations.get(operator.id, []),
            on_call=operator.id in calls,
            on_call_seconds_today=calls.get(operator.id, (0, 0))[1]
            + ended_talk.get(operator.id, 0),
            overdue_tasks=overdue.get(operator.id, 0),
        )
        for operator in operators
    ]


async def _operator_calls(
    session: AsyncSession, now: datetime, day_start: datetime
) -> dict[int | None, tuple[int, int]]:
    """Operators on a call now: how many calls, and the seconds of them since answered (or
    since midnight) up to now."""
    moment = VoiceCall.answered_at.type
    since = case(
        # Not answered (yet): nothing talked.
        (VoiceCall.answered_at.is_(None), literal(now, type_=moment)),
        (VoiceCall.answered_at > day_start, VoiceCall.answered_at),
        else_=literal(day_start, type_=moment),
    )
    rows = await session.execute(
        select(
            VoiceCall.operator_id,
            func.count(),
            func.sum(_seconds_between(session, literal(now, type_=moment), since)),
        )
        .where(VoiceCall.operator_id.is_not(None), VoiceCall.state.in_(_CALL_TALKING))
        .group_by(VoiceCall.operator_id)
    )
    return {row[0]: (row[1], max(0, round(float(row[2] or 0)))) for row in rows}


async def _volume(session: AsyncSession, now: datetime, hours: list[Hour]) -> list[Volume]:
    if not hours:
        return []
    inbound = (
        select(
            _bucket(Interaction.occurred_at, hours).label("bucket"),
            Interaction.channel.label("channel"),
        )
        .where(
            Interaction.direction == Direction.IN,
            Interaction.occurred_at >= hours[0].start,
            Interaction.occurred_at <= now,
        )
        .subquery()
    )
    rows = await session.execute(
        select(inbound.c.bucket, inbound.c.channel, func.count())
        .group_by(inbound.c.bucket, inbound.c.channel)
        .order_by(inbound.c.bucket, inbound.c.channel)
    )
    return [
        Volume(hours[bucket].hour, hours[bucket].local_start, channel, count)
        for bucket, channel, count in rows
    ]


async def _hourly_service_level(
    session: AsyncSession, now: datetime, hours: list[Hour]
) -> list[HourlyServiceLevel]:
    if not hours:
        return []
    due = (
        select(
            _bucket(Conversation.sla_due_at, hours).label("bucket"),
            _met().label("met"),
        )
        .where(
            Conversation.sla_due_at >= hours[0].start,
            Conversation.sla_due_at < hours[-1].end,
            _counts_toward_sla(now),
        )
        .subquery()
    )
    rows = await session.execute(
        select(due.c.bucket, func.count(), func.sum(due.c.met)).group_by(due.c.bucket)
    )
    by_hour = {bucket: _ratio(met, total) for bucket, total, met in rows}
    return [
        HourlyServiceLevel(hour.hour, hour.local_start, by_hour.get(index))
        for index, hour in enumerate(hours)
    ]

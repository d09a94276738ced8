"""Contact-center reports: how much came in, and how fast and how well the team answered.

- `volume`: per day or week and channel, the customers' messages, forms and calls that came
  in (inbound interactions) and the conversations they opened.
- `performance`: per queue or per operator (the conversation's assignee) and for everyone,
  over the conversations opened in the period: answered, first response and resolution times
  (median and p90, business hours), SLA attainment (first response), reopen rate, the share
  closed without any answer (the monitor's "abandoned"); per queue, the calls that waited in it
  and the share the callers abandoned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from core.i18n import N_
from core.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Operator,
    Queue,
    VoiceCall,
)
from core.reports.base import (
    ALL,
    Chart,
    ColumnSpec,
    Kind,
    Report,
    ReportFilters,
    ReportResult,
    bucket_table,
    buckets,
    elapsed_seconds,
    how_many,
    in_period,
    percentiles,
    share,
)


def conversation_filters(filters: ReportFilters, conversation: Any = Conversation) -> list[Any]:
    """The queue, channel and operator filters as conditions on a conversation."""
    conditions = []
    if filters.queue_ids:
        conditions.append(conversation.queue_id.in_(filters.queue_ids))
    if filters.channels:
        conditions.append(conversation.channel.in_(filters.channels))
    if filters.operator_ids:
        conditions.append(conversation.assignee_id.in_(filters.operator_ids))
    return conditions


class Volume(Report):
    name = "volume"
    title = N_("Volume per channel")
    area = "contact_center"
    uses: ClassVar[frozenset[str]] = frozenset(
        {"queue_ids", "channels", "operator_ids", "granularity"}
    )

    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        periods = buckets(filters)
        bucket = bucket_table(periods)
        inbound = (
            select(bucket.c.index, Interaction.channel, func.count())
            .select_from(bucket)
            .join(
                Interaction,
                and_(
                    Interaction.occurred_at >= bucket.c.since,
                    Interaction.occurred_at < bucket.c.until,
                ),
            )
            .where(
                Interaction.direction == Direction.IN,
                Interaction.kind != InteractionKind.EVENT,
            )
            .group_by(bucket.c.index, Interaction.channel)
        )
        if filters.channels:
            inbound = inbound.where(Interaction.channel.in_(filters.channels))
        if filters.queue_ids or filters.operator_ids:
            # The period again, on both tables: else the queue's whole history is joined
            # before the buckets narrow it (bench/reports.py: 680 against 80 ms).
            inbound = inbound.join(
                Conversation, Conversation.id == Interaction.conversation_id
            ).where(
                *conversation_filters(filters),
                in_period(Interaction.occurred_at, filters),
                Conversation.created_at < filters.until,
            )
        opened = (
            select(bucket.c.index, Conversation.channel, func.count())
            .select_from(bucket)
            .join(
                Conversation,
                and_(
                    Conversation.created_at >= bucket.c.since,
                    Conversation.created_at < bucket.c.until,
                ),
            )
            .where(*conversation_filters(filters))
            .group_by(bucket.c.index, Conversation.channel)
        )
        counts: dict[tuple[int, str], dict[str, int]] = {}
        for key, query in (("inbound", inbound), ("conversations", opened)):
            for index, channel, count in await session.execute(query):
                counts.setdefault((index, channel), {})[key] = count
        channels = sorted({channel for _, channel in counts})
        rows = [
            {
                "period": period.label,
                "channel": channel,
                "inbound": counts.get((period.index, channel), {}).get("inbound", 0),
                "conversations": counts.get((period.index, channel), {}).get("conversations", 0),
            }
            for period in periods
            for channel in channels
        ]
        return ReportResult(
            name=self.name,
            title=self.title,
            filters=filters,
            columns=[
                ColumnSpec(key="period", label=N_("Period"), kind=Kind.DATE),
                ColumnSpec(key="channel", label=N_("Channel"), kind=Kind.TEXT),
                ColumnSpec(key="inbound", label=N_("Messages and calls in")),
                ColumnSpec(key="conversations", label=N_("Conversations opened")),
            ],
            rows=rows,
            chart=Chart(kind="bar", x="period", y=("inbound",), series="channel"),
            generated_at=now,
        )


class Performance(Report):
    name = "performance"
    title = N_("Response times, SLA and reopens")
    area = "contact_center"
    uses: ClassVar[frozenset[str]] = frozenset(
        {"queue_ids", "channels", "operator_ids", "group_by"}
    )

    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        if filters.group_by not in ("queue", "operator"):
            raise InvalidInput("group by queue or operator", field="group_by")
        by_queue = filters.group_by == "queue"
        group = Conversation.queue_id if by_queue else Conversation.assignee_id
        where = [in_period(Conversation.created_at, filters), *conversation_filters(filters)]
        first = func.coalesce(
            Conversation.first_response_seconds,
            elapsed_seconds(Conversation.created_at, Conversation.first_response_at),
        )
        resolution = func.coalesce(
            Conversation.resolution_seconds,
            elapsed_seconds(Conversation.created_at, Conversation.resolved_at),
        )
        met = and_(
            Conversation.sla_due_at.is_not(None),
            Conversation.first_response_at.is_not(None),
            Conversation.first_response_at <= Conversation.sla_due_at,
        )
        breached = and_(
            Conversation.sla_due_at.is_not(None),
            or_(
                Conversation.first_response_at > Conversation.sla_due_at,
                and_(
                    Conversation.first_response_at.is_(None),
                    Conversation.sla_due_at <= now,
                    Conversation.status != ConversationStatus.RESOLVED,
                ),
            ),
        )
        was_resolved = or_(Conversation.resolved_at.is_not(None), Conversation.reopened_count > 0)
        figures = [
            func.count(),
            func.count(Conversation.first_response_at),
            how_many(Conversation.resolved_at.is_not(None)),
            how_many(met),
            how_many(breached),
            how_many(Conversation.reopened_count > 0),
            how_many(was_resolved),
            # Resolved without any answer: what the monitor calls abandoned (chats, emails).
            how_many(
                and_(
                    Conversation.resolved_at.is_not(None), Conversation.first_response_at.is_(None)
                )
            ),
        ]
        counted: dict[Any, list[int]] = {}
        for grp_key, grouping in ((None, literal(ALL)), ("each", group)):
            rows = await session.execute(
                select(grouping, *figures).where(*where).group_by(grouping)
            )
            for found in rows:
                key = ALL if grp_key is None else found[0]
                counted[key] = [int(value or 0) for value in found[1:]]
        times = await percentiles(session, group, {"first": first, "resolution": resolution}, where)
        calls = await self._calls(session, filters) if by_queue else {}
        names = await self._names(session, by_queue, [key for key in counted if key != ALL])
        unnamed = N_("No queue") if by_queue else N_("Unassigned")
        group_label = N_("Queue") if by_queue else N_("Operator")
        rows_out = []
        ordered = sorted(
            (key for key in counted if key != ALL),
            key=lambda key: (names.get(key) or "~", str(key)),
        )
        for key in [*ordered, ALL] if counted else []:
            (total, answered, resolved, met_n, breached_n, reopened, ever_resolved, unanswered) = (
                counted[key]
            )
            first_times = times.get(key, {}).get("first", {})
            resolution_times = times.get(key, {}).get("resolution", {})
            queued, abandoned = calls.get(key, (0, 0))
            row: dict[str, Any] = {
                "key": key,
                "name": N_("All") if key == ALL else names.get(key, unnamed),
                "conversations": total,
                "answered": answered,
                "first_response_median": _whole(first_times.get(50)),
                "first_response_p90": _whole(first_times.get(90)),
                "resolved": resolved,
                "resolution_median": _whole(resolution_times.get(50)),
                "resolution_p90": _whole(resolution_times.get(90)),
                "sla_met": met_n,
                "sla_breached": breached_n,
                "sla_attainment": share(met_n, met_n + breached_n),
                "reopened": reopened,
                "reopen_rate": share(reopened, ever_resolved),
                "closed_unanswered": unanswered,
                "abandoned_rate": share(unanswered, total),
            }
            if by_queue:
                row |= {
                    "calls_queued": queued,
                    "calls_abandoned": abandoned,
                    "abandonment": share(abandoned, queued),
                }
            rows_out.append(row)
        columns = [
            ColumnSpec(key="name", label=group_label, kind=Kind.TEXT),
            ColumnSpec(key="conversations", label=N_("Conversations")),
            ColumnSpec(key="answered", label=N_("Answered")),
            ColumnSpec(
                key="first_response_median", label=N_("First response, median"), kind=Kind.SECONDS
            ),
            ColumnSpec(
                key="first_response_p90", label=N_("First response, p90"), kind=Kind.SECONDS
            ),
            ColumnSpec(key="resolved", label=N_("Resolved")),
            ColumnSpec(key="resolution_median", label=N_("Resolution, median"), kind=Kind.SECONDS),
            ColumnSpec(key="resolution_p90", label=N_("Resolution, p90"), kind=Kind.SECONDS),
            ColumnSpec(key="sla_attainment", label=N_("SLA attainment"), kind=Kind.SHARE),
            ColumnSpec(key="reopen_rate", label=N_("Reopen rate"), kind=Kind.SHARE),
            ColumnSpec(key="abandoned_rate", label=N_("Closed without an answer"), kind=Kind.SHARE),
        ]
        if by_queue:
            columns += [
                ColumnSpec(key="calls_queued", label=N_("Calls queued")),
                ColumnSpec(key="abandonment", label=N_("Abandonment"), kind=Kind.SHARE),
            ]
        return ReportResult(
            name=self.name,
            title=self.title,
            filters=filters,
            columns=columns,
            rows=rows_out,
            chart=Chart(kind="bar", x="name", y=("first_response_median", "first_response_p90")),
            generated_at=now,
            notes=[
                N_("Times count business hours of the conversation's queue."),
                N_("Conversations opened in the period; SLA: first response targets."),
            ],
        )

    async def _calls(
        self, session: AsyncSession, filters: ReportFilters
    ) -> dict[Any, tuple[int, int]]:
        """Per queue and in all: calls that waited in a queue in the period, and those the
        caller hung up on while waiting."""
        if filters.channels and "voice" not in filters.channels:
            return {}
        where = [VoiceCall.queued_at.is_not(None), in_period(VoiceCall.queued_at, filters)]
        if filters.queue_ids:
            where.append(VoiceCall.queue_id.in_(filters.queue_ids))
        if filters.operator_ids:
            return {}
        abandoned = how_many(VoiceCall.outcome == "abandoned")
        found: dict[Any, tuple[int, int]] = {}
        for grouping in (literal(ALL), VoiceCall.queue_id):
            rows = await session.execute(
                select(grouping, func.count(), abandoned).where(*where).group_by(grouping)
            )
            for key, queued, gone in rows:
                found[key] = (int(queued), int(gone or 0))
        return found

    async def _names(
        self, session: AsyncSession, by_queue: bool, keys: list[Any]
    ) -> dict[Any, str]:
        ids = [key for key in keys if key is not None]
        if not ids:
            return {}
        model: Any = Queue if by_queue else Operator
        rows = await session.execute(select(model.id, model.name).where(model.id.in_(ids)))
        return {row[0]: row[1] for row in rows}


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds)

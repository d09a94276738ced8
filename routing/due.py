"""What a routing pass has to do, and when the next one is due: one statement.

A pass starts by reading, in one statement (`read_due`), the earliest persisted deadline of
each kind (offer expiry, SLA due time, a console gone, an automatic away turning offline, an
offline operator's unanswered work, a task's reminder, each overflowing queue's oldest waiting
work) and whether there is any work of the kinds that have no deadline (stale offers, new leads,
unowned callbacks, durations to measure, waiting work). The pass runs only the steps that have
something to do (`Due`'s properties); the rest cannot change anything, so they cost nothing.

The same statement gives the next pass's deadline (`Due.fold_into`). The pass reads it again
at its end when it changed anything; a pass that changed nothing reuses the first reading, as
nothing of what it reads has changed under the routing lock (other transactions that change it
commit events that wake the engine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    Conversation,
    ConversationStatus,
    Lead,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    RoutingDecision,
    RoutingSetting,
    SlaTimer,
    Task,
    TaskKind,
)
from core.sql import constants_written_in
from routing import metrics, tasks
from routing.setup import LEAD_RULES, QueueSetup

if TYPE_CHECKING:
    from routing.service import PassReport, RoutingOptions

# Reasons of an automatic away (routing/housekeeping.py sets them; routing.service re-exports
# them): an operator away for one of these turns offline when their console stays gone.
AUTO_AWAY_REASON = "console disconnected"
# Set instead for an operator who had said busy, so their console coming back restores busy.
AUTO_AWAY_BUSY_REASON = "console disconnected (was busy)"
AUTO_REASONS = (AUTO_AWAY_REASON, AUTO_AWAY_BUSY_REASON)

# The customer waits for an answer: the last inbound message is newer than the last reply.
AWAITING_REPLY = and_(
    Conversation.last_inbound_at.is_not(None),
    or_(
        Conversation.last_outbound_at.is_(None),
        Conversation.last_inbound_at > Conversation.last_outbound_at,
    ),
)
# Presences whose open console is watched for an automatic away.
WATCHED = (Presence.AVAILABLE, Presence.BUSY)


def _pending_offer_of_conversation() -> Any:
    return exists().where(
        Offer.conversation_id == Conversation.id, Offer.status == OfferStatus.PENDING
    )


def waiting_work() -> list[Any]:
    """Conditions of work waiting in a queue for an operator (no pending offer)."""
    return [
        Conversation.status == ConversationStatus.OPEN,
        Conversation.assignee_id.is_(None),
        Conversation.queue_id.is_not(None),
        Conversation.queue_entered_at.is_not(None),
        ~_pending_offer_of_conversation(),
    ]


def overflowing(setups: Mapping[int, QueueSetup]) -> dict[int, timedelta]:
    """The queues that move work elsewhere after a maximum wait, with that wait."""
    return {
        setup.id: setup.config.max_wait
        for setup in setups.values()
        if setup.config is not None
        and setup.config.max_wait is not None
        and setup.config.overflow_queue_id is not None
        and setup.config.overflow_queue_id in setups
    }


@dataclass(frozen=True)
class Due:
    """One reading of the deadlines and of the work without a deadline (see the module)."""

    now: datetime
    offer_expires: datetime | None
    stale_offer: bool
    sla_due: datetime | None
    # Earliest console_seen_at of watched operators, and of those away automatically.
    seen: datetime | None
    auto_away_seen: datetime | None
    # Earliest presence_since of offline operators holding work the customer waits on.
    offline_with_work: datetime | None
    task_assignable: bool
    unowned_callback: bool
    reminder: datetime | None
    new_leads: bool
    unmeasured: bool
    waiting: bool
    # Per overflowing queue, its oldest waiting work's queue_entered_at.
    oldest: dict[int, datetime | None] = field(default_factory=dict)

    def fold_into(
        self,
        report: PassReport,
        options: RoutingOptions,
        max_waits: Mapping[int, timedelta],
    ) -> None:
        """The earliest of these deadlines becomes (at most) the report's next_due."""
        report.due(self.offer_expires)
        report.due(self.sla_due)
        if self.seen is not None:
            report.due(self.seen + options.away_after_disconnect)
        if self.auto_away_seen is not None:
            report.due(self.auto_away_seen + options.offline_after_disconnect)
        if self.offline_with_work is not None:
            report.due(self.offline_with_work + options.requeue_after_offline)
        report.due(self.now if self.task_assignable else self.reminder)
        for queue_id, entered in self.oldest.items():
            if entered is not None and queue_id in max_waits:
                report.due(entered + max_waits[queue_id])

    # What the pass has to do now.

    def gone(self, options: RoutingOptions) -> bool:
        return _past(self.seen, options.away_after_disconnect, self.now)

    def long_gone(self, options: RoutingOptions) -> bool:
        return _past(self.auto_away_seen, options.offline_after_disconnect, self.now)

    def stranded(self, options: RoutingOptions) -> bool:
        return _past(self.offline_with_work, options.requeue_after_offline, self.now)

    @property
    def offers_expired(self) -> bool:
        return self.offer_expires is not None and self.offer_expires <= self.now

    @property
    def slas_due(self) -> bool:
        return self.sla_due is not None and self.sla_due <= self.now

    @property
    def reminders_due(self) -> bool:
        return self.reminder is not None and self.reminder <= self.now

    def overflow_due(self, max_waits: Mapping[int, timedelta]) -> list[int]:
        """The overflowing queues whose oldest waiting work is past the queue's maximum."""
        return [
            queue_id
            for queue_id, entered in self.oldest.items()
            if entered is not None
            and queue_id in max_waits
            and entered + max_waits[queue_id] <= self.now
        ]


def _past(moment: datetime | None, grace: timedelta, now: datetime) -> bool:
    return moment is not None and moment + grace <= now


async def read_due(session: AsyncSession, now: datetime, setups: Mapping[int, QueueSetup]) -> Due:
    """The one statement (see the module docstring)."""
    queues = tuple(sorted(overflowing(setups)))
    row = (await session.execute(_due_statement(queues))).one()
    (
        offer_expires,
        stale,
        sla_due,
        seen,
        auto_away_seen,
        offline,
        task_assignable,
        callback,
        reminder,
        leads,
        unmeasured,
        waiting,
    ) = row[:12]
    return Due(
        now=now,
        offer_expires=offer_expires,
        stale_offer=bool(stale),
        sla_due=sla_due,
        seen=seen,
        auto_away_seen=auto_away_seen,
        offline_with_work=offline,
        task_assignable=bool(task_assignable),
        unowned_callback=bool(callback),
        reminder=reminder,
        new_leads=bool(leads),
        unmeasured=bool(unmeasured),
        waiting=bool(waiting),
        oldest=dict(zip(queues, row[12:], strict=True)),
    )


@lru_cache(maxsize=16)
def _due_statement(queues: tuple[int, ...]) -> Select[Any]:
    """`read_due`'s statement for the overflowing `queues`: it reads nothing else that
    changes, so it is built once (and SQLAlchemy keeps its cache key with it), not every
    pass; its values are written into its text, so PostgreSQL plans it once per connection
    (`core.sql.constants_written_in`)."""
    stale_offer = exists().where(
        Offer.status == OfferStatus.PENDING,
        Operator.id == Offer.operator_id,
        Conversation.id == Offer.conversation_id,
        or_(
            Operator.presence != Presence.AVAILABLE,
            Conversation.status != ConversationStatus.OPEN,
            Conversation.assignee_id.is_not(None),
        ),
    )
    offline_with_work = exists().where(
        Conversation.assignee_id == Operator.id,
        Conversation.status == ConversationStatus.OPEN,
        AWAITING_REPLY,
    )
    decided = exists().where(RoutingDecision.lead_id == Lead.id)
    lead_rules = exists().where(RoutingSetting.name == LEAD_RULES)
    new_leads = exists().where(Lead.owner_id.is_(None), ~decided)
    unowned_callback = exists().where(
        Task.kind == TaskKind.CALLBACK,
        Task.done_at.is_(None),
        Task.owner_id.is_(None),
        Task.queue_id.is_not(None),
    )
    oldest = [
        select(func.min(Conversation.queue_entered_at))
        .where(
            Conversation.queue_id == queue_id,
            Conversation.status == ConversationStatus.OPEN,
            Conversation.assignee_id.is_(None),
        )
        .scalar_subquery()
        for queue_id in queues
    ]
    return constants_written_in(
        select(
            select(func.min(Offer.expires_at))
            .where(Offer.status == OfferStatus.PENDING)
            .scalar_subquery(),
            stale_offer,
            select(func.min(SlaTimer.due_at)).where(SlaTimer.state == "running").scalar_subquery(),
            select(func.min(Operator.console_seen_at))
            .where(
                Operator.active.is_(True),
                Operator.presence.in_(WATCHED),
                Operator.console_seen_at.is_not(None),
            )
            .scalar_subquery(),
            select(func.min(Operator.console_seen_at))
            .where(Operator.presence == Presence.AWAY, Operator.presence_reason.in_(AUTO_REASONS))
            .scalar_subquery(),
            select(func.min(Operator.presence_since))
            .where(Operator.presence == Presence.OFFLINE, offline_with_work)
            .scalar_subquery(),
            tasks.assignable_now(),
            unowned_callback,
            tasks.earliest_reminder(),
            # Only with lead rules are new leads anyone's business.
            case((lead_rules, new_leads), else_=False),
            # min(id), not EXISTS: read off the partial index ix_conversation_unmeasured whatever
            # the planner estimates (for EXISTS it may choose a scan of every conversation, as
            # it cannot tell how many of them are measured).
            select(func.min(Conversation.id))
            .where(metrics.UNMEASURED)
            .scalar_subquery()
            .is_not(None),
            exists().where(*waiting_work()),
            *oldest,
        )
    )

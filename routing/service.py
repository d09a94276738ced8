"""The routing pass: the pure building blocks of this package wired to the database.

One *routing pass* (`run_pass`) does, under one lock and in one transaction the caller owns:

1. presence housekeeping: auto-away when an operator's console has been gone for a grace,
   auto-offline later, offers of operators no longer available withdrawn, and the unanswered
   work of operators offline past the requeue grace put back in its queue;
2. offers past their timeout marked timed out (the work goes to the next candidate);
3. SLA timers that are due settled: met, or breached and escalated per the queue's policy
   (`routing/sla.py`);
4. new conversations matched to a queue (the rule set, else the channel's queue), their SLA
   timers started; the new work and its facts are gathered before, outside the lock
   (`routing/new_work.py`);
5. work waiting longer than its queue's maximum wait moved to the overflow queue;
6. waiting work routed in order (priority, then longest wait): offered to, or assigned to,
   the operator `routing.strategies.decide` picks; every decision logged with its reasons;
7. new leads given an owner by the lead rules (`routing/lead_assignment.py`);
8. tasks: unowned callbacks given an owner, due tasks announced to theirs (`routing/tasks.py`).

The queues' configurations and the rule sets come from `routing/setup.py`; what people do by
hand (offers accepted or rejected, transfers) is in `routing/manual.py`.

Everything that changes who holds work (passes, accepts, rejects, transfers, manual
assignment) takes the routing lock first: on PostgreSQL a transaction-scoped advisory lock, on
SQLite the database's single writer. So two server processes never decide on stale loads: no
operator goes above capacity and no conversation gets two assignees or two pending offers
(the latter also a unique index). Passes are idempotent: any process may run one at any time.

Times come in as `now`, so tests drive the clock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import CONVERSATION_ASSIGNED, CONVERSATION_UPDATED, OFFER_CREATED
from core.events import Event, emit
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    QueueMember,
    RoutingDecision,
    SlaTimer,
)
from core.operators import set_presence
from core.routing_log import REOPENED_NOTE, lock_routing
from core.visibility import Placement, audience_labels, conversation_labels
from routing import metrics, tasks
from routing.capacity import CHANNEL_KINDS, QueueRooms, channel_kind, has_room, operator_snapshots
from routing.config import QueueConfig
from routing.expressions import operator_attributes
from routing.lead_assignment import assign_leads
from routing.new_work import NewWork, entry_priority
from routing.setup import QueueSetup, enter_queue, load_setups, queue_rules
from routing.sla import settle_slas, start_slas
from routing.strategies import Decision, OfferRefusal, OperatorSnapshot, WorkItem, decide

log = logging.getLogger(__name__)

AUTO_AWAY_REASON = "console disconnected"
# Set instead for an operator who had said busy, so their console coming back restores busy.
AUTO_AWAY_BUSY_REASON = "console disconnected (was busy)"
AUTO_REASONS = (AUTO_AWAY_REASON, AUTO_AWAY_BUSY_REASON)
_REFUSALS: tuple[OfferRefusal, ...] = ("rejected", "timed_out")


@dataclass(frozen=True)
class RoutingOptions:
    """Timings of presence housekeeping and the bounds of one pass."""

    away_after_disconnect: timedelta = timedelta(seconds=60)
    offline_after_disconnect: timedelta = timedelta(minutes=15)
    requeue_after_offline: timedelta = timedelta(minutes=5)
    enricher_timeout: float = 2.0
    # Decisions per transaction: bounds how long one pass holds the routing lock.
    max_decisions_per_pass: int = 500


@dataclass
class PassReport:
    """What a pass did, and when the next one is due at the latest."""

    timed_out: int = 0
    breached: int = 0
    matched: int = 0
    overflowed: int = 0
    offered: int = 0
    assigned: int = 0
    requeued: int = 0
    presence_changed: int = 0
    leads: int = 0
    # The pass stopped at max_decisions_per_pass: run another at once.
    more: bool = False
    next_due: datetime | None = None

    def due(self, moment: datetime | None) -> None:
        if moment is not None and (self.next_due is None or moment < self.next_due):
            self.next_due = moment


# --- The pass --------------------------------------------------------------------------------


async def run_pass(
    session: AsyncSession,
    now: datetime,
    options: RoutingOptions,
    new_work: Sequence[NewWork] = (),
) -> PassReport:
    """One routing pass (see the module docstring); the caller commits."""
    await lock_routing(session)
    report = PassReport()
    setups = await load_setups(session)
    await _presence_housekeeping(session, now, options, report)
    await _expire_offers(session, now, report)
    await settle_slas(session, now, setups, report)
    await _match_queues(session, now, setups, new_work, report)
    await _overflow(session, now, setups, report)
    await _route_waiting(session, now, setups, options, report)
    await assign_leads(session, now, report)
    await tasks.assign_callbacks(session, now)
    await tasks.notify_due(session, now)
    hours = {
        queue_id: setup.config.business_hours if setup.config is not None else None
        for queue_id, setup in setups.items()
    }
    if await metrics.measure(session, hours) >= metrics.BATCH:
        report.more = True
    await _next_due(session, now, setups, options, report)
    return report


def _label(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# --- 1. presence ----------------------------------------------------------------------------


async def _presence_housekeeping(
    session: AsyncSession, now: datetime, options: RoutingOptions, report: PassReport
) -> None:
    gone = await session.scalars(
        select(Operator).where(
            Operator.active.is_(True),
            Operator.presence.in_([Presence.AVAILABLE, Presence.BUSY]),
            Operator.console_seen_at.is_not(None),
            Operator.console_seen_at <= now - options.away_after_disconnect,
        )
    )
    for operator in gone:
        was_busy = operator.presence == Presence.BUSY
        reason = AUTO_AWAY_BUSY_REASON if was_busy else AUTO_AWAY_REASON
        if await set_presence(session, operator, Presence.AWAY, reason, at=now):
            report.presence_changed += 1
    long_gone = await session.scalars(
        select(Operator).where(
            Operator.presence == Presence.AWAY,
            Operator.presence_reason.in_(AUTO_REASONS),
            Operator.console_seen_at <= now - options.offline_after_disconnect,
        )
    )
    for operator in long_gone:
        # The reason carries on: it says what to restore when the console comes back.
        kept = operator.presence_reason
        if await set_presence(session, operator, Presence.OFFLINE, kept, at=now):
            report.presence_changed += 1

    # An offer to someone who is no longer available would only time out: withdraw it now.
    stale_offers = await session.execute(
        select(Offer, Operator.presence, Conversation.status, Conversation.assignee_id)
        .join(Operator, Operator.id == Offer.operator_id)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(
            Offer.status == OfferStatus.PENDING,
            or_(
                Operator.presence != Presence.AVAILABLE,
                Conversation.status != ConversationStatus.OPEN,
                Conversation.assignee_id.is_not(None),
            ),
        )
    )
    for offer, presence, status, assignee_id in stale_offers:
        if status != ConversationStatus.OPEN or assignee_id is not None:
            why = "the conversation is no longer waiting"
        else:
            why = f"they are {presence} now"
        await routing_log.end_offer(session, offer, OfferStatus.CANCELLED, now)
        await routing_log.record(
            session,
            kind="withdrawn",
            conversation_id=offer.conversation_id,
            queue_id=offer.queue_id,
            operator_id=offer.operator_id,
            reason=f"offer to operator {offer.operator_id} withdrawn: {why}",
            at=now,
        )

    awaiting_reply = and_(
        Conversation.last_inbound_at.is_not(None),
        or_(
            Conversation.last_outbound_at.is_(None),
            Conversation.last_inbound_at > Conversation.last_outbound_at,
        ),
    )
    stranded = await session.execute(
        select(Conversation, Operator)
        .join(Operator, Operator.id == Conversation.assignee_id)
        .where(
            Operator.presence == Presence.OFFLINE,
            Operator.presence_since <= now - options.requeue_after_offline,
            Conversation.status == ConversationStatus.OPEN,
            awaiting_reply,
        )
    )
    for conversation, operator in stranded:
        conversation.assignee_id = None
        enter_queue(conversation, now)
        await routing_log.record(
            session,
            kind="requeue",
            conversation_id=conversation.id,
            queue_id=conversation.queue_id,
            operator_id=operator.id,
            reason=(
                f"operator {operator.id} has been offline since"
                f" {operator.presence_since:%Y-%m-%d %H:%M} UTC with the customer waiting for an"
                " answer: back to the queue"
            ),
            at=now,
        )
        await routing_log.emit_assignment(
            session, conversation, Placement(conversation.queue_id, operator.id)
        )
        report.requeued += 1


# --- 2. offers ------------------------------------------------------------------------------


async def _expire_offers(session: AsyncSession, now: datetime, report: PassReport) -> None:
    expired = await session.scalars(
        select(Offer).where(Offer.status == OfferStatus.PENDING, Offer.expires_at <= now)
    )
    for offer in expired:
        await routing_log.end_offer(session, offer, OfferStatus.TIMED_OUT, now)
        waited = (offer.expires_at - offer.created_at).total_seconds()
        await routing_log.record(
            session,
            kind="timed_out",
            conversation_id=offer.conversation_id,
            queue_id=offer.queue_id,
            operator_id=offer.operator_id,
            reason=f"operator {offer.operator_id} did not answer the offer within {_label(waited)}",
            at=now,
        )
        report.timed_out += 1


# --- 4. matching new work to queues ---------------------------------------------------------


async def _match_queues(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    new_work: Sequence[NewWork],
    report: PassReport,
) -> None:
    if not new_work:
        return
    rule_set = await queue_rules(session)
    routed_before = set(
        await session.scalars(
            select(RoutingDecision.conversation_id).where(
                RoutingDecision.conversation_id.in_([item.conversation_id for item in new_work]),
                RoutingDecision.kind == "queue",
            )
        )
    )
    snapshots: dict[int, OperatorSnapshot] | None = None
    for item in new_work:
        conversation = await session.get(Conversation, item.conversation_id)
        if conversation is None or conversation.queue_entered_at is not None:
            continue  # another process matched it meanwhile
        if conversation.status != ConversationStatus.OPEN:
            continue
        if conversation.id in routed_before or conversation.routing_note == REOPENED_NOTE:
            # Reopened by the customer: its queue stands; its operator keeps it if they can.
            if snapshots is None:
                snapshots = await operator_snapshots(session)
            await _reopened(session, conversation, snapshots, now)
            continue
        if conversation.assignee_id is not None:
            # Someone holds it already (assigned before routing saw it): nothing to route.
            conversation.queue_entered_at = conversation.created_at
            continue
        details: dict[str, Any] = {}
        if rule_set is not None:
            match = rule_set.route(item.facts.facts)
            details = {"match": match.model_dump(mode="json")}
            if item.facts.failures:
                details["enricher_failures"] = [
                    {"enricher": failure.enricher, "reason": failure.reason}
                    for failure in item.facts.failures
                ]
            queue_id: int | None = match.queue_id
            reason = match.explanation
            if queue_id not in setups:
                queue_id = conversation.queue_id
                reason += " (that queue no longer exists: kept the channel's queue)"
        elif conversation.queue_id is not None:
            queue_id = conversation.queue_id
            reason = "the channel's queue (no routing rules are set)"
        else:
            queue_id = None
            reason = "no queue: no routing rules are set and the channel names no queue"
        conversation.queue_id = queue_id
        conversation.priority, raised = entry_priority(conversation.priority, item.facts.facts)
        enter_queue(conversation, now)
        setup = setups.get(queue_id) if queue_id is not None else None
        if setup is not None:
            reason = f"queue {setup.name}: {reason}"
        if raised:
            reason += f"; {raised}"
        await routing_log.record(
            session,
            kind="queue",
            conversation_id=conversation.id,
            queue_id=queue_id,
            reason=reason,
            details=details,
            at=now,
        )
        await start_slas(session, conversation, setup, now)
        report.matched += 1


async def _reopened(
    session: AsyncSession,
    conversation: Conversation,
    snapshots: Mapping[int, OperatorSnapshot],
    now: datetime,
) -> None:
    conversation.queue_entered_at = now
    holder = snapshots.get(conversation.assignee_id or 0)
    if holder is None:
        conversation.assignee_id = None
        reason = "reopened by the customer: waits in its queue again"
    else:
        kind = channel_kind(conversation.channel)
        # The load counts this conversation already, now that it is open again.
        over = holder.load_of(kind) > holder.capacity_of(kind) or (
            holder.total_capacity is not None and holder.total_load > holder.total_capacity
        )
        if not over:
            conversation.queue_entered_at = now
            return
        conversation.assignee_id = None
        conversation.routing_note = None
        held_by = Placement(conversation.queue_id, holder.id)
        reason = (
            f"reopened by the customer while operator {holder.id} has no room for it"
            f" ({kind} {holder.load_of(kind)}/{holder.capacity_of(kind)}): back to the queue"
        )
        await routing_log.emit_assignment(session, conversation, held_by)
    await routing_log.record(
        session,
        kind="requeue",
        conversation_id=conversation.id,
        queue_id=conversation.queue_id,
        operator_id=holder.id if holder is not None else None,
        reason=reason,
        at=now,
    )


# --- 5. overflow ----------------------------------------------------------------------------


async def _overflow(
    session: AsyncSession, now: datetime, setups: Mapping[int, QueueSetup], report: PassReport
) -> None:
    for setup in setups.values():
        config = setup.config
        if config is None or config.max_wait is None or config.overflow_queue_id is None:
            continue
        target = setups.get(config.overflow_queue_id)
        if target is None:
            continue
        overdue = await session.scalars(
            select(Conversation).where(
                Conversation.queue_id == setup.id,
                Conversation.status == ConversationStatus.OPEN,
                Conversation.assignee_id.is_(None),
                Conversation.queue_entered_at <= now - config.max_wait,
            )
        )
        for conversation in overdue:
            await routing_log.withdraw_offers(
                session, conversation.id, now, status=OfferStatus.CANCELLED
            )
            conversation.queue_id = target.id
            enter_queue(conversation, now)
            await routing_log.record(
                session,
                kind="overflow",
                conversation_id=conversation.id,
                queue_id=target.id,
                reason=(
                    f"waited {_label(config.max_wait.total_seconds())} in {setup.name} without"
                    f" an operator: moved to its overflow queue {target.name}"
                ),
                at=now,
            )
            await emit(
                session,
                Event(
                    CONVERSATION_UPDATED,
                    {"conversation": conversation.id, "contact": conversation.contact_id},
                    {
                        "channel": conversation.channel,
                        "status": conversation.status,
                        **conversation_labels(conversation, Placement(setup.id, None)),
                    },
                ),
            )
            report.overflowed += 1


# --- 6. routing waiting work ----------------------------------------------------------------


async def _members(session: AsyncSession) -> dict[int, list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for queue_id, operator_id in await session.execute(
        select(QueueMember.queue_id, QueueMember.operator_id).order_by(QueueMember.operator_id)
    ):
        members[queue_id].append(operator_id)
    return members


async def _route_waiting(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    options: RoutingOptions,
    report: PassReport,
) -> None:
    snapshots = await operator_snapshots(session)
    members = await _members(session)
    rooms = QueueRooms(snapshots, members)
    with_room = [
        queue_id
        for queue_id in members
        if any(rooms.count(queue_id, kind) for kind in CHANNEL_KINDS)
    ]
    pending_offer = exists().where(
        Offer.conversation_id == Conversation.id, Offer.status == OfferStatus.PENDING
    )
    waiting = (
        await session.execute(
            select(
                Conversation.id,
                Conversation.contact_id,
                Conversation.channel,
                Conversation.priority,
                Conversation.queue_id,
                Conversation.queue_entered_at,
                Conversation.routing_note,
                Contact.owner_id,
                Contact.language,
                Contact.priority_tier,
            )
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(
                Conversation.status == ConversationStatus.OPEN,
                Conversation.assignee_id.is_(None),
                Conversation.queue_id.is_not(None),
                Conversation.queue_entered_at.is_not(None),
                ~pending_offer,
                # Queues where nobody has room only need their new arrivals explained.
                or_(Conversation.queue_id.in_(with_room), Conversation.routing_note.is_(None)),
            )
            .order_by(Conversation.priority.desc(), Conversation.queue_entered_at, Conversation.id)
        )
    ).all()
    if not waiting:
        return
    ids = [row.id for row in waiting]
    refusals = await _refusals(session, ids)
    sticky_queues = {
        queue_id
        for queue_id, setup in setups.items()
        if setup.config is not None and "sticky" in setup.config.strategies
    }
    last_operators = await _last_operators(
        session, [row.contact_id for row in waiting if row.queue_id in sticky_queues]
    )
    decisions = 0
    for row in waiting:
        setup = setups.get(row.queue_id)
        if setup is None:
            continue
        if setup.config is None:
            await _note(
                session,
                row,
                f"the queue's routing configuration is not valid: {setup.problem}",
                None,
                now,
            )
            continue
        kind = channel_kind(row.channel)
        if row.routing_note is not None and not rooms.count(row.queue_id, kind):
            continue  # explained already, and still nobody has room
        work = WorkItem(
            conversation_id=row.id,
            channel_kind=kind,
            language=row.language,
            priority=row.priority,
            waiting_since=row.queue_entered_at,
            contact_owner_id=row.owner_id,
            last_operator_id=last_operators.get(row.contact_id),
            required_skills=setup.config.required_skills,
            facts={"priority_tier": row.priority_tier, "channel": row.channel},
        )
        candidates = [
            rooms.snapshots[i] for i in members.get(row.queue_id, ()) if i in rooms.snapshots
        ]
        if row.routing_note is not None and not _worth_deciding(
            work, candidates, setup.config, refusals.get(row.id, {})
        ):
            continue  # explained already, and nobody who could take it has room
        decision = decide(work, candidates, setup.config.policy, now, refusals.get(row.id))
        if decision.outcome != "assign" or decision.winner_id is None:
            await _note(session, row, decision.reason, decision, now)
            report.due(decision.retry_at)
            continue
        await _give(session, row, setup, decision, now, report)
        rooms.give(decision.winner_id, kind, now)
        decisions += 1
        if decisions >= options.max_decisions_per_pass:
            report.more = True
            break


def _worth_deciding(
    work: WorkItem,
    candidates: Sequence[OperatorSnapshot],
    config: QueueConfig,
    refused: Mapping[int, OfferRefusal],
) -> bool:
    """Could anyone take this work now? A cheap check before `decide`, which also explains.

    Work that waits already explained is decided again only when some member has room for
    it, meets the required skills and has not refused it; with a backlog, most waiting work
    fails this at once and costs a pass almost nothing. Sticky queues always decide (their
    wait ends by time, not by room).
    """
    if "sticky" in config.strategies:
        return True
    facts = work.expression_facts()
    for operator in candidates:
        if operator.id in refused or not has_room(operator, work.channel_kind):
            continue
        if config.required_skills is None:
            return True
        attributes = operator_attributes(operator.skills, operator.languages, facts)
        if config.required_skills.matches(attributes):
            return True
    return False


async def _refusals(
    session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, dict[int, OfferRefusal]]:
    """Who rejected or let time out each conversation since it entered its current queue."""
    found: dict[int, dict[int, OfferRefusal]] = defaultdict(dict)
    for chunk in _chunks(conversation_ids, 1000):
        rows = await session.execute(
            select(
                RoutingDecision.conversation_id, RoutingDecision.operator_id, RoutingDecision.kind
            )
            .join(Conversation, Conversation.id == RoutingDecision.conversation_id)
            .where(
                RoutingDecision.conversation_id.in_(chunk),
                RoutingDecision.kind.in_(_REFUSALS),
                RoutingDecision.operator_id.is_not(None),
                RoutingDecision.created_at >= Conversation.queue_entered_at,
            )
        )
        for conversation_id, operator_id, kind in rows:
            if conversation_id is not None and operator_id is not None:
                found[conversation_id][operator_id] = cast(OfferRefusal, kind)
    return found


async def _last_operators(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, int]:
    """Each contact's operator of their most recently active assigned conversation."""
    found: dict[int, int] = {}
    for chunk in _chunks(sorted(set(contact_ids)), 1000):
        rows = await session.execute(
            select(Conversation.contact_id, Conversation.assignee_id)
            .where(Conversation.contact_id.in_(chunk), Conversation.assignee_id.is_not(None))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        )
        for contact_id, assignee_id in rows:
            if assignee_id is not None:
                found.setdefault(contact_id, assignee_id)
    return found


def _chunks(values: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def _note(
    session: AsyncSession, row: Any, reason: str, decision: Decision | None, now: datetime
) -> None:
    """Log why work still waits, once per distinct reason (a pass runs often)."""
    reason = reason[:500]
    if reason == row.routing_note:
        return
    await session.execute(
        update(Conversation)
        .where(Conversation.id == row.id)
        # A note is not activity: updated_at (the inbox's order) stays as it was.
        .values(routing_note=reason, updated_at=Conversation.updated_at)
    )
    await routing_log.record(
        session,
        kind=decision.outcome if decision is not None else "none",
        conversation_id=row.id,
        queue_id=row.queue_id,
        reason=reason,
        details=decision.model_dump(mode="json") if decision is not None else {},
        at=now,
    )


async def _give(
    session: AsyncSession,
    row: Any,
    setup: QueueSetup,
    decision: Decision,
    now: datetime,
    report: PassReport,
) -> None:
    assert setup.config is not None
    assert decision.winner_id is not None
    winner = decision.winner_id
    details = decision.model_dump(mode="json")
    timeout = setup.config.offer_timeout
    if timeout is not None:
        offer = Offer(
            conversation_id=row.id,
            operator_id=winner,
            queue_id=setup.id,
            created_at=now,
            expires_at=now + timeout,
        )
        session.add(offer)
        await session.flush()
        await routing_log.record(
            session,
            kind="offer",
            conversation_id=row.id,
            queue_id=setup.id,
            operator_id=winner,
            reason=(
                f"offered to operator {winner} for {_label(timeout.total_seconds())}:"
                f" {decision.reason}"
            ),
            details=details,
            at=now,
        )
        await session.execute(
            update(Conversation)
            .where(Conversation.id == row.id)
            .values(routing_note=None, updated_at=Conversation.updated_at)
        )
        await emit(
            session,
            Event(
                OFFER_CREATED,
                {"offer": offer.id, "conversation": row.id, "operator": winner},
                {
                    "expires_at": offer.expires_at.isoformat(),
                    **audience_labels([Placement(setup.id, winner)]),
                },
            ),
        )
        report.offered += 1
        return
    assigned = await session.execute(
        update(Conversation)
        .where(Conversation.id == row.id, Conversation.assignee_id.is_(None))
        .values(assignee_id=winner, routing_note=None, updated_at=now)
    )
    if cast(CursorResult[Any], assigned).rowcount != 1:
        return  # taken meanwhile (cannot happen under the routing lock; never assign twice)
    await session.execute(
        update(Operator).where(Operator.id == winner).values(last_assigned_at=now)
    )
    await routing_log.record(
        session,
        kind="assign",
        conversation_id=row.id,
        queue_id=setup.id,
        operator_id=winner,
        reason=f"assigned to operator {winner}: {decision.reason}",
        details=details,
        at=now,
    )
    await emit(
        session,
        Event(
            CONVERSATION_ASSIGNED,
            {"conversation": row.id, "contact": row.contact_id, "operator": winner},
            {"channel": row.channel, **audience_labels([Placement(setup.id, winner)])},
        ),
    )
    report.assigned += 1


# --- when the next pass is due --------------------------------------------------------------


async def _next_due(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    options: RoutingOptions,
    report: PassReport,
) -> None:
    """The earliest persisted deadline, asked in one statement (one column each), plus one
    for the oldest waiting work of the queues that overflow."""
    offline_with_work = exists().where(
        Conversation.assignee_id == Operator.id, Conversation.status == ConversationStatus.OPEN
    )
    columns = select(
        select(func.min(Offer.expires_at))
        .where(Offer.status == OfferStatus.PENDING)
        .scalar_subquery(),
        select(func.min(SlaTimer.due_at)).where(SlaTimer.state == "running").scalar_subquery(),
        select(func.min(Operator.console_seen_at))
        .where(
            Operator.presence.in_([Presence.AVAILABLE, Presence.BUSY]),
            Operator.console_seen_at.is_not(None),
        )
        .scalar_subquery(),
        select(func.min(Operator.presence_since))
        .where(Operator.presence == Presence.OFFLINE, offline_with_work)
        .scalar_subquery(),
        tasks.assignable_now(),
        tasks.earliest_reminder(),
    )
    offer, sla, seen, offline, task_now, reminder = (await session.execute(columns)).one()
    report.due(offer)
    report.due(sla)
    if seen is not None:
        report.due(seen + options.away_after_disconnect)
    if offline is not None:
        report.due(offline + options.requeue_after_offline)
    report.due(now if task_now else reminder)
    overflowing = {
        setup.id: setup.config.max_wait
        for setup in setups.values()
        if setup.config is not None
        and setup.config.max_wait is not None
        and setup.config.overflow_queue_id is not None
    }
    if overflowing:
        oldest = await session.execute(
            select(Conversation.queue_id, func.min(Conversation.queue_entered_at))
            .where(
                Conversation.queue_id.in_(overflowing),
                Conversation.status == ConversationStatus.OPEN,
                Conversation.assignee_id.is_(None),
            )
            .group_by(Conversation.queue_id)
        )
        for queue_id, entered in oldest:
            if entered is not None and queue_id is not None:
                report.due(entered + overflowing[queue_id])
    if report.next_due is not None and report.next_due < now:
        report.next_due = now

"""The routing pass: the pure building blocks of this package wired to the database.

One *routing pass* (`run_pass`) does, under one lock and in one transaction the caller owns:

0. one look at what is due (`routing/due.py`): the earliest deadline of each kind and whether
   there is work of the kinds without one; the steps below with nothing to do are skipped;
1. presence housekeeping: auto-away when an operator's console has been gone for a grace,
   auto-offline later, offers of operators no longer available withdrawn, and the unanswered
   work of operators offline past the requeue grace put back in its queue
   (`routing/housekeeping.py`);
2. offers past their timeout marked timed out (the work goes to the next candidate);
3. SLA timers that are due settled: met, or breached and escalated per the queue's policy
   (`routing/sla.py`);
4. new conversations matched to a queue (the rule set, else the channel's queue), their SLA
   timers started; the new work and its facts are gathered before, outside the lock
   (`routing/new_work.py`);
5. work waiting longer than its queue's maximum wait moved to the overflow queue;
6. waiting work routed in order (priority, then longest wait): offered to, or assigned to,
   the operator `routing.strategies.decide` picks; every decision logged with its reasons
   (`routing/waiting.py`);
7. new leads given an owner by the lead rules (`routing/lead_assignment.py`);
8. tasks: unowned callbacks given an owner, due tasks announced to theirs (`routing/tasks.py`);
9. business-time durations measured for reports (`routing/metrics.py`).

The queues' configurations and the rule sets come from `routing/setup.py`; what people do by
hand (offers accepted or rejected, transfers) is in `routing/manual.py`.

The operators are read once per pass (`routing.capacity.operator_snapshots`, when a step needs
them), and only by the steps that need them. A pass with nothing to do is a handful of
statements whatever the backlog: the lock, the queues, what is due, and, while work waits, the
operators with their loads, the queues' members and the waiting work that someone could take.
The engine's passes after one that left nothing it could give, with nothing changed since,
skip the waiting work too (`settled`, see `routing/engine.py`).

Everything that changes who holds work (passes, accepts, rejects, transfers, manual
assignment) takes the routing lock first: on PostgreSQL a transaction-scoped advisory lock, on
SQLite the database's single writer. So two server processes never decide on stale loads: no
operator goes above capacity and no conversation gets two assignees or two pending offers
(the latter also a unique index). Passes are idempotent: any process may run one at any time.

Times come in as `now`, so tests drive the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import CONVERSATION_UPDATED
from core.events import Event, emit
from core.models import (
    Conversation,
    ConversationStatus,
    OfferStatus,
    RoutingDecision,
)
from core.routing_log import REOPENED_NOTE, lock_routing
from core.visibility import Placement, conversation_labels
from routing import metrics, tasks
from routing.capacity import channel_kind, operator_snapshots
from routing.due import (
    AUTO_AWAY_BUSY_REASON,
    AUTO_AWAY_REASON,
    AUTO_REASONS,
    Due,
    overflowing,
    read_due,
)
from routing.housekeeping import expire_offers, label, presence_housekeeping
from routing.lead_assignment import assign_leads
from routing.new_work import NewWork, entry_priority
from routing.scope import QueueMarks
from routing.setup import QueueSetup, enter_queue, load_setups, queue_rules
from routing.sla import settle_slas, start_slas
from routing.strategies import OperatorSnapshot
from routing.waiting import route_waiting

log = logging.getLogger(__name__)

__all__ = [
    "AUTO_AWAY_BUSY_REASON",
    "AUTO_AWAY_REASON",
    "AUTO_REASONS",
    "PassReport",
    "RoutingOptions",
    "run_pass",
]


@dataclass(frozen=True)
class RoutingOptions:
    """Timings of presence housekeeping and the bounds of one pass."""

    away_after_disconnect: timedelta = timedelta(seconds=60)
    offline_after_disconnect: timedelta = timedelta(minutes=15)
    requeue_after_offline: timedelta = timedelta(minutes=5)
    enricher_timeout: float = 2.0
    # Decisions per transaction (work given, and waiting work explained): bounds how long one
    # pass holds the routing lock.
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
    # Whether the pass left waiting work that could be given now: False when the waiting step
    # looked at all of it (or none waits), True when it stopped at the bound, None when it
    # did not look (`run_pass(settled=True)` with nothing changed by the pass itself).
    undecided: bool | None = None
    # When the waiting step's answers change by time alone (a queue opening, a sticky wait
    # ending), as far as the step saw; also folded into next_due.
    waiting_due: datetime | None = None

    def due(self, moment: datetime | None) -> None:
        if moment is not None and (self.next_due is None or moment < self.next_due):
            self.next_due = moment

    def due_waiting(self, moment: datetime | None) -> None:
        """A deadline of the waiting step (see `waiting_due`)."""
        self.due(moment)
        if moment is not None and (self.waiting_due is None or moment < self.waiting_due):
            self.waiting_due = moment


@dataclass
class _Operators:
    """The operators' snapshots, read once per pass when a step first needs them."""

    snapshots: dict[int, OperatorSnapshot] | None = None

    async def get(self, session: AsyncSession) -> dict[int, OperatorSnapshot]:
        if self.snapshots is None:
            self.snapshots = await operator_snapshots(session)
        return self.snapshots


# --- The pass --------------------------------------------------------------------------------


async def run_pass(
    session: AsyncSession,
    now: datetime,
    options: RoutingOptions,
    new_work: Sequence[NewWork] = (),
    *,
    settled: bool = False,
    marks: QueueMarks | None = None,
) -> PassReport:
    """One routing pass (see the module docstring); the caller commits.

    `settled`: the caller knows that nothing the waiting step reads has changed since a pass
    left no waiting work it could give (`PassReport.undecided` False), and that no
    `waiting_due` has come (`routing/engine.py` keeps track). Then the waiting step runs only
    if a step of this pass changes something (new work, presence, offers, SLAs, overflow).

    `marks`: the caller's memory of what its earlier waiting steps saw of each queue; the
    step reads the explained work only of the queues, and kinds, that may now give it
    (`routing/scope.py`). The caller forgets them when the pass fails to commit
    (`QueueMarks.forget`)."""
    await lock_routing(session)
    report = PassReport()
    setups = await load_setups(session)
    max_waits = overflowing(setups)
    due = await read_due(session, now, setups)
    operators = _Operators()
    # Whether a step before the waiting work's ran: it may have put work back to waiting.
    busy = _busy(due, options, max_waits) or bool(new_work)
    await presence_housekeeping(session, due, options, report)
    await expire_offers(session, due, report)
    if due.slas_due:
        await settle_slas(session, now, setups, report)
    await _match_queues(session, now, setups, new_work, operators, report)
    overdue = due.overflow_due(max_waits)
    if overdue and await _overflow(session, now, setups, overdue, report):
        operators.snapshots = None  # offers withdrawn: their operators hold less
    if busy or (due.waiting and not settled):
        snapshots = await operators.get(session)
        await route_waiting(session, now, setups, snapshots, options, report, marks)
    elif not due.waiting:
        report.undecided = False  # nothing waits
        if marks is not None:
            marks.nothing_waits(now)
    if due.new_leads:
        await assign_leads(session, now, report)
    given_tasks = await tasks.assign_callbacks(session, now) if due.unowned_callback else 0
    # A callback given an owner now may be due already.
    if due.reminders_due or given_tasks:
        await tasks.notify_due(session, now)
    if due.unmeasured:
        hours = {
            queue_id: setup.config.business_hours if setup.config is not None else None
            for queue_id, setup in setups.items()
        }
        if await metrics.measure(session, hours) >= metrics.BATCH:
            report.more = True
    changed = busy or due.new_leads or due.unowned_callback or due.reminders_due
    if changed or report.offered or report.assigned:
        # What this pass did moves deadlines (offers made, timers started, ...): look again.
        due = await read_due(session, now, setups)
    due.fold_into(report, options, max_waits)
    if report.next_due is not None and report.next_due < now:
        report.next_due = now
    return report


def _busy(due: Due, options: RoutingOptions, max_waits: Mapping[int, timedelta]) -> bool:
    """Whether any step before the waiting work's has something to do."""
    return (
        due.gone(options)
        or due.long_gone(options)
        or due.stale_offer
        or due.stranded(options)
        or due.offers_expired
        or due.slas_due
        or bool(due.overflow_due(max_waits))
    )


# --- 4. matching new work to queues ---------------------------------------------------------


async def _match_queues(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    new_work: Sequence[NewWork],
    operators: _Operators,
    report: PassReport,
) -> None:
    if not new_work:
        return
    rule_set = await queue_rules(session)
    # The conversations, and whether each was matched before (reopened), in one statement.
    routed = (
        exists()
        .where(RoutingDecision.conversation_id == Conversation.id, RoutingDecision.kind == "queue")
        .label("routed")
    )
    found = {
        conversation.id: (conversation, bool(routed_before))
        for conversation, routed_before in await session.execute(
            select(Conversation, routed).where(
                Conversation.id.in_([item.conversation_id for item in new_work])
            )
        )
    }
    for item in new_work:
        conversation, routed_before = found.get(item.conversation_id, (None, False))
        if conversation is None or conversation.queue_entered_at is not None:
            continue  # another process matched it meanwhile
        if conversation.status != ConversationStatus.OPEN:
            continue
        if routed_before or conversation.routing_note == REOPENED_NOTE:
            # Reopened by the customer: its queue stands; its operator keeps it if they can.
            await _reopened(session, conversation, await operators.get(session), now)
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
    snapshots: dict[int, OperatorSnapshot],
    now: datetime,
) -> None:
    conversation.queue_entered_at = now
    # The reopening marker has served: held, or waiting anew unexplained, which the waiting
    # step reads (routing/scope.py).
    conversation.routing_note = None
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
        # They hold it no more: the rest of the pass sees them with room for it.
        load = dict(holder.load)
        load[kind] = max(0, load.get(kind, 0) - 1)
        snapshots[holder.id] = holder.model_copy(update={"load": load})
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
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    overdue_queues: Sequence[int],
    report: PassReport,
) -> bool:
    """Move work past its queue's maximum wait to the overflow queue; whether offers of it
    were withdrawn (their operators hold less now)."""
    withdrawn = False
    for queue_id in overdue_queues:
        setup = setups[queue_id]
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
            if await routing_log.withdraw_offers(
                session, conversation.id, now, status=OfferStatus.CANCELLED
            ):
                withdrawn = True
            conversation.queue_id = target.id
            enter_queue(conversation, now)
            await routing_log.record(
                session,
                kind="overflow",
                conversation_id=conversation.id,
                queue_id=target.id,
                reason=(
                    f"waited {label(config.max_wait.total_seconds())} in {setup.name} without"
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
    return withdrawn

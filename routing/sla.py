"""SLA timers: started when work is matched to a queue, settled by the routing pass (step 3).

`start_slas` starts a conversation's first-response and resolution timers per its queue's
targets (due in business time when the queue has business hours); `settle_slas` settles the
due ones: met, cancelled (resolved without an answer), or breached and escalated per the policy
of the queue the work is in now (`_escalate`). Both run inside the pass
(`routing.service.run_pass`), under its lock and in its transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import SLA_BREACHED
from core.events import Event, emit
from core.models import Conversation, ConversationStatus, SlaKind, SlaTimer
from core.visibility import Placement, conversation_labels
from routing.config import MAX_PRIORITY, QueueConfig
from routing.setup import QueueSetup, enter_queue

if TYPE_CHECKING:
    from routing.service import PassReport


def _due(config: QueueConfig, start: datetime, minutes: int) -> datetime | None:
    duration = timedelta(minutes=minutes)
    if config.business_hours is None:
        return start + duration
    return config.business_hours.add_business_time(start, duration)


async def start_slas(
    session: AsyncSession, conversation: Conversation, setup: QueueSetup | None, now: datetime
) -> None:
    if setup is None or setup.config is None:
        return
    targets = setup.config.sla
    wanted = [
        (SlaKind.FIRST_RESPONSE, targets.first_response_minutes),
        (SlaKind.RESOLUTION, targets.resolution_minutes),
    ]
    for kind, minutes in wanted:
        if minutes is None:
            continue
        due = _due(setup.config, conversation.created_at, minutes)
        if due is None:
            continue
        if kind is SlaKind.FIRST_RESPONSE:
            conversation.sla_due_at = due
        else:
            conversation.resolution_due_at = due
        session.add(
            SlaTimer(conversation_id=conversation.id, kind=kind, queue_id=setup.id, due_at=due)
        )


async def settle_slas(
    session: AsyncSession, now: datetime, setups: Mapping[int, QueueSetup], report: PassReport
) -> None:
    due = await session.execute(
        select(SlaTimer, Conversation)
        .join(Conversation, Conversation.id == SlaTimer.conversation_id)
        .where(SlaTimer.state == "running", SlaTimer.due_at <= now)
        .order_by(SlaTimer.due_at)
        .limit(1000)
    )
    for timer, conversation in due:
        done_at = (
            conversation.first_response_at
            if timer.kind == SlaKind.FIRST_RESPONSE
            else conversation.resolved_at
        )
        if done_at is not None and done_at <= timer.due_at:
            timer.state, timer.settled_at = "met", done_at
            continue
        if (
            timer.kind == SlaKind.FIRST_RESPONSE
            and conversation.status == ConversationStatus.RESOLVED
        ):
            # Closed without an answer (spam, solved elsewhere): nothing is late any more.
            timer.state, timer.settled_at = "cancelled", now
            continue
        timer.state, timer.settled_at = "breached", now
        report.breached += 1
        # The queue the work is in now decides how to escalate (it may have been transferred).
        queue_id = conversation.queue_id or timer.queue_id or 0
        await _escalate(session, timer, conversation, setups.get(queue_id), now)


async def _escalate(
    session: AsyncSession,
    timer: SlaTimer,
    conversation: Conversation,
    setup: QueueSetup | None,
    now: datetime,
) -> None:
    escalation = setup.config.escalation if setup is not None and setup.config else None
    actions = escalation.actions if escalation is not None else ("notify_supervisors",)
    done = []
    if escalation is not None and "raise_priority" in actions:
        raised = min(MAX_PRIORITY, conversation.priority + escalation.raise_priority_by)
        if raised != conversation.priority:
            done.append(f"priority {conversation.priority} -> {raised}")
            conversation.priority = raised
            # New to routing: it explains the work again (routing/scope.py).
            conversation.routing_note = None
    if "reassign" in actions and conversation.assignee_id is not None:
        previous = conversation.assignee_id
        conversation.assignee_id = None
        enter_queue(conversation, now)
        # Logged as a time-out, so routing does not hand the work straight back to them.
        await routing_log.record(
            session,
            kind="timed_out",
            conversation_id=conversation.id,
            queue_id=conversation.queue_id,
            operator_id=previous,
            reason=f"operator {previous} missed the {timer.kind.replace('_', ' ')} target",
            actor_label="sla",
            at=now,
        )
        await routing_log.emit_assignment(
            session, conversation, Placement(conversation.queue_id, previous)
        )
        done.append(f"taken from operator {previous} and requeued")
    if "notify_supervisors" in actions:
        done.append("supervisors notified")
    what = timer.kind.replace("_", " ")
    await routing_log.record(
        session,
        kind="sla_breach",
        conversation_id=conversation.id,
        queue_id=conversation.queue_id,
        operator_id=conversation.assignee_id,
        reason=f"{what} target missed (due {timer.due_at:%Y-%m-%d %H:%M} UTC)"
        + (f": {', '.join(done)}" if done else ""),
        details={"sla": timer.kind, "due_at": timer.due_at.isoformat(), "actions": list(actions)},
        actor_label="sla",
        at=now,
    )
    await emit(
        session,
        Event(
            SLA_BREACHED,
            {"conversation": conversation.id, "queue": conversation.queue_id or 0},
            {
                "kind": str(timer.kind),
                "notify": "supervisors" if "notify_supervisors" in actions else "",
                **conversation_labels(conversation),
            },
        ),
    )

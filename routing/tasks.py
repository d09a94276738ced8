"""Routing of tasks: unowned callbacks given an owner, due tasks announced to their owners.

Two steps of a routing pass (`routing.service.run_pass`, after the leads), in its transaction
and under its lock:

1. `assign_callbacks`: open callback tasks with a queue and no owner get one among the queue's
   members, chosen by `decide_task_owner` (pure, over snapshots): deactivated members and
   those away or offline are excluded, with the reason (like a conversation, a callback goes
   to someone at work: one who missed calls at night waits for the morning's first); of the
   others, available ones come before busy ones, then the fewest open tasks, then the longest
   since routing last gave them a task (never comes first), then the lowest id. The choice is
   stored on the task (``meta["routing"]``: ``operator_id``, ``reason``, ``at``) and in the
   routing decision log (kind ``task_assign``, on the task's conversation), which is also the
   memory of "last given a task". A queue where nobody is at work leaves the callback
   unowned: it is listed under "my queues" for every member, and decided again when a
   member's presence, the queue or its members change.
2. `notify_due`: open tasks with an owner, due and not yet announced (``notified_at`` null)
   get one ``task_due`` notification for the owner (only with a conversation: a notification
   belongs to one), ``notified_at`` set, and a ``task.due`` event (the console raises a
   desktop notification) besides ``task.updated``. A task announced before (it got a new due
   time or a new owner, which clear ``notified_at``) gets its one notification back, unread.

When tasks need the next pass (columns of the pass's one look at its deadlines): the earliest
due time of the open, owned, unannounced tasks (`earliest_reminder`), and now while an unowned
callback waits in a queue with a member at work (`assignable_now`; one pass handles at most
`BATCH` of each).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Exists, ScalarSelect, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import TASK_DUE
from core.events import Event, emit
from core.logfields import log_fields
from core.models import (
    Notification,
    Operator,
    Presence,
    QueueMember,
    RoutingDecision,
    Task,
    TaskKind,
)
from core.tasks import emit_task

log = logging.getLogger(__name__)

# Tasks handled per step and pass: bounds how long a pass holds the routing lock.
BATCH = 500
TASK_ASSIGN = "task_assign"
# How the candidates are ordered, for the decision's reason.
PREFERENCE = (
    "at work (available before busy), then fewest open tasks, then longest since last given a task"
)
# Presences of members who may be given a callback.
AT_WORK = (Presence.AVAILABLE, Presence.BUSY)


# --- the decision (pure) ------------------------------------------------------------------------


_FROZEN = ConfigDict(extra="forbid", frozen=True)


class MemberSnapshot(BaseModel):
    """A member of the task's queue as routing sees them at the moment of the decision."""

    model_config = _FROZEN

    operator_id: int
    active: bool
    presence: Presence
    # Open tasks (callbacks and follow-ups) they own now.
    open_tasks: int = 0
    # When routing last gave them a task; None: never.
    last_task_at: AwareDatetime | None = None


class TaskCandidate(BaseModel):
    """A member considered: excluded with reasons, or eligible with a rank (1 is the best)."""

    model_config = _FROZEN

    operator_id: int
    rank: int | None = None
    exclusions: tuple[str, ...] = ()
    standing: dict[str, str] = {}


class TaskOwnerDecision(BaseModel):
    """Who gets a callback and why, as stored in the decision log."""

    model_config = _FROZEN

    task_id: int
    queue_id: int
    decided_at: datetime
    owner_id: int | None
    reason: str
    # Eligible by rank, then the excluded by operator id.
    candidates: tuple[TaskCandidate, ...]


def _rank_key(member: MemberSnapshot) -> tuple[int, int, datetime, int]:
    never = datetime.min.replace(tzinfo=UTC)
    return (
        0 if member.presence == Presence.AVAILABLE else 1,  # then busy
        member.open_tasks,
        member.last_task_at or never,
        member.operator_id,
    )


def _excluded(member: MemberSnapshot) -> tuple[str, ...]:
    """Why a member cannot be given a callback now (empty: they can)."""
    if not member.active:
        return ("deactivated",)
    if member.presence not in AT_WORK:
        return (str(member.presence),)
    return ()


def _standing(member: MemberSnapshot) -> dict[str, str]:
    last = member.last_task_at
    return {
        "presence": str(member.presence),
        "open_tasks": str(member.open_tasks),
        "last_task": "never" if last is None else f"{last.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
    }


def _tasks(count: int) -> str:
    return f"{count} open task" + ("" if count == 1 else "s")


def decide_task_owner(
    task_id: int, queue_id: int, members: Sequence[MemberSnapshot], now: datetime
) -> TaskOwnerDecision:
    """Choose the owner of callback `task_id` among the members of its queue, with reasons."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC), not a naive one")
    ids = [member.operator_id for member in members]
    if len(set(ids)) != len(ids):
        raise ValueError("each member may appear only once")
    eligible = sorted((member for member in members if not _excluded(member)), key=_rank_key)
    excluded = tuple(
        TaskCandidate(operator_id=member.operator_id, exclusions=_excluded(member))
        for member in sorted(members, key=lambda member: member.operator_id)
        if _excluded(member)
    )
    ranked = tuple(
        TaskCandidate(operator_id=member.operator_id, rank=rank, standing=_standing(member))
        for rank, member in enumerate(eligible, start=1)
    )
    if not eligible:
        reason = (
            f"queue {queue_id} has no members: the callback waits there unowned"
            if not members
            else f"no member of queue {queue_id} is at work: the callback waits there unowned"
        )
        owner_id = None
    else:
        winner = eligible[0]
        standing = _standing(winner)
        reason = (
            f"callback given to operator {winner.operator_id} ({standing['presence']},"
            f" {_tasks(winner.open_tasks)}, last given a task: {standing['last_task']});"
            f" {PREFERENCE}"
        )
        owner_id = winner.operator_id
    return TaskOwnerDecision(
        task_id=task_id,
        queue_id=queue_id,
        decided_at=now.astimezone(UTC),
        owner_id=owner_id,
        reason=reason,
        candidates=ranked + excluded,
    )


# --- 1. callbacks given an owner ----------------------------------------------------------------


def _unowned_callbacks() -> list[ColumnElement[bool]]:
    return [
        Task.kind == TaskKind.CALLBACK,
        Task.done_at.is_(None),
        Task.owner_id.is_(None),
        Task.queue_id.is_not(None),
    ]


async def _member_snapshots(
    session: AsyncSession, queue_ids: set[int]
) -> dict[int, list[MemberSnapshot]]:
    """The members of these queues, with their open tasks and when they were last given one."""
    rows = (
        await session.execute(
            select(QueueMember.queue_id, Operator.id, Operator.active, Operator.presence)
            .join(Operator, Operator.id == QueueMember.operator_id)
            .where(QueueMember.queue_id.in_(queue_ids))
            .order_by(QueueMember.queue_id, Operator.id)
        )
    ).all()
    operator_ids = {row[1] for row in rows}
    open_tasks: dict[int | None, int] = {}
    last: dict[int | None, datetime] = {}
    if operator_ids:
        open_tasks = {
            row[0]: row[1]
            for row in await session.execute(
                select(Task.owner_id, func.count())
                .where(Task.owner_id.in_(operator_ids), Task.done_at.is_(None))
                .group_by(Task.owner_id)
            )
        }
        last = {
            row[0]: row[1]
            for row in await session.execute(
                select(RoutingDecision.operator_id, func.max(RoutingDecision.created_at))
                .where(
                    RoutingDecision.kind == TASK_ASSIGN,
                    RoutingDecision.operator_id.in_(operator_ids),
                )
                .group_by(RoutingDecision.operator_id)
            )
        }
    members: dict[int, list[MemberSnapshot]] = defaultdict(list)
    for queue_id, operator_id, active, presence in rows:
        members[queue_id].append(
            MemberSnapshot(
                operator_id=operator_id,
                active=active,
                presence=Presence(presence),
                open_tasks=open_tasks.get(operator_id, 0),
                last_task_at=last.get(operator_id),
            )
        )
    return members


def _given(
    members: Mapping[int, list[MemberSnapshot]], operator_id: int, now: datetime
) -> dict[int, list[MemberSnapshot]]:
    """The snapshots after `operator_id` was given a task now (in every queue of theirs)."""
    return {
        queue_id: [
            member.model_copy(update={"open_tasks": member.open_tasks + 1, "last_task_at": now})
            if member.operator_id == operator_id
            else member
            for member in queue_members
        ]
        for queue_id, queue_members in members.items()
    }


async def assign_callbacks(session: AsyncSession, now: datetime) -> int:
    """Give unowned callbacks of a queue an owner (see the module docstring); how many got
    one."""
    tasks = list(
        await session.scalars(
            select(Task).where(*_unowned_callbacks()).order_by(Task.due_at, Task.id).limit(BATCH)
        )
    )
    if not tasks:
        return 0
    members = await _member_snapshots(session, {task.queue_id for task in tasks if task.queue_id})
    given = 0
    for task in tasks:
        assert task.queue_id is not None  # the query's condition
        decision = decide_task_owner(task.id, task.queue_id, members.get(task.queue_id, []), now)
        routing = {
            "operator_id": decision.owner_id,
            "reason": decision.reason,
            "at": now.isoformat(),
        }
        if decision.owner_id is None:
            # Noted once per reason, not once per pass; decided again when members change.
            if (task.meta.get("routing") or {}).get("reason") != decision.reason:
                task.meta = {**task.meta, "routing": routing}
            continue
        task.owner_id = decision.owner_id
        task.notified_at = None
        task.updated_at = now
        task.meta = {**task.meta, "routing": routing}
        members = _given(members, decision.owner_id, now)
        await routing_log.record(
            session,
            kind=TASK_ASSIGN,
            conversation_id=task.conversation_id,
            queue_id=task.queue_id,
            operator_id=decision.owner_id,
            reason=decision.reason,
            details=decision.model_dump(mode="json"),
            at=now,
        )
        await session.flush()
        await emit_task(session, task)
        log.info(
            "callback task given an owner",
            extra=log_fields(
                task_id=task.id, queue_id=task.queue_id, operator_id=decision.owner_id
            ),
        )
        given += 1
    return given


# --- 2. due tasks announced ---------------------------------------------------------------------


def _due_unannounced(now: datetime) -> list[ColumnElement[bool]]:
    return [
        Task.done_at.is_(None),
        Task.owner_id.is_not(None),
        Task.notified_at.is_(None),
        Task.due_at <= now,
    ]


async def _reminder(session: AsyncSession, task: Task, owner_id: int, now: datetime) -> int:
    """The owner's one notification of `task`, new or back unread; its id."""
    assert task.conversation_id is not None
    notification = await session.scalar(
        select(Notification).where(
            Notification.operator_id == owner_id, Notification.task_id == task.id
        )
    )
    if notification is None:
        notification = Notification(
            operator_id=owner_id,
            kind="task_due",
            conversation_id=task.conversation_id,
            task_id=task.id,
            created_at=now,
        )
        session.add(notification)
    else:
        notification.conversation_id = task.conversation_id
        notification.created_at = now
        notification.read_at = None
    await session.flush()
    return notification.id


async def notify_due(session: AsyncSession, now: datetime) -> int:
    """Tell the owners of due tasks (see the module docstring); how many were told."""
    tasks = list(
        await session.scalars(
            select(Task).where(*_due_unannounced(now)).order_by(Task.due_at, Task.id).limit(BATCH)
        )
    )
    for task in tasks:
        owner_id = task.owner_id
        assert owner_id is not None  # the query's condition
        ids = {"operator": owner_id, "task": task.id}
        if task.conversation_id is not None:
            ids["conversation"] = task.conversation_id
            ids["notification"] = await _reminder(session, task, owner_id, now)
        task.notified_at = now
        await session.flush()
        await emit(session, Event(TASK_DUE, ids, {"kind": task.kind}))
        await emit_task(session, task)
    return len(tasks)


# --- when tasks need a pass ---------------------------------------------------------------------


def assignable_now() -> Exists:
    """Whether an unowned callback waits in a queue with a member at work: a pass has task
    work now (see the module docstring); a column for the pass's one look at its deadlines."""
    return exists().where(
        *_unowned_callbacks(),
        exists().where(
            QueueMember.queue_id == Task.queue_id,
            QueueMember.operator_id == Operator.id,
            Operator.active.is_(True),
            Operator.presence.in_(AT_WORK),
        ),
    )


def earliest_reminder() -> ScalarSelect[datetime]:
    """When the next owned task falls due unannounced (NULL: none): a column, as
    `assignable_now`."""
    return (
        select(func.min(Task.due_at))
        .where(Task.done_at.is_(None), Task.owner_id.is_not(None), Task.notified_at.is_(None))
        .scalar_subquery()
    )

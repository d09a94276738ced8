"""Tasks: callbacks of missed calls and follow-ups operators set on conversations.

A task is open while `done_at` is null. Callbacks are made by the voice channel (a caller
hung up in the queue, nobody answered, after hours): at most one is open per contact (a
partial unique index), so a second missed call updates the open one (`meta.attempts`, the
latest reason and wait) instead of adding another; a customer whose new call is answered
closes it as `answered`.

Follow-ups are reminders operators set on a conversation they may see (`create_follow_up`):
owned by their author unless given to someone, in the conversation's queue, due in the future.

Invariants:

- Who sees a task is `core.visibility.task_filter` (supervisors all; an operator their own,
  their queues', those of conversations they may see), on every read path here: a task
  someone may not see does not exist for them (404).
- A closed task (`done_at` set, with its `outcome`) stays closed: changing or closing it
  again is a 409.
- Whoever sees an open task may move its due time, edit its note or close it (a colleague
  may call the customer back). An operator gives away only a task that is theirs (or
  unowned), and only to an active member of its queue (or takes it themself); supervisors
  and admins give any task to any active operator, or back to its queue.
- A new due time or a new owner clears `notified_at`: the (new) owner is reminded when it is
  due (routing/tasks.py sends the reminders).
- Every change is audited and announced (`task.updated`, to the owner before and after, the
  queue's members and who may see the conversation).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core import audit
from core.audit import SYSTEM, Actor
from core.changes import UNSET, Unset
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.event_types import NOTIFICATION_READ, TASK_UPDATED
from core.events import Event, emit
from core.models import (
    Contact,
    Conversation,
    Lead,
    Notification,
    Operator,
    Queue,
    QueueMember,
    Task,
    TaskKind,
    TaskOutcome,
    utcnow,
)
from core.operators import require_active_operator
from core.pagination import keyset_page
from core.sql import insert_ignoring_conflicts
from core.visibility import (
    Placement,
    audience_labels,
    conversation_filter,
    lead_filter,
    task_filter,
)

# Why a call became a callback.
CALLBACK_REASONS = ("abandoned", "no_answer", "busy", "failed", "after_hours", "voicemail")
MAX_NOTE = 2000
# A due time this little in the past still counts as now (a browser's clock may lag).
PAST_GRACE = timedelta(minutes=1)
# How people close a task; the voice channel closes callbacks as answered or called_back.
CLOSED_BY_PEOPLE = (TaskOutcome.DONE, TaskOutcome.CANCELLED)


class TaskScope(enum.StrEnum):
    """Which tasks a list shows (all of them among those the caller may see)."""

    # Owned by the caller.
    MINE = "mine"
    # Of the caller's queues, owned by someone else or by nobody.
    QUEUES = "queues"
    # Open and past their due time (supervisors: everyone's).
    OVERDUE = "overdue"
    ALL = "all"


class TaskState(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


class CallPlacer(Protocol):
    """Places the phone call of a callback task (the voice channel implements it)."""

    async def place_callback(self, actor: Actor, task_id: int) -> dict[str, Any]:
        """Ring `actor`'s phone, then the task's customer; returns ``{"call_id": int,
        "state": str}`` once the call is placed. Raises `core.errors` (NotFound for a task
        the actor may not see, Conflict when the call cannot be made now)."""
        ...


@dataclass(frozen=True)
class MissedCall:
    """What the voice channel knows of a call nobody answered."""

    contact_id: int
    conversation_id: int | None
    queue_id: int | None
    number: str
    reason: str
    waited_seconds: int | None = None
    voicemail_interaction_id: int | None = None
    call_id: int | None = None
    # When the callback is due; None: at once.
    due_at: datetime | None = None


async def open_callback(session: AsyncSession, missed: MissedCall, now: datetime) -> Task:
    """The contact's open callback task, made or updated with this missed call; the caller
    commits. Due at once: a callback is work waiting now."""
    if missed.reason not in CALLBACK_REASONS:
        raise ValueError(f"unknown callback reason {missed.reason!r}")
    call = {
        "reason": missed.reason,
        "at": now.isoformat(),
        "waited_seconds": missed.waited_seconds,
        "call_id": missed.call_id,
    }
    meta: dict[str, Any] = {
        "number": missed.number,
        "reason": missed.reason,
        "waited_seconds": missed.waited_seconds,
        "voicemail_interaction_id": missed.voicemail_interaction_id,
        "attempts": 1,
        "calls": [call],
    }
    # The partial unique index: the conflict target repeats its predicate to match it.
    open_callback_index = (Task.kind == TaskKind.CALLBACK) & Task.done_at.is_(None)
    statement = (
        insert_ignoring_conflicts(session, Task, ["contact_id"], open_callback_index)
        .values(
            kind=TaskKind.CALLBACK,
            contact_id=missed.contact_id,
            conversation_id=missed.conversation_id,
            queue_id=missed.queue_id,
            due_at=missed.due_at or now,
            note="",
            meta=meta,
            created_at=now,
            updated_at=now,
        )
        .returning(Task.id)
    )
    task_id = await session.scalar(statement)
    if task_id is not None:
        task = await session.get(Task, task_id)
        assert task is not None
    else:
        task = await _open_callback_of(session, missed.contact_id)
        calls = [*task.meta.get("calls", []), call][-20:]
        task.meta = {
            **task.meta,
            "reason": missed.reason,
            "waited_seconds": missed.waited_seconds,
            "voicemail_interaction_id": missed.voicemail_interaction_id
            or task.meta.get("voicemail_interaction_id"),
            "attempts": int(task.meta.get("attempts", 1)) + 1,
            "calls": calls,
        }
        if missed.conversation_id is not None:
            task.conversation_id = missed.conversation_id
        task.updated_at = now
    await session.flush()
    await audit.record(
        session,
        SYSTEM,
        "task.callback",
        "task",
        task.id,
        {"reason": missed.reason, "attempts": task.meta.get("attempts", 1)},
    )
    await emit_task(session, task)
    return task


async def _open_callback_of(session: AsyncSession, contact_id: int) -> Task:
    task = await session.scalar(
        select(Task)
        .where(
            Task.contact_id == contact_id,
            Task.kind == TaskKind.CALLBACK,
            Task.done_at.is_(None),
        )
        .with_for_update()
    )
    if task is None:  # pragma: no cover - the conflict means it exists
        raise RuntimeError("callback conflict without an open callback")
    return task


async def close_callbacks(
    session: AsyncSession, contact_id: int, outcome: TaskOutcome, now: datetime
) -> list[int]:
    """Close the contact's open callback (the customer got through); the ids closed."""
    closed = list(
        await session.scalars(
            update(Task)
            .where(
                Task.contact_id == contact_id,
                Task.kind == TaskKind.CALLBACK,
                Task.done_at.is_(None),
            )
            .values(done_at=now, outcome=outcome, updated_at=now)
            .returning(Task.id)
        )
    )
    for task_id in closed:
        task = await session.get(Task, task_id)
        if task is not None:
            await session.refresh(task)
            await audit.record(
                session, SYSTEM, "task.complete", "task", task_id, {"outcome": str(outcome)}
            )
            await emit_task(session, task)
    return closed


async def emit_task(
    session: AsyncSession, task: Task, *, previous_owner: int | None = None
) -> None:
    """Tell consoles a task changed: its owner (and the one before a change), its queue's
    members, who may see its conversation, supervisors."""
    ids = {"task": task.id}
    if task.lead_id is not None:
        ids["lead"] = task.lead_id
    placements = [Placement(task.queue_id, task.owner_id)]
    if task.conversation_id is not None:
        ids["conversation"] = task.conversation_id
        conversation = await session.get(Conversation, task.conversation_id)
        if conversation is not None:
            placements.append(Placement(conversation.queue_id, conversation.assignee_id))
    labels = {
        "kind": task.kind,
        "state": state_of(task),
        **audience_labels(placements, [previous_owner]),
    }
    await emit(session, Event(TASK_UPDATED, ids, labels))


def state_of(task: Task) -> TaskState:
    return TaskState.OPEN if task.done_at is None else TaskState.DONE


def is_overdue(task: Task, now: datetime) -> bool:
    return task.done_at is None and task.due_at < now


# --- reading ------------------------------------------------------------------------------------


async def get_task(
    session: AsyncSession, actor: Actor, task_id: int, *, lock: bool = False
) -> Task:
    """The task if `actor` may see it (`core.visibility.task_filter`); else NotFound, whether
    it exists or not."""
    query = select(Task).where(Task.id == task_id, task_filter(actor))
    if lock:
        query = query.with_for_update(of=Task).execution_options(populate_existing=True)
    task = await session.scalar(query)
    if task is None:
        raise NotFound(f"no task {task_id}")
    return task


def _member_queues(operator_id: int) -> Any:
    return select(QueueMember.queue_id).where(QueueMember.operator_id == operator_id)


def _scope_filter(actor: Actor, scope: TaskScope, now: datetime) -> ColumnElement[bool]:
    me = actor.operator_id
    if scope is TaskScope.MINE:
        return false() if me is None else Task.owner_id == me
    if scope is TaskScope.QUEUES:
        if me is None:
            return false()
        return Task.queue_id.in_(_member_queues(me)) & or_(
            Task.owner_id.is_(None), Task.owner_id != me
        )
    if scope is TaskScope.OVERDUE:
        return Task.done_at.is_(None) & (Task.due_at < now)
    return task_filter(actor)


async def list_tasks(
    session: AsyncSession,
    actor: Actor,
    scope: TaskScope,
    state: TaskState,
    limit: int,
    cursor: str | None,
    now: datetime,
    *,
    lead_id: int | None = None,
) -> tuple[list[Task], str | None]:
    """One page of the tasks `actor` may see in `scope` and `state` (of one lead, if given):
    open ones by due time (soonest first), done ones by when they were closed (latest first);
    keyset pages."""
    if scope is TaskScope.OVERDUE and state is TaskState.DONE:
        raise InvalidInput("overdue tasks are open ones: ask for state=open", field="state")
    query = select(Task).where(task_filter(actor), _scope_filter(actor, scope, now))
    if lead_id is not None:
        query = query.where(Task.lead_id == lead_id)
    if state is TaskState.OPEN:
        query = query.where(Task.done_at.is_(None))
        return await keyset_page(
            session, query, Task.due_at, Task.id, cursor=cursor, limit=limit, newest_first=False
        )
    query = query.where(Task.done_at.is_not(None))
    # Never null here: the query holds closed tasks only.
    done_at = cast("InstrumentedAttribute[datetime]", Task.done_at)
    return await keyset_page(session, query, done_at, Task.id, cursor=cursor, limit=limit)


@dataclass(frozen=True)
class TaskDetails:
    """A task with the names a list shows beside it."""

    task: Task
    contact_name: str | None
    conversation_channel: str | None
    queue_name: str | None
    owner_name: str | None


async def describe(session: AsyncSession, tasks: Sequence[Task]) -> list[TaskDetails]:
    """`tasks` with their contact's, queue's and owner's names and their conversation's
    channel, in four queries whatever their number."""

    async def names(column: Any, key: Any, ids: set[int | None]) -> dict[int, str]:
        wanted = {item for item in ids if item is not None}
        if not wanted:
            return {}
        rows = await session.execute(select(key, column).where(key.in_(wanted)))
        return {row[0]: row[1] for row in rows}

    contacts = await names(Contact.display_name, Contact.id, {t.contact_id for t in tasks})
    channels = await names(
        Conversation.channel, Conversation.id, {t.conversation_id for t in tasks}
    )
    queues = await names(Queue.name, Queue.id, {t.queue_id for t in tasks})
    owners = await names(Operator.name, Operator.id, {t.owner_id for t in tasks})
    return [
        TaskDetails(
            task=task,
            contact_name=None if task.contact_id is None else contacts.get(task.contact_id),
            conversation_channel=None
            if task.conversation_id is None
            else channels.get(task.conversation_id),
            queue_name=None if task.queue_id is None else queues.get(task.queue_id),
            owner_name=None if task.owner_id is None else owners.get(task.owner_id),
        )
        for task in tasks
    ]


# --- changing -----------------------------------------------------------------------------------


def _check_due(due_at: datetime, now: datetime) -> datetime:
    if due_at.tzinfo is None:
        raise InvalidInput("the due time needs a time zone offset", field="due_at")
    if due_at < now - PAST_GRACE:
        raise InvalidInput("the due time is in the past", field="due_at")
    return due_at


def _check_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"a note is at most {MAX_NOTE} characters", field="note")
    return note


async def _check_owner(
    session: AsyncSession,
    actor: Actor,
    queue_id: int | None,
    current_owner: int | None,
    owner_id: int | None,
) -> None:
    """Whether `actor` may give a task of `queue_id` held by `current_owner` to `owner_id`."""
    if actor.is_supervisor:
        if owner_id is not None:
            await require_active_operator(session, owner_id, "owner_id")
        return
    if current_owner not in (None, actor.operator_id):
        raise Forbidden(
            "this task belongs to another operator; ask a supervisor to give it away",
            field="owner_id",
        )
    if owner_id is None:
        if queue_id is None:
            raise InvalidInput("a task outside any queue needs an owner", field="owner_id")
        return
    if owner_id == actor.operator_id:
        return
    member = None
    if queue_id is not None:
        member = await session.scalar(
            select(Operator.id)
            .join(QueueMember, QueueMember.operator_id == Operator.id)
            .where(
                QueueMember.queue_id == queue_id,
                Operator.id == owner_id,
                Operator.active.is_(True),
            )
        )
    if member is None:
        raise InvalidInput(
            f"operator {owner_id} is not an active member of the task's queue", field="owner_id"
        )


async def create_follow_up(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int | None,
    due_at: datetime,
    note: str,
    owner_id: int | None = None,
    *,
    lead_id: int | None = None,
) -> Task:
    """A follow-up on a conversation or a lead `actor` may see (else NotFound), due at
    `due_at` (not in the past), owned by `owner_id` (default: the actor), in the conversation's
    queue. A lead's task is its next step (core/pipelines.py); its conversation, if it has
    one, is the lead's."""
    now = utcnow()
    lead = None
    if lead_id is not None:
        lead = await session.scalar(select(Lead).where(Lead.id == lead_id, lead_filter(actor)))
        if lead is None:
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        conversation_id = lead.conversation_id
    conversation = None
    if conversation_id is not None:
        conversation = await session.scalar(
            select(Conversation).where(
                Conversation.id == conversation_id,
                # A lead's conversation: seeing the lead is enough.
                true() if lead is not None else conversation_filter(actor),
            )
        )
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}", field="conversation_id")
    elif lead is None:
        raise InvalidInput("a follow-up needs a conversation or a lead", field="conversation_id")
    due_at = _check_due(due_at, now)
    note = _check_note(note)
    owner = actor.operator_id if owner_id is None else owner_id
    if owner is None:
        raise InvalidInput("a follow-up needs an owner", field="owner_id")
    queue_id = conversation.queue_id if conversation is not None else None
    if lead is not None and owner in (lead.owner_id, actor.operator_id):
        # The lead's owner or the actor: no queue membership to check.
        await require_active_operator(session, owner, "owner_id")
    else:
        await _check_owner(session, actor, queue_id, actor.operator_id, owner)
    task = Task(
        kind=TaskKind.FOLLOW_UP,
        contact_id=lead.contact_id
        if lead is not None
        else cast(Conversation, conversation).contact_id,
        conversation_id=conversation.id if conversation is not None else None,
        lead_id=lead_id,
        owner_id=owner,
        queue_id=queue_id,
        created_by_id=actor.operator_id,
        due_at=due_at,
        note=note,
        meta={},
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    await audit.record(
        session,
        actor,
        "task.create",
        "task",
        task.id,
        {
            "kind": str(TaskKind.FOLLOW_UP),
            "conversation_id": task.conversation_id,
            **({"lead_id": lead_id} if lead_id is not None else {}),
            "owner_id": owner,
            "due_at": due_at.isoformat(),
        },
    )
    await emit_task(session, task)
    return task


def _open(task: Task) -> Task:
    if task.done_at is not None:
        raise Conflict(f"the task is closed already ({task.outcome})")
    return task


async def update_task(
    session: AsyncSession,
    actor: Actor,
    task_id: int,
    *,
    due_at: datetime | Unset = UNSET,
    note: str | Unset = UNSET,
    owner_id: int | Unset | None = UNSET,
) -> Task:
    """Change an open task's due time, note or owner (fields left UNSET stay)."""
    now = utcnow()
    task = _open(await get_task(session, actor, task_id, lock=True))
    previous_owner = task.owner_id
    changed: dict[str, Any] = {}
    if not isinstance(owner_id, Unset) and owner_id != task.owner_id:
        await _check_owner(session, actor, task.queue_id, task.owner_id, owner_id)
        changed["owner_id"] = {"from": task.owner_id, "to": owner_id}
        task.owner_id = owner_id
        task.notified_at = None
    if not isinstance(due_at, Unset) and due_at != task.due_at:
        task.due_at = _check_due(due_at, now)
        task.notified_at = None
        changed["due_at"] = due_at.isoformat()
    if not isinstance(note, Unset):
        checked = _check_note(note)
        if checked != task.note:
            task.note = checked
            changed["note"] = True
    if not changed:
        return task
    task.updated_at = now
    await session.flush()
    await audit.record(session, actor, "task.update", "task", task.id, changed)
    await emit_task(session, task, previous_owner=previous_owner)
    return task


async def complete_task(
    session: AsyncSession, actor: Actor, task_id: int, outcome: TaskOutcome | str
) -> Task:
    """Close an open task as done or cancelled (409 if it is closed already); its unread
    reminder is read with it."""
    if outcome not in CLOSED_BY_PEOPLE:
        raise InvalidInput("a task is closed as done or cancelled", field="outcome")
    now = utcnow()
    task = _open(await get_task(session, actor, task_id, lock=True))
    task.done_at = now
    task.outcome = TaskOutcome(outcome)
    task.updated_at = now
    await session.flush()
    await audit.record(
        session, actor, "task.complete", "task", task.id, {"outcome": str(task.outcome)}
    )
    await emit_task(session, task)
    reminders = await session.execute(
        update(Notification)
        .where(Notification.task_id == task.id, Notification.read_at.is_(None))
        .values(read_at=now)
        .returning(Notification.id, Notification.operator_id)
        .execution_options(synchronize_session=False)
    )
    for notification_id, operator_id in reminders.all():
        await emit(
            session,
            Event(NOTIFICATION_READ, {"operator": operator_id, "notification": notification_id}),
        )
    return task

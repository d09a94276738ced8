"""Tasks API routes: callbacks of missed calls and follow-ups, listed, set, changed, closed,
and a callback's call placed (through the voice channel's `CallPlacer`).

Who sees which task is `core.visibility.task_filter` (through `core.tasks`): a task the caller
may not see is a 404, also for `/call`, which checks before the placer is asked. Integration
tokens have no tasks (the routes refuse them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from core import tasks
from core.calls import NO_TELEPHONY
from core.errors import Conflict
from core.models import Task, TaskKind, TaskOutcome, utcnow
from core.tasks import TaskDetails, TaskScope, TaskState
from web.api import ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.keys import CALL_PLACER
from web.schemas import Page

routes = ApiRoutes(tag="tasks")


class TaskQuery(PageQuery):
    scope: TaskScope = Field(
        TaskScope.MINE,
        description=(
            "mine: yours; queues: your queues' not yours (unowned too); overdue: open and past"
            " due (supervisors: everyone's); all: every task you may see"
        ),
    )
    state: TaskState = Field(
        TaskState.OPEN,
        description="open (by due time, soonest first) or done (latest closed first)",
    )
    lead_id: RecordId | None = Field(None, description="only this lead's (with scope=all)")


class NewTaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: RecordId | None = Field(
        None, description="a conversation you may see (or give lead_id)"
    )
    lead_id: RecordId | None = Field(None, description="a lead you may see: its next step")
    due_at: AwareDatetime = Field(description="when it is due; not in the past")
    note: str = Field("", max_length=tasks.MAX_NOTE)
    owner_id: RecordId | None = Field(
        None,
        description="default: you; operators may name a member of the conversation's queue",
    )


class TaskPatchBody(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    due_at: AwareDatetime | None = Field(None, description="a new due time reminds again")
    note: str | None = Field(None, max_length=tasks.MAX_NOTE)
    owner_id: RecordId | None = Field(
        None,
        description=(
            "operators: yours or an unowned one, to a member of its queue (null: back to the"
            " queue); supervisors: any active operator"
        ),
    )

    @field_validator("due_at", "note")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class DoneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["done", "cancelled"] = "done"


class TaskContactOut(BaseModel):
    id: int
    name: str


class TaskOut(BaseModel):
    """A task as the console lists it. `number`, `reason`, `waited_seconds`, `attempts` and
    `voicemail_interaction_id` are a callback's (null for follow-ups)."""

    id: int
    kind: Literal["callback", "follow_up"]
    state: Literal["open", "done"]
    outcome: str | None = Field(description="done, answered, called_back or cancelled")
    contact: TaskContactOut | None
    conversation_id: int | None
    conversation_channel: str | None
    lead_id: int | None = Field(description="the lead it is the next step of")
    queue_id: int | None
    queue_name: str | None
    owner_id: int | None
    owner_name: str | None
    due_at: datetime
    overdue: bool = Field(description="open and past its due time")
    note: str
    number: str | None
    reason: str | None = Field(
        description="abandoned, no_answer, busy, failed, after_hours or voicemail"
    )
    waited_seconds: int | None
    attempts: int | None = Field(description="missed calls it stands for")
    voicemail_interaction_id: int | None
    created_at: datetime
    done_at: datetime | None
    created_by_id: int | None


class CallPlacedOut(BaseModel):
    call_id: int
    state: str


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def task_out(details: TaskDetails, now: datetime) -> TaskOut:
    task = details.task
    callback = task.kind == TaskKind.CALLBACK
    meta = task.meta if callback and isinstance(task.meta, dict) else {}
    contact = None
    if task.contact_id is not None:
        contact = TaskContactOut(id=task.contact_id, name=details.contact_name or "")
    return TaskOut.model_validate(
        {
            "id": task.id,
            "kind": task.kind,
            "state": tasks.state_of(task),
            "outcome": task.outcome,
            "contact": contact,
            "conversation_id": task.conversation_id,
            "conversation_channel": details.conversation_channel,
            "lead_id": task.lead_id,
            "queue_id": task.queue_id,
            "queue_name": details.queue_name,
            "owner_id": task.owner_id,
            "owner_name": details.owner_name,
            "due_at": task.due_at,
            "overdue": tasks.is_overdue(task, now),
            "note": task.note,
            "number": _str(meta.get("number")),
            "reason": _str(meta.get("reason")),
            "waited_seconds": _int(meta.get("waited_seconds")),
            "attempts": _int(meta.get("attempts")),
            "voicemail_interaction_id": _int(meta.get("voicemail_interaction_id")),
            "created_at": task.created_at,
            "done_at": task.done_at,
            "created_by_id": task.created_by_id,
        }
    )


@routes.get(
    "/api/v1/tasks",
    summary="Tasks you may see (callbacks, follow-ups) by scope and state, one page",
    query=TaskQuery,
    response=Page[TaskOut],
)
async def list_tasks(call: Call[NoBody, TaskQuery]) -> Page[TaskOut]:
    query = call.query
    now = utcnow()
    async with call.sessions() as session:
        rows, next_cursor = await tasks.list_tasks(
            session,
            call.actor,
            query.scope,
            query.state,
            query.limit,
            query.cursor,
            now,
            lead_id=query.lead_id,
        )
        described = await tasks.describe(session, rows)
    return Page[TaskOut](items=[task_out(item, now) for item in described], next_cursor=next_cursor)


async def _answer(session: AsyncSession, task: Task) -> TaskOut:
    (details,) = await tasks.describe(session, [task])
    return task_out(details, utcnow())


@routes.post(
    "/api/v1/tasks",
    summary=(
        "Set a follow-up on a conversation or a lead you may see (yours unless given to someone)"
    ),
    body=NewTaskBody,
    response=TaskOut,
    status=201,
)
async def create_task(call: Call[NewTaskBody, NoBody]) -> TaskOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        task = await tasks.create_follow_up(
            session,
            call.actor,
            body.conversation_id,
            body.due_at,
            body.note,
            body.owner_id,
            lead_id=body.lead_id,
        )
        return await _answer(session, task)


@routes.patch(
    "/api/v1/tasks/{task_id}",
    summary="Change an open task's due time, note or owner",
    body=TaskPatchBody,
    response=TaskOut,
    errors=(409,),
)
async def update_task(call: Call[TaskPatchBody, NoBody]) -> TaskOut:
    async with call.sessions() as session, session.begin():
        task = await tasks.update_task(
            session,
            call.actor,
            call.path_int("task_id"),
            **call.body.model_dump(exclude_unset=True),
        )
        return await _answer(session, task)


@routes.post(
    "/api/v1/tasks/{task_id}/done",
    summary="Close an open task as done or cancelled",
    body=DoneBody,
    response=TaskOut,
    errors=(409,),
)
async def complete_task(call: Call[DoneBody, NoBody]) -> TaskOut:
    outcome = TaskOutcome(call.body.outcome)
    async with call.sessions() as session, session.begin():
        task = await tasks.complete_task(session, call.actor, call.path_int("task_id"), outcome)
        return await _answer(session, task)


@routes.post(
    "/api/v1/tasks/{task_id}/call",
    summary="Call a callback's customer back from your phone (needs a Twilio voice number)",
    response=CallPlacedOut,
    status=202,
    errors=(409,),
)
async def place_call(call: Call[NoBody, NoBody]) -> CallPlacedOut:
    task_id = call.path_int("task_id")
    async with call.sessions() as session:
        await tasks.get_task(session, call.actor, task_id)
    placer = call.request.app[CALL_PLACER]
    if placer is None:
        raise Conflict(NO_TELEPHONY)
    placed = await placer.place_callback(call.actor, task_id)
    return CallPlacedOut.model_validate(placed)

"""The team: operators (admins manage them, everyone sets their own presence) and queues."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core import auth, operators, queues
from core.changes import UNSET
from core.models import Presence, Queue, Role
from routing import setup as routing_setup
from web.api import ADMINS, ANYONE_SIGNED_IN, ApiRoutes, Call, NoBody, RecordId
from web.schemas import OperatorOut, QueueOut, QueueWithMembersOut

routes = ApiRoutes(tag="operators")

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
# Skill and language levels (0-100) and concurrent work per channel, e.g. {"email": 20}.
Levels = Annotated[dict[Key, Annotated[int, Field(ge=0, le=100)]], Field(max_length=50)]
Capacity = Annotated[dict[Key, Annotated[int, Field(ge=0, le=1000)]], Field(max_length=20)]
TotalCapacity = Annotated[int, Field(ge=0, le=1000)]
OperatorRole = Literal["operator", "supervisor", "admin"]
Password = Annotated[str, Field(min_length=auth.MIN_PASSWORD, max_length=1000)]
QueueIds = Annotated[list[RecordId], Field(max_length=1000)]


class OperatorsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active: bool | None = Field(None, description="only active (true) or inactive (false)")


class NewOperatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: OperatorRole = "operator"
    password: Password | None = None
    skills: Levels = Field(default_factory=dict)
    languages: Levels = Field(default_factory=dict)
    capacity: Capacity | None = Field(
        None,
        description="per capacity kind (voice, messaging, email); left out: "
        f"{dict(operators.DEFAULT_CAPACITY)}",
    )
    total_capacity: TotalCapacity | None = Field(
        None, description="at most this much work across all channels (null: no total cap)"
    )
    queue_ids: QueueIds | None = Field(None, description="the queues they work")


class OperatorChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    role: OperatorRole | None = None
    active: bool | None = None
    skills: Levels | None = None
    languages: Levels | None = None
    capacity: Capacity | None = None
    total_capacity: TotalCapacity | None = Field(
        None, description="null removes the total cap; leave it out to keep it"
    )
    queue_ids: QueueIds | None = Field(None, description="replaces the queues they work")


class SetPasswordBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password


class PresenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Presence
    reason: str | None = Field(None, max_length=operators.MAX_PRESENCE_REASON)


class NewQueueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    config: dict[str, Any] = Field(default_factory=dict)


class QueueChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    config: dict[str, Any] | None = None


class MembersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator_ids: list[Annotated[int, Field(ge=1)]] = Field(max_length=1000)


@routes.get(
    "/api/v1/operators",
    summary="The team, for transfers and the monitor",
    roles=ANYONE_SIGNED_IN,
    query=OperatorsQuery,
    response=list[OperatorOut],
)
async def list_operators(call: Call[NoBody, OperatorsQuery]) -> list[OperatorOut]:
    async with call.sessions() as session:
        found = await operators.list_operators(session, active=call.query.active)
    return [OperatorOut.model_validate(operator) for operator in found]


@routes.post(
    "/api/v1/operators",
    summary="Add an operator",
    roles=ADMINS,
    body=NewOperatorBody,
    response=OperatorOut,
    status=201,
    errors=(409,),
)
async def create_operator(call: Call[NewOperatorBody, NoBody]) -> OperatorOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        operator = await operators.create_operator(
            session,
            call.actor,
            email=body.email,
            name=body.name,
            role=Role(body.role),
            password=body.password,
            skills=body.skills,
            languages=body.languages,
            capacity=body.capacity,
            total_capacity=body.total_capacity,
        )
        if body.queue_ids is not None:
            await operators.set_queues(session, call.actor, operator.id, body.queue_ids)
    return OperatorOut.model_validate(operator)


@routes.put(
    "/api/v1/operators/me/presence",
    summary="Set one's own presence (available, busy, away, offline) with an optional reason",
    roles=ANYONE_SIGNED_IN,
    body=PresenceBody,
    response=OperatorOut,
)
async def set_own_presence(call: Call[PresenceBody, NoBody]) -> OperatorOut:
    async with call.sessions() as session, session.begin():
        operator = await operators.change_own_presence(
            session, call.actor, call.body.presence, call.body.reason
        )
    return OperatorOut.model_validate(operator)


@routes.patch(
    "/api/v1/operators/{id}",
    summary="Change an operator; deactivating or a new role signs them out",
    roles=ADMINS,
    body=OperatorChangeBody,
    response=OperatorOut,
)
async def update_operator(call: Call[OperatorChangeBody, NoBody]) -> OperatorOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        operator = await operators.update_operator(
            session,
            call.actor,
            call.path_int("id"),
            name=body.name,
            role=None if body.role is None else Role(body.role),
            active=body.active,
            skills=body.skills,
            languages=body.languages,
            capacity=body.capacity,
            total_capacity=body.total_capacity
            if "total_capacity" in body.model_fields_set
            else UNSET,
        )
        if body.queue_ids is not None:
            await operators.set_queues(session, call.actor, operator.id, body.queue_ids)
    return OperatorOut.model_validate(operator)


@routes.post(
    "/api/v1/operators/{id}/password",
    summary="Set an operator's password; signs them out",
    roles=ADMINS,
    body=SetPasswordBody,
    status=204,
)
async def set_password(call: Call[SetPasswordBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await operators.set_password(session, call.actor, call.path_int("id"), call.body.password)
    return web.Response(status=204)


@routes.get(
    "/api/v1/queues",
    summary="Queues and the operators who work them",
    roles=ANYONE_SIGNED_IN,
    response=list[QueueWithMembersOut],
)
async def list_queues(call: Call[NoBody, NoBody]) -> list[QueueWithMembersOut]:
    async with call.sessions() as session:
        found = await queues.list_queues(session)
    return [_with_members(queue, members) for queue, members in found]


@routes.post(
    "/api/v1/queues",
    summary="Add a queue",
    roles=ADMINS,
    body=NewQueueBody,
    response=QueueOut,
    status=201,
    errors=(409,),
)
async def create_queue(call: Call[NewQueueBody, NoBody]) -> QueueOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        queue = await routing_setup.create_queue(
            session,
            call.actor,
            name=body.name,
            description=body.description,
            config=body.config,
        )
    return QueueOut.model_validate(queue)


@routes.patch(
    "/api/v1/queues/{id}",
    summary="Change a queue's name, description or routing configuration",
    roles=ADMINS,
    body=QueueChangeBody,
    response=QueueOut,
    errors=(409,),
)
async def update_queue(call: Call[QueueChangeBody, NoBody]) -> QueueOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        queue = await routing_setup.update_queue(
            session,
            call.actor,
            call.path_int("id"),
            name=body.name,
            description=body.description,
            config=body.config,
        )
    return QueueOut.model_validate(queue)


@routes.put(
    "/api/v1/queues/{id}/members",
    summary="Replace the operators who work a queue",
    roles=ADMINS,
    body=MembersBody,
    response=QueueWithMembersOut,
)
async def set_members(call: Call[MembersBody, NoBody]) -> QueueWithMembersOut:
    queue_id = call.path_int("id")
    async with call.sessions() as session, session.begin():
        await queues.set_members(session, call.actor, queue_id, call.body.operator_ids)
        queue = await queues.get_queue(session, queue_id)
    return _with_members(queue, sorted(set(call.body.operator_ids)))


def _with_members(queue: Queue, operator_ids: list[int]) -> QueueWithMembersOut:
    return QueueWithMembersOut(
        id=queue.id,
        name=queue.name,
        description=queue.description,
        config=queue.config,
        operator_ids=operator_ids,
    )

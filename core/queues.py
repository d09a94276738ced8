"""Queues: where unassigned work waits, and which operators work them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import QUEUE_CREATED, QUEUE_UPDATED
from core.events import Event, emit
from core.models import Operator, Queue, QueueMember

MAX_CONFIG_CHARS = 20_000


async def create_queue(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    description: str = "",
    config: dict[str, Any] | None = None,
) -> Queue:
    name = await _free_name(session, name)
    queue = Queue(
        name=name, description=_check_description(description), config=_check_config(config or {})
    )
    session.add(queue)
    await session.flush()
    await audit.record(session, actor, "queue.create", "queue", queue.id, {"name": name})
    await emit(session, Event(QUEUE_CREATED, {"queue": queue.id}))
    return queue


async def _free_name(session: AsyncSession, name: str, queue_id: int | None = None) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("queue name must be 1 to 100 characters", field="name")
    taken_by = await session.scalar(select(Queue.id).where(Queue.name == name))
    if taken_by is not None and taken_by != queue_id:
        raise Conflict(f"a queue named {name!r} exists already", field="name")
    return name


def _check_description(description: str) -> str:
    if len(description) > 2000:
        raise InvalidInput("description must be at most 2000 characters", field="description")
    return description


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    # The routing layer reads the keys; here it only has to be a JSON object of sane size.
    try:
        size = len(json.dumps(config))
    except (TypeError, ValueError):
        raise InvalidInput("config must be a JSON object", field="config") from None
    if size > MAX_CONFIG_CHARS:
        raise InvalidInput(
            f"config must be at most {MAX_CONFIG_CHARS} characters as JSON", field="config"
        )
    return config


async def get_queue(session: AsyncSession, queue_id: int) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    return queue


async def list_queues(session: AsyncSession) -> list[tuple[Queue, list[int]]]:
    """Every queue with the ids of the operators who work it."""
    members: dict[int, list[int]] = {}
    rows = await session.execute(
        select(QueueMember.queue_id, QueueMember.operator_id).order_by(QueueMember.operator_id)
    )
    for queue_id, operator_id in rows:
        members.setdefault(queue_id, []).append(operator_id)
    queues = await session.scalars(select(Queue).order_by(Queue.name))
    return [(queue, members.get(queue.id, [])) for queue in queues]


async def update_queue(
    session: AsyncSession,
    actor: Actor,
    queue_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
) -> Queue:
    queue = await get_queue(session, queue_id)
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = await _free_name(session, name, queue.id)
    if description is not None:
        wanted["description"] = _check_description(description)
    if config is not None:
        wanted["config"] = _check_config(config)
    changes = {key: value for key, value in wanted.items() if getattr(queue, key) != value}
    if not changes:
        return queue
    for key, value in changes.items():
        setattr(queue, key, value)
    await session.flush()
    await audit.record(session, actor, "queue.update", "queue", queue.id, changes)
    await emit(session, Event(QUEUE_UPDATED, {"queue": queue.id}))
    return queue


async def queue_by_name(session: AsyncSession, name: str) -> Queue:
    queue = await session.scalar(select(Queue).where(Queue.name == name))
    if queue is None:
        raise NotFound(f"no queue named {name!r}", field="queue")
    return queue


async def set_members(
    session: AsyncSession, actor: Actor, queue_id: int, operator_ids: list[int]
) -> None:
    """Replace the operators who work this queue; unknown operator ids change nothing."""
    await get_queue(session, queue_id)
    wanted = set(operator_ids)
    known = set(await session.scalars(select(Operator.id).where(Operator.id.in_(wanted))))
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidInput(f"no operators with ids {unknown}", field="operator_ids")
    current = set(
        await session.scalars(
            select(QueueMember.operator_id).where(QueueMember.queue_id == queue_id)
        )
    )
    for operator_id in current - wanted:
        member = await session.get(QueueMember, (queue_id, operator_id))
        if member is not None:
            await session.delete(member)
    for operator_id in wanted - current:
        session.add(QueueMember(queue_id=queue_id, operator_id=operator_id))
    await session.flush()
    await audit.record(
        session, actor, "queue.members", "queue", queue_id, {"operator_ids": sorted(wanted)}
    )
    await emit(session, Event(QUEUE_UPDATED, {"queue": queue_id}))


async def queue_ids_of(session: AsyncSession, operator_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(QueueMember.queue_id).where(QueueMember.operator_id == operator_id)
        )
    )

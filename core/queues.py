"""Queues: where unassigned work waits, and which operators work them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Queue, QueueMember


async def create_queue(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str,
    description: str = "",
    config: dict[str, Any] | None = None,
) -> Queue:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("queue name must be 1 to 100 characters", field="name")
    if await session.scalar(select(Queue.id).where(Queue.name == name)):
        raise Conflict(f"a queue named {name!r} exists already", field="name")
    queue = Queue(name=name, description=description, config=config or {})
    session.add(queue)
    await session.flush()
    await audit.record(session, actor, "queue.create", "queue", queue.id, {"name": name})
    return queue


async def queue_by_name(session: AsyncSession, name: str) -> Queue:
    queue = await session.scalar(select(Queue).where(Queue.name == name))
    if queue is None:
        raise NotFound(f"no queue named {name!r}", field="queue")
    return queue


async def set_members(
    session: AsyncSession, actor: Actor, queue_id: int, operator_ids: list[int]
) -> None:
    """Replace the operators who work this queue."""
    current = set(
        await session.scalars(
            select(QueueMember.operator_id).where(QueueMember.queue_id == queue_id)
        )
    )
    wanted = set(operator_ids)
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


async def queue_ids_of(session: AsyncSession, operator_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(QueueMember.queue_id).where(QueueMember.operator_id == operator_id)
        )
    )

"""Queues: where unassigned work waits, and which operators work them.

Reading queues and their members lives here, for every package; creating and changing a queue
(its name and its routing configuration, checked) is routing's: `routing/setup.py`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import InvalidInput, NotFound
from core.event_types import QUEUE_UPDATED
from core.events import Event, emit
from core.models import Operator, Queue, QueueMember


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

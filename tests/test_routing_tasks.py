"""Routing of tasks (routing/tasks.py): who gets an unowned callback and why (pure), and the
routing pass that gives callbacks an owner and tells owners their tasks are due."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from core.audit import CLI
from core.clock import using
from core.db import SessionFactory
from core.events import Event, EventBus
from core.models import Notification, Operator, Presence, RoutingDecision, Task, TaskKind
from core.queues import set_members
from core.tasks import MissedCall, open_callback
from routing.engine import WAKING_EVENTS
from routing.tasks import MemberSnapshot, assignable_now, decide_task_owner
from tests.routing_world import World

pytestmark = pytest.mark.both_databases  # tests/conftest.py

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def member(
    operator_id: int,
    presence: Presence = Presence.AVAILABLE,
    open_tasks: int = 0,
    last: datetime | None = None,
    *,
    active: bool = True,
) -> MemberSnapshot:
    return MemberSnapshot(
        operator_id=operator_id,
        active=active,
        presence=presence,
        open_tasks=open_tasks,
        last_task_at=last,
    )


# --- the decision --------------------------------------------------------------------------


def test_an_available_member_comes_before_a_busy_one_with_fewer_tasks() -> None:
    decision = decide_task_owner(
        1, 5, [member(7, Presence.BUSY, open_tasks=0), member(8, open_tasks=3)], NOW
    )
    assert decision.owner_id == 8
    assert "operator 8 (available, 3 open tasks" in decision.reason
    assert [(c.operator_id, c.rank) for c in decision.candidates] == [(8, 1), (7, 2)]
    assert decision.candidates[1].standing["presence"] == "busy"


def test_members_away_or_offline_are_not_given_callbacks() -> None:
    decision = decide_task_owner(
        1, 5, [member(7, Presence.AWAY), member(8, Presence.OFFLINE), member(9, open_tasks=9)], NOW
    )
    assert decision.owner_id == 9
    excluded = [(c.operator_id, c.exclusions) for c in decision.candidates if c.rank is None]
    assert excluded == [(7, ("away",)), (8, ("offline",))]
    nobody = decide_task_owner(1, 5, [member(7, Presence.AWAY)], NOW)
    assert nobody.owner_id is None
    assert nobody.reason == "no member of queue 5 is at work: the callback waits there unowned"


def test_then_fewest_open_tasks_then_longest_since_the_last_one() -> None:
    fewest = decide_task_owner(1, 5, [member(7, open_tasks=2), member(8, open_tasks=1)], NOW)
    assert fewest.owner_id == 8
    earlier, recent = NOW - timedelta(hours=3), NOW - timedelta(minutes=5)
    longest = decide_task_owner(1, 5, [member(7, last=recent), member(8, last=earlier)], NOW)
    assert longest.owner_id == 8
    never = decide_task_owner(1, 5, [member(7, last=earlier), member(9)], NOW)
    assert never.owner_id == 9
    assert "last given a task: never" in never.reason
    # Everything equal: the lowest id, so a decision never depends on the order given.
    assert decide_task_owner(1, 5, [member(9), member(8)], NOW).owner_id == 8


def test_deactivated_members_are_excluded_with_the_reason() -> None:
    decision = decide_task_owner(1, 5, [member(7, active=False), member(8, Presence.BUSY)], NOW)
    assert decision.owner_id == 8
    excluded = [c for c in decision.candidates if c.rank is None]
    assert [(c.operator_id, c.exclusions) for c in excluded] == [(7, ("deactivated",))]


def test_nobody_active_leaves_the_callback_unowned() -> None:
    nobody = decide_task_owner(1, 5, [member(7, active=False)], NOW)
    assert (nobody.owner_id, nobody.reason) == (
        None,
        "no member of queue 5 is at work: the callback waits there unowned",
    )
    empty = decide_task_owner(1, 5, [], NOW)
    assert empty.owner_id is None
    assert "no members" in empty.reason
    with pytest.raises(ValueError, match="aware"):
        decide_task_owner(1, 5, [], NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="once"):
        decide_task_owner(1, 5, [member(7), member(7)], NOW)


def test_the_engine_wakes_when_a_task_changes() -> None:
    assert "task.updated" in WAKING_EVENTS


# --- the pass ----------------------------------------------------------------------------------


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions)
    with using(world.clock):
        yield world


async def missed(world: World, queue_id: int | None, *, with_conversation: bool = True) -> int:
    work = await world.arrive(channel="api")
    async with world.sessions() as session, session.begin():
        task = await open_callback(
            session,
            MissedCall(
                contact_id=work.contact_id,
                conversation_id=work.conversation_id if with_conversation else None,
                queue_id=queue_id,
                number="+4930123456",
                reason="no_answer",
                waited_seconds=30,
            ),
            world.now,
        )
        return task.id


async def task_of(world: World, task_id: int) -> Task:
    async with world.sessions() as session:
        found = await session.get(Task, task_id)
    assert found is not None
    return found


async def reminders(world: World, task_id: int) -> list[Notification]:
    async with world.sessions() as session:
        return list(
            await session.scalars(select(Notification).where(Notification.task_id == task_id))
        )


async def test_a_pass_gives_a_callback_to_the_available_member_and_reminds_them_once(
    world: World, bus: EventBus
) -> None:
    ann = await world.operator("Ann", presence=Presence.AWAY)
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann, bob])
    task_id = await missed(world, support)
    async with bus.subscribe() as published:
        await world.route()
        events: list[Event] = [published.get_nowait() for _ in range(published.qsize())]

    task = await task_of(world, task_id)
    assert task.owner_id == bob
    assert task.meta["routing"]["operator_id"] == bob
    assert task.meta["routing"]["at"] == world.now.isoformat()
    assert "available" in task.meta["routing"]["reason"]
    # The decision is in the conversation's routing history, with the candidates.
    logged = [
        entry for entry in await world.log(task.conversation_id or 0) if entry.kind == "task_assign"
    ]
    assert [(entry.operator_id, entry.queue_id) for entry in logged] == [(bob, support)]
    assert [c["operator_id"] for c in logged[0].details["candidates"]] == [bob, ann]

    # Due at once: Bob is told, once.
    (reminder,) = await reminders(world, task_id)
    assert (reminder.operator_id, reminder.kind, reminder.conversation_id) == (
        bob,
        "task_due",
        task.conversation_id,
    )
    assert task.notified_at == world.now
    due = [event for event in events if event.type == "task.due"]
    assert [(event.ids["operator"], event.ids["task"]) for event in due] == [(bob, task_id)]
    assert due[0].ids["notification"] == reminder.id
    assert "task.updated" in {event.type for event in events}

    world.tick(60)
    await world.route()
    assert len(await reminders(world, task_id)) == 1
    assert (await task_of(world, task_id)).owner_id == bob


async def test_callbacks_are_spread_by_open_tasks(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann, bob])
    first, second, third = [await missed(world, support) for _ in range(3)]
    await world.route()
    owners = [(await task_of(world, task_id)).owner_id for task_id in (first, second, third)]
    # Ann (the lower id) first, then Bob with fewer tasks, then, all even, Ann again.
    assert owners == [ann, bob, ann]


async def test_a_queue_without_active_members_keeps_its_callback_unowned(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann])
    async with world.sessions() as session, session.begin():
        await session.execute(update(Operator).where(Operator.id == ann).values(active=False))
    task_id = await missed(world, support)
    report = await world.route()
    task = await task_of(world, task_id)
    assert task.owner_id is None
    assert task.meta["routing"]["reason"].startswith("no member of queue")
    assert await reminders(world, task_id) == []
    # Nothing to decide until the queue changes: the pass does not ask to run again at once.
    assert report.next_due is None or report.next_due > world.now

    bob = await world.operator("Bob", presence=Presence.OFFLINE)
    async with world.sessions() as session, session.begin():
        await set_members(session, CLI, support, [ann, bob])
        # Bob is a member but not at work: still nobody to give it to (no task work now).
        assert not await session.scalar(select(assignable_now()))
    await world.route()
    assert (await task_of(world, task_id)).owner_id is None
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(Operator).where(Operator.id == bob).values(presence=Presence.AVAILABLE)
        )
        assert await session.scalar(select(assignable_now()))
    await world.route()
    assert (await task_of(world, task_id)).owner_id == bob


async def test_a_follow_up_is_announced_when_due_and_the_pass_sleeps_until_then(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    work = await world.arrive()
    due = world.now + timedelta(minutes=30)
    async with world.sessions() as session, session.begin():
        task = Task(
            kind=TaskKind.FOLLOW_UP,
            contact_id=work.contact_id,
            conversation_id=work.conversation_id,
            owner_id=ann,
            due_at=due,
            note="call about the refund",
        )
        session.add(task)
        orphan = Task(kind=TaskKind.FOLLOW_UP, owner_id=ann, due_at=due + timedelta(minutes=5))
        session.add(orphan)
    report = await world.route()
    assert report.next_due == due
    assert await reminders(world, task.id) == []

    world.now = due + timedelta(minutes=10)
    await world.route()
    assert [item.operator_id for item in await reminders(world, task.id)] == [ann]
    # Without a conversation there is no notification row, but it counts as announced.
    assert (await task_of(world, orphan.id)).notified_at == world.now
    async with world.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1
        assert (
            await session.scalar(select(func.count()).where(RoutingDecision.kind == "task_assign"))
            == 0
        )

"""What a routing pass costs: the statements of a pass with nothing to do stay a handful
whatever the backlog, it writes nothing, it is bounded, and its deadlines never spin the engine.

Statements are counted with an engine event listener (SQLite: the count is the same on
PostgreSQL but for SQLite's BEGINs and PostgreSQL's advisory lock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import counted
from core.clock import using
from core.db import SessionFactory
from core.models import Conversation, Presence
from routing.service import RoutingOptions
from tests.routing_world import World

# An idle pass as the engine runs it: on SQLite, the new-work look (its BEGIN and one query),
# then the pass's BEGIN, the queues, what is due, and while work waits: the operators' loads,
# the operators, the queues' members, and the waiting work someone could take.
IDLE_PASS_STATEMENTS = 9
NOTHING_WAITING_STATEMENTS = 5


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions)
    with using(world.clock):
        yield world


def writes(statements: list[str]) -> list[str]:
    return [
        s for s in statements if s.lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]


async def saturated_backlog(world: World, waiting: int) -> None:
    """Two queues (one offering, one assigning) whose members are all full or away, and
    `waiting` conversations in them, each already explained by a first pass."""
    ann = await world.operator("Ann", capacity={"messaging": 1})
    bob = await world.operator("Bob", presence=Presence.AWAY)
    support = await world.queue("Support", [ann, bob])
    sales = await world.queue("Sales", [ann], offer_timeout_seconds=30)
    for number in range(waiting):
        await world.arrive(queue_id=support if number % 2 else sales)
    while (await world.route()).more:
        pass
    world.tick(5)


@pytest.mark.parametrize("waiting", [4, 40])
async def test_an_idle_pass_costs_a_handful_of_statements_whatever_the_backlog(
    world: World, engine: AsyncEngine, waiting: int
) -> None:
    await saturated_backlog(world, waiting)
    for _ in range(3):
        with counted(engine) as statements:
            report = await world.route()
        assert (report.offered, report.assigned, report.matched) == (0, 0, 0)
        assert len(statements) <= IDLE_PASS_STATEMENTS, statements
        assert writes(statements) == []
        world.tick(1)


async def test_a_pass_with_nothing_waiting_reads_only_what_is_due(
    world: World, engine: AsyncEngine
) -> None:
    ann = await world.operator("Ann")
    await world.queue("Support", [ann])
    await world.route()
    with counted(engine) as statements:
        report = await world.route()
    assert len(statements) <= NOTHING_WAITING_STATEMENTS, statements
    assert writes(statements) == []
    assert report.next_due is None


async def test_a_pass_is_bounded_explaining_waits_too(world: World, engine: AsyncEngine) -> None:
    world.options = RoutingOptions(max_decisions_per_pass=5)
    ann = await world.operator("Ann", presence=Presence.OFFLINE)
    support = await world.queue("Support", [ann])
    works = [await world.arrive(queue_id=support) for _ in range(12)]
    passes = 0
    while True:
        passes += 1
        report = await world.route()
        if not report.more:
            break
    # 12 matched in the first pass; 12 explanations, 5 a pass.
    assert passes == 3
    for work in works:
        log = await world.log(work.conversation_id)
        assert [entry.kind for entry in log] == ["queue", "none"]


@pytest.mark.parametrize(
    "strategies", [["round_robin"], ["sticky", "round_robin"]], ids=["plain", "sticky"]
)
async def test_work_that_can_be_given_goes_out_before_a_backlog_is_explained(
    world: World, strategies: list[str]
) -> None:
    """Twelve older conversations nobody can take come first in the waiting order; the
    bounded pass still gives the three Bob can take before it explains the others."""
    world.options = RoutingOptions(max_decisions_per_pass=5)
    ann = await world.operator("Ann", presence=Presence.OFFLINE)
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann], strategies=strategies, sticky_max_wait_seconds=60)
    sales = await world.queue("Sales", [bob])
    backlog = [await world.arrive(queue_id=support) for _ in range(12)]
    world.tick(1)
    givable = [await world.arrive(queue_id=sales) for _ in range(3)]
    report = await world.route()
    assert (report.assigned, report.more) == (3, True)
    for work in givable:
        assert (await world.conversation(work.conversation_id)).assignee_id == bob
    explained = [
        work
        for work in backlog
        if "none" in [e.kind for e in await world.log(work.conversation_id)]
    ]
    # The pass's other two decisions explained the oldest of the backlog.
    assert explained == backlog[:2]
    while (await world.route()).more:
        pass
    for work in backlog:
        log = await world.log(work.conversation_id)
        assert [entry.kind for entry in log] == ["queue", "none"]


async def test_an_offline_operators_answered_work_does_not_make_the_next_pass_due_at_once(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann])
    work = await world.arrive(queue_id=support)
    await world.route()
    assert (await world.conversation(work.conversation_id)).assignee_id == ann
    async with world.sessions() as session, session.begin():
        # Answered: the customer is not waiting for anyone.
        await session.execute(
            update(Conversation)
            .where(Conversation.id == work.conversation_id)
            .values(last_outbound_at=world.now + timedelta(seconds=1))
        )
    await world.presence(ann, Presence.OFFLINE)
    world.tick(world.options.requeue_after_offline.total_seconds() + 60)
    report = await world.route()
    assert report.requeued == 0
    # Nothing is due: not now (the engine would pass again at once, forever).
    assert report.next_due is None or report.next_due > world.now

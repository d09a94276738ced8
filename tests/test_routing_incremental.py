"""Incremental passes: the engine looks at the waiting work again only when something it
reads may have changed (routing/engine.py). After a pass that left nothing it could give, a
pass with nothing new costs a handful of statements whatever the backlog; an event that can
change a decision (presence, an arrival, a freed slot), a deadline of the waiting step (a
queue opening), a step of the pass itself (an offer timing out) or the safety net (a
complete pass every COMPLETE_PASS_SECONDS) has the waiting work routed again.

Statements are counted as in tests/test_routing_pass_cost.py."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import counted
from core.audit import CLI
from core.conversations import set_status
from core.event_types import LEAD_CREATED, OPERATOR_PRESENCE, TASK_UPDATED
from core.events import Event
from core.models import ConversationStatus, Offer, OfferStatus, Operator, Presence
from core.operators import update_operator
from routing import engine as engine_module
from routing import scope as scope_module
from routing.engine import COMPLETE_PASS_SECONDS, RoutingEngine
from routing.strategies import WorkItem
from routing.waiting import _expression_facts
from tests.routing_engine import settle
from tests.routing_world import World
from tests.test_routing_pass_cost import NOTHING_WAITING_STATEMENTS, writes

pytestmark = pytest.mark.both_databases  # tests/conftest.py


def members_read(statements: list[str]) -> bool:
    """Whether the queues' members were read: the waiting step (routing/waiting.py) ran."""
    return any(statement.lstrip().startswith("SELECT queue_member.") for statement in statements)


async def skilled_backlog(world: World, waiting: int) -> tuple[int, int]:
    """Ann has room, but the Billing queue's work needs a skill she lacks: every pass that
    looks at the waiting work reads all of it (someone has room) and gives none."""
    ann = await world.operator("Ann")
    billing = await world.queue("Billing", [ann], required_skills="billing >= 2")
    for _ in range(waiting):
        await world.arrive(queue_id=billing)
    return ann, billing


@pytest.mark.parametrize("waiting", [4, 40])
async def test_an_idle_pass_after_a_complete_one_skips_the_backlog(
    world: World, routing: RoutingEngine, engine: AsyncEngine, waiting: int
) -> None:
    await skilled_backlog(world, waiting)
    await settle(routing)
    world.tick(1)
    with counted(engine) as statements:
        complete = await routing.run_once()  # as a pass woken by a change would
    assert members_read(statements)
    for _ in range(3):
        world.tick(1)
        with counted(engine) as statements:
            report = await routing.run_next()
        assert report.undecided is None  # the waiting work was not looked at
        assert (report.offered, report.assigned) == (0, 0)
        # No operators, members or waiting work read: the same few statements as with
        # nothing waiting at all, the advisory lock aside (PostgreSQL).
        assert len(statements) <= NOTHING_WAITING_STATEMENTS + 1, statements
        assert not members_read(statements), statements
        assert writes(statements) == []
    assert complete.undecided is False


async def test_a_presence_change_gets_waiting_work_given_at_once(
    world: World, routing: RoutingEngine
) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob", presence=Presence.AWAY)
    support = await world.queue("Support", [ann, bob])
    await world.presence(ann, Presence.AWAY)
    work = await world.arrive(queue_id=support)
    await settle(routing)
    world.tick(1)
    await world.presence(bob, Presence.AVAILABLE)
    report = await routing.run_next()
    assert report.assigned == 1
    assert (await world.conversation(work.conversation_id)).assignee_id == bob


async def test_a_new_arrival_is_given_at_once_beside_a_settled_backlog(
    world: World, routing: RoutingEngine
) -> None:
    await skilled_backlog(world, 5)
    cid = await world.operator("Cid")
    sales = await world.queue("Sales", [cid], offer_timeout_seconds=30)
    await settle(routing)
    world.tick(1)
    work = await world.arrive(queue_id=sales)
    report = await routing.run_next()
    assert (report.matched, report.offered) == (1, 1)
    async with world.sessions() as session:
        offer = await session.scalar(
            select(Offer.id).where(Offer.conversation_id == work.conversation_id)
        )
    assert offer is not None


async def test_a_freed_slot_goes_to_the_oldest_waiting_work_at_once(
    world: World, routing: RoutingEngine
) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 1})
    support = await world.queue("Support", [ann])
    first, second, third = [await world.arrive(queue_id=support) for _ in range(3)]
    await settle(routing)
    assert (await world.conversation(first.conversation_id)).assignee_id == ann
    world.tick(1)
    async with world.sessions() as session, session.begin():
        await set_status(session, CLI, first.conversation_id, ConversationStatus.RESOLVED)
    report = await routing.run_next()
    assert report.assigned == 1
    assert (await world.conversation(second.conversation_id)).assignee_id == ann
    assert (await world.conversation(third.conversation_id)).assignee_id is None


async def test_a_change_no_event_announces_is_seen_by_the_safety_net(
    world: World, routing: RoutingEngine
) -> None:
    bob = await world.operator("Bob", presence=Presence.AWAY)
    support = await world.queue("Support", [bob])
    work = await world.arrive(queue_id=support)
    await settle(routing)
    # The CLI beside a SQLite server: a change committed without an event to this process.
    async with world.sessions() as session, session.begin():
        await session.execute(
            update(Operator).where(Operator.id == bob).values(presence=Presence.AVAILABLE)
        )
    world.tick(1)
    report = await routing.run_next()
    assert report.assigned == 0
    world.tick(COMPLETE_PASS_SECONDS)
    report = await routing.run_next()
    assert report.assigned == 1
    assert (await world.conversation(work.conversation_id)).assignee_id == bob


async def test_a_queue_opening_routes_the_waiting_work(
    world: World, routing: RoutingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "COMPLETE_PASS_SECONDS", 10 * 86400.0)
    monkeypatch.setattr(scope_module, "FULL_SECONDS", 10 * 86400.0)
    ann = await world.operator("Ann")
    # Monday 09:00 UTC: the queue opens at 10:00 UTC.
    support = await world.queue(
        "Support", [ann], business_hours={"timezone": "UTC", "weekly": {"mon": ["10:00-17:00"]}}
    )
    work = await world.arrive(queue_id=support)
    report = await settle(routing)
    opens = world.now.replace(hour=10, minute=0, second=0)
    assert report.next_due == opens
    world.tick(60)
    report = await routing.run_next()
    # Skipped, and the opening still tells the engine when to pass next.
    assert (report.undecided, report.next_due) == (None, opens)
    world.now = opens
    report = await routing.run_next()
    assert report.assigned == 1
    assert (await world.conversation(work.conversation_id)).assignee_id == ann


async def test_an_offer_timing_out_goes_to_the_next_candidate_in_an_incremental_pass(
    world: World, routing: RoutingEngine
) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann, bob], offer_timeout_seconds=10)
    work = await world.arrive(queue_id=support)
    await settle(routing)
    world.tick(11)
    assert routing.settled(world.now)
    report = await routing.run_next()
    assert (report.timed_out, report.offered) == (1, 1)
    async with world.sessions() as session:
        offers = (
            await session.execute(
                select(Offer.status, Offer.operator_id).where(
                    Offer.conversation_id == work.conversation_id
                )
            )
        ).all()
    assert {(status, operator_id) for status, operator_id in offers} == {
        (OfferStatus.TIMED_OUT, ann),
        (OfferStatus.PENDING, bob),
    }


async def test_only_events_a_waiting_decision_reads_make_the_next_pass_complete(
    world: World, routing: RoutingEngine
) -> None:
    await skilled_backlog(world, 2)
    await settle(routing)
    for kind in (LEAD_CREATED, TASK_UPDATED):
        routing._on_event(Event(kind, {}))
        assert routing.settled(world.now), kind
    routing._on_event(Event(OPERATOR_PRESENCE, {}))
    assert not routing.settled(world.now)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("language", ["de", None])
def test_the_waiting_steps_facts_of_a_row_are_the_work_items(language: str | None) -> None:
    """routing/waiting.py keys its answers on a row's facts without building the WorkItem:
    they must be what the WorkItem's expression reads."""
    row = SimpleNamespace(priority_tier="vip", channel="email", priority=3, language=language)
    work = WorkItem(
        conversation_id=1,
        channel_kind="email",
        language=language,
        priority=3,
        waiting_since=datetime(2026, 11, 23, tzinfo=UTC),
        facts={"priority_tier": "vip", "channel": "email"},
    )
    assert _expression_facts(row, "email") == work.expression_facts()


async def test_work_nobody_with_room_is_skilled_for_is_given_once_someone_is(
    world: World, routing: RoutingEngine
) -> None:
    """Billing's required skills read nothing of the work: while nobody with room has them,
    its explained work is not even read (routing/waiting.py: _anyone_could); a skill given
    (an event) has it given at once."""
    ann, _ = await skilled_backlog(world, 3)
    await settle(routing)
    world.tick(1)
    report = await routing.run_once()  # complete, as after any event
    assert (report.undecided, report.assigned) == (False, 0)
    async with world.sessions() as session, session.begin():
        await update_operator(session, CLI, ann, skills={"billing": 2})
    report = await routing.run_next()
    assert report.assigned == 3

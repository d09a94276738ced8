"""The routing service on a real database: queues, offers, capacity, SLA, presence, leads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.audit import CLI, Actor
from core.clock import using
from core.conversations import assign, reply, set_status
from core.db import SessionFactory
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.events import Event, EventBus
from core.models import (
    Contact,
    Conversation,
    Lead,
    Operator,
    Presence,
    Queue,
    Role,
    RoutingDecision,
    SlaTimer,
    utcnow,
)
from core.pipelines import default_pipeline_query
from routing.config import parse_queue_config
from routing.manual import accept_offer, console_seen, reject_offer, transfer
from routing.service import AUTO_AWAY_REASON
from routing.setup import LEAD_RULES, QUEUE_RULES, lead_rules, set_rules
from tests.routing_world import World, operator_actor
from web.demo import load_demo

pytestmark = pytest.mark.both_databases  # tests/conftest.py

# The pipeline leads go to (tests/conftest.py seeds it like migrations do).
DEFAULT_PIPELINE = default_pipeline_query().scalar_subquery()


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions)
    with using(world.clock):
        yield world


def kinds(log: list[RoutingDecision]) -> list[str]:
    return [entry.kind for entry in log]


# --- queues -----------------------------------------------------------------------------------


async def test_without_rules_work_waits_in_the_channels_queue_and_is_assigned(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann])
    work = await world.arrive(queue_id=support)
    report = await world.route()
    assert (report.matched, report.assigned) == (1, 1)
    conversation = await world.conversation(work.conversation_id)
    assert (conversation.queue_id, conversation.assignee_id) == (support, ann)
    log = await world.log(work.conversation_id)
    assert kinds(log) == ["queue", "assign"]
    assert "no routing rules" in log[0].reason
    assert log[1].operator_id == ann
    assert log[1].details["candidates"][0]["operator_id"] == ann


async def test_rules_pick_the_queue_first_match_wins_and_explain_why(world: World) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann])
    billing = await world.queue("Billing", [ann])
    async with world.sessions() as session, session.begin():
        await set_rules(
            session,
            CLI,
            QUEUE_RULES,
            {
                "default_queue_id": support,
                "rules": [{"name": "money", "keywords": ["invoice"], "queue_id": billing}],
            },
        )
    about_money = await world.arrive(text="Where is my invoice?")
    about_else = await world.arrive(text="The app crashes")
    await world.route()
    assert (await world.conversation(about_money.conversation_id)).queue_id == billing
    assert (await world.conversation(about_else.conversation_id)).queue_id == support
    money_log = await world.log(about_money.conversation_id)
    assert "Billing" in money_log[0].reason
    assert "invoice" in money_log[0].reason
    else_log = await world.log(about_else.conversation_id)
    assert "default queue" in else_log[0].reason
    assert else_log[0].details["match"]["passed_over"]


async def test_rules_naming_an_unknown_queue_are_refused(world: World) -> None:
    support = await world.queue("Support")
    async with world.sessions() as session, session.begin():
        with pytest.raises(InvalidInput, match="no queues"):
            await set_rules(session, CLI, QUEUE_RULES, {"default_queue_id": support + 99})


# --- capacity and strategies ------------------------------------------------------------------


async def test_capacity_is_never_exceeded_and_waiting_work_is_explained_once(
    world: World,
) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 2})
    support = await world.queue("Support", [ann])
    works = [await world.arrive(queue_id=support) for _ in range(3)]
    await world.route()
    await world.route()
    await world.route()
    assert await world.load(ann) == 2
    waiting = await world.conversation(works[2].conversation_id)
    assert waiting.assignee_id is None
    log = await world.log(works[2].conversation_id)
    # One "none" entry however many passes ran, with the reason.
    assert kinds(log) == ["queue", "none"]
    exclusions = log[1].details["candidates"][0]["exclusions"]
    assert exclusions[0]["code"] == "at_capacity"

    # When Ann resolves one, the waiting one is hers.
    async with world.sessions() as session, session.begin():
        await set_status(session, operator_actor(ann), works[0].conversation_id, "resolved")
    await world.route()
    assert (await world.conversation(works[2].conversation_id)).assignee_id == ann


async def test_least_busy_prefers_the_operator_with_the_lower_share_of_capacity(
    world: World,
) -> None:
    busy = await world.operator("Busy", capacity={"messaging": 4})
    idle = await world.operator("Idle", capacity={"messaging": 4})
    support = await world.queue("Support", [busy, idle], strategies=["least_busy"])
    for _ in range(2):
        work = await world.arrive(queue_id=support)
        async with world.sessions() as session, session.begin():
            await assign(session, CLI, work.conversation_id, busy)
    fresh = await world.arrive(queue_id=support)
    await world.route()
    assert (await world.conversation(fresh.conversation_id)).assignee_id == idle
    decision = (await world.log(fresh.conversation_id))[-1]
    assert decision.details["candidates"][1]["standing"]["least_busy"].startswith("messaging 2/4")


async def test_required_skills_exclude_operators_with_the_reason(world: World) -> None:
    novice = await world.operator("Novice", skills={"billing": 1})
    expert = await world.operator("Expert", skills={"billing": 3})
    billing = await world.queue(
        "Billing", [novice, expert], required_skills="billing >= 2", strategies=["round_robin"]
    )
    work = await world.arrive(queue_id=billing)
    await world.route()
    assert (await world.conversation(work.conversation_id)).assignee_id == expert
    decision = (await world.log(work.conversation_id))[-1]
    excluded = {c["operator_id"]: c for c in decision.details["candidates"] if c["exclusions"]}
    assert excluded[novice]["exclusions"][0]["code"] == "missing_skill"


async def test_waiting_work_goes_out_by_priority_then_longest_wait(world: World) -> None:
    ann = await world.operator("Ann", presence=Presence.AWAY, capacity={"messaging": 1})
    support = await world.queue("Support", [ann])
    older = await world.arrive(queue_id=support)
    await world.route()
    world.tick(60)
    urgent = await world.arrive(queue_id=support)
    await world.route()
    async with world.sessions() as session, session.begin():
        conversation = await session.get(Conversation, urgent.conversation_id)
        assert conversation is not None
        conversation.priority = 5
    await world.presence(ann, Presence.AVAILABLE)
    await world.route()
    assert (await world.conversation(urgent.conversation_id)).assignee_id == ann
    assert (await world.conversation(older.conversation_id)).assignee_id is None


async def test_a_vips_later_work_is_handed_out_before_earlier_work_of_others(
    world: World,
) -> None:
    ann = await world.operator("Ann", presence=Presence.AWAY, capacity={"messaging": 1})
    support = await world.queue("Support", [ann])
    regular = await world.arrive(queue_id=support)
    world.tick(60)
    vip = await world.arrive(queue_id=support)
    async with world.sessions() as session, session.begin():
        contact = await session.get(Contact, vip.contact_id)
        assert contact is not None
        contact.priority_tier = "vip"
    await world.route()  # Ann is away: both wait, the VIP's raised as it enters the queue
    await world.presence(ann, Presence.AVAILABLE)
    await world.route()
    assert (await world.conversation(vip.conversation_id)).assignee_id == ann
    assert (await world.conversation(regular.conversation_id)).assignee_id is None
    matched = (await world.log(vip.conversation_id))[0]
    assert matched.kind == "queue"
    assert matched.reason.endswith("VIP contact: priority 0 -> 50, ahead of others")
    assert "VIP" not in (await world.log(regular.conversation_id))[0].reason


# --- offers -----------------------------------------------------------------------------------


async def test_an_offer_accepted_assigns_the_work(world: World) -> None:
    ann = await world.operator("Ann")
    chat = await world.queue("Chat", [ann], offer_timeout_seconds=30)
    work = await world.arrive(queue_id=chat)
    report = await world.route()
    assert report.offered == 1
    [offer] = await world.pending_offers()
    assert offer.operator_id == ann
    assert offer.expires_at == world.now + timedelta(seconds=30)
    assert (await world.conversation(work.conversation_id)).assignee_id is None
    async with world.sessions() as session, session.begin():
        await accept_offer(session, operator_actor(ann), offer.id, world.tick(5))
    assert (await world.conversation(work.conversation_id)).assignee_id == ann
    assert kinds(await world.log(work.conversation_id)) == ["queue", "offer", "accepted"]


async def test_a_rejected_offer_goes_to_the_next_candidate_and_not_back(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    chat = await world.queue("Chat", [ann, bob], offer_timeout_seconds=30)
    work = await world.arrive(queue_id=chat)
    await world.route()
    [first] = await world.pending_offers()
    async with world.sessions() as session, session.begin():
        await reject_offer(session, operator_actor(first.operator_id), first.id, world.tick(2))
    await world.route()
    [second] = await world.pending_offers()
    assert second.operator_id != first.operator_id
    async with world.sessions() as session, session.begin():
        await reject_offer(session, operator_actor(second.operator_id), second.id, world.tick(2))
    await world.route()
    assert await world.pending_offers() == []
    log = await world.log(work.conversation_id)
    assert kinds(log) == ["queue", "offer", "rejected", "offer", "rejected", "none"]
    codes = {c["operator_id"]: c["exclusions"][0]["code"] for c in log[-1].details["candidates"]}
    assert codes == {ann: "rejected", bob: "rejected"}


async def test_an_unanswered_offer_times_out_and_moves_on(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    chat = await world.queue("Chat", [ann, bob], offer_timeout_seconds=20)
    await world.arrive(queue_id=chat)
    report = await world.route()
    [first] = await world.pending_offers()
    assert report.next_due == first.expires_at
    world.tick(19)
    await world.route()
    assert [offer.id for offer in await world.pending_offers()] == [first.id]
    world.tick(1)
    report = await world.route()
    assert report.timed_out == 1
    [second] = await world.pending_offers()
    assert second.operator_id != first.operator_id
    log = await world.log(first.conversation_id)
    assert "did not answer the offer within 20 s" in log[2].reason


async def test_offers_cannot_be_answered_by_others_twice_or_late(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob", presence=Presence.OFFLINE)
    chat = await world.queue("Chat", [ann, bob], offer_timeout_seconds=30)
    await world.arrive(queue_id=chat)
    await world.route()
    [offer] = await world.pending_offers()
    async with world.sessions() as session, session.begin():
        with pytest.raises(NotFound):
            await accept_offer(session, operator_actor(bob), offer.id, world.now)
    async with world.sessions() as session, session.begin():
        with pytest.raises(Conflict, match="expired"):
            await accept_offer(session, operator_actor(ann), offer.id, world.now + timedelta(31))
    async with world.sessions() as session, session.begin():
        await accept_offer(session, operator_actor(ann), offer.id, world.now)
    async with world.sessions() as session, session.begin():
        with pytest.raises(Conflict, match="accepted already"):
            await reject_offer(session, operator_actor(ann), offer.id, world.now)


async def test_a_pending_offer_counts_against_capacity(world: World) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 1})
    chat = await world.queue("Chat", [ann], offer_timeout_seconds=30)
    await world.arrive(queue_id=chat)
    await world.arrive(queue_id=chat)
    await world.route()
    assert len(await world.pending_offers()) == 1


async def test_work_past_the_maximum_wait_moves_to_the_overflow_queue(world: World) -> None:
    nobody_free = await world.operator("Ann", presence=Presence.AWAY)
    helper = await world.operator("Helper")
    backup = await world.queue("Backup", [helper])
    first_line = await world.queue(
        "First line", [nobody_free], max_wait_seconds=120, overflow_queue_id=backup
    )
    work = await world.arrive(queue_id=first_line)
    report = await world.route()
    assert report.next_due == world.now + timedelta(seconds=120)
    world.tick(121)
    report = await world.route()
    assert report.overflowed == 1
    conversation = await world.conversation(work.conversation_id)
    assert (conversation.queue_id, conversation.assignee_id) == (backup, helper)
    overflow = next(e for e in await world.log(work.conversation_id) if e.kind == "overflow")
    assert "moved to its overflow queue Backup" in overflow.reason


async def test_queue_config_is_checked(world: World) -> None:
    with pytest.raises(InvalidInput) as raised:
        await world.queue("Bad", strategies=["fastest"])
    assert "config.strategies.0" in raised.value.fields
    backup = await world.queue("Backup")
    with pytest.raises(InvalidInput) as raised:
        await world.queue("Bad", overflow_queue_id=backup)
    assert "config.max_wait_seconds" in raised.value.fields
    with pytest.raises(InvalidInput) as raised:
        await world.queue("Bad", overflow_queue_id=backup + 1, max_wait_seconds=60)
    assert raised.value.fields == {"config.overflow_queue_id": f"no queue {backup + 1}"}
    with pytest.raises(InvalidInput) as raised:
        await world.queue("Bad", required_skills="billing >=")
    assert "config.required_skills" in raised.value.fields


# --- SLA --------------------------------------------------------------------------------------


async def test_a_missed_first_response_escalates_and_survives_a_restart(
    world: World, bus: EventBus
) -> None:
    seen: list[Event] = []
    bus.add_listener(seen.append)
    ann = await world.operator("Ann", presence=Presence.OFFLINE)
    support = await world.queue(
        "Support",
        [ann],
        sla={"first_response_minutes": 30},
        escalation={"actions": ["raise_priority", "notify_supervisors"], "raise_priority_by": 2},
    )
    work = await world.arrive(queue_id=support)
    await world.route()
    conversation = await world.conversation(work.conversation_id)
    assert conversation.sla_due_at == conversation.created_at + timedelta(minutes=30)
    # The timer is in the database, not in a process: a new World (a restart) breaches it.
    world.tick(31 * 60)
    restarted = World(world.sessions, world.clock)
    report = await restarted.route()
    assert report.breached == 1
    conversation = await world.conversation(work.conversation_id)
    assert conversation.priority == 2
    breach = next(e for e in await world.log(work.conversation_id) if e.kind == "sla_breach")
    assert "first response target missed" in breach.reason
    assert any(event.type == "sla.breached" for event in seen)
    report = await restarted.route()
    assert report.breached == 0


async def test_an_answer_in_time_meets_the_sla(world: World) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann], sla={"first_response_minutes": 30})
    work = await world.arrive(channel="email", queue_id=support)
    await world.route()
    async with world.sessions() as session, session.begin():
        await reply(session, operator_actor(ann), work.conversation_id, text="On it")
    world.tick(31 * 60)
    report = await world.route()
    assert report.breached == 0
    async with world.sessions() as session:
        timer = await session.scalar(select(SlaTimer))
    assert timer is not None
    assert timer.state == "met"


async def test_sla_due_times_count_business_hours_only(world: World) -> None:
    # 09:00 UTC Monday in Berlin is 10:00; the queue closes at 11:00 and opens Tuesday 09:00.
    support = await world.queue(
        "Support",
        sla={"first_response_minutes": 120},
        business_hours={
            "timezone": "Europe/Berlin",
            "weekly": {"mon": ["09:00-11:00"], "tue": ["09:00-17:00"]},
        },
    )
    work = await world.arrive(queue_id=support)
    await world.route()
    conversation = await world.conversation(work.conversation_id)
    assert conversation.sla_due_at is not None
    # One hour on Monday, the second hour Tuesday 09:00-10:00 Berlin (08:00-09:00 UTC).
    assert conversation.sla_due_at.isoformat() == "2026-11-24T09:00:00+00:00"


async def test_a_breach_can_take_the_work_from_its_operator(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob", presence=Presence.AWAY)
    support = await world.queue(
        "Support",
        [ann, bob],
        sla={"first_response_minutes": 10},
        escalation={"actions": ["reassign"]},
    )
    work = await world.arrive(queue_id=support)
    await world.route()
    assert (await world.conversation(work.conversation_id)).assignee_id == ann
    await world.presence(bob, Presence.AVAILABLE)
    world.tick(11 * 60)
    await world.route()
    # Not straight back to Ann, who missed it: Bob gets it.
    assert (await world.conversation(work.conversation_id)).assignee_id == bob


# --- presence ---------------------------------------------------------------------------------


async def test_a_closed_console_means_away_then_offline_then_work_requeued(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob", presence=Presence.OFFLINE)
    support = await world.queue("Support", [ann, bob])
    work = await world.arrive(queue_id=support)
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    await world.route()
    assert (await world.conversation(work.conversation_id)).assignee_id == ann

    world.tick(59)
    await world.route()
    assert (await _operator(world, ann)).presence == Presence.AVAILABLE
    world.tick(1)
    await world.route()
    ann_now = await _operator(world, ann)
    assert (ann_now.presence, ann_now.presence_reason) == (Presence.AWAY, AUTO_AWAY_REASON)

    world.tick(15 * 60)
    await world.route()
    assert (await _operator(world, ann)).presence == Presence.OFFLINE
    await world.presence(bob, Presence.AVAILABLE)
    world.tick(5 * 60)
    report = await world.route()
    assert report.requeued == 1
    assert (await world.conversation(work.conversation_id)).assignee_id == bob
    assert "requeue" in kinds(await world.log(work.conversation_id))


async def test_the_console_coming_back_undoes_the_automatic_away(world: World) -> None:
    ann = await world.operator("Ann")
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    world.tick(120)
    await world.route()
    assert (await _operator(world, ann)).presence == Presence.AWAY
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    assert (await _operator(world, ann)).presence == Presence.AVAILABLE


async def test_an_offer_to_an_operator_who_leaves_is_withdrawn(world: World) -> None:
    ann = await world.operator("Ann")
    chat = await world.queue("Chat", [ann], offer_timeout_seconds=60)
    await world.arrive(queue_id=chat)
    await world.route()
    assert len(await world.pending_offers()) == 1
    await world.presence(ann, Presence.AWAY, "lunch")
    await world.route()
    assert await world.pending_offers() == []


async def _operator(world: World, operator_id: int) -> Operator:
    async with world.sessions() as session:
        found = await session.get(Operator, operator_id)
        assert found is not None
        return found


# --- manual control ---------------------------------------------------------------------------


async def test_an_operator_transfers_to_a_queue_with_a_note(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann])
    billing = await world.queue("Billing", [bob])
    work = await world.arrive(queue_id=support)
    await world.route()
    async with world.sessions() as session, session.begin():
        await transfer(
            session,
            operator_actor(ann),
            work.conversation_id,
            world.tick(10),
            queue_id=billing,
            note="Billing question",
        )
    await world.route()
    conversation = await world.conversation(work.conversation_id)
    assert (conversation.queue_id, conversation.assignee_id) == (billing, bob)
    transfer_entry = next(e for e in await world.log(work.conversation_id) if e.kind == "transfer")
    assert "Billing question" in transfer_entry.reason


async def test_transfers_respect_who_may_and_capacity(world: World) -> None:
    ann = await world.operator("Ann")
    full = await world.operator("Full", capacity={"messaging": 0})
    support = await world.queue("Support", [ann])
    work = await world.arrive(queue_id=support)
    await world.route()
    async with world.sessions() as session, session.begin():
        with pytest.raises(Forbidden):
            await transfer(
                session, operator_actor(full), work.conversation_id, world.now, queue_id=support
            )
    async with world.sessions() as session, session.begin():
        with pytest.raises(Conflict, match="at capacity"):
            await transfer(
                session, operator_actor(ann), work.conversation_id, world.now, operator_id=full
            )
    supervisor = Actor("boss", Role.SUPERVISOR, None)
    async with world.sessions() as session, session.begin():
        await transfer(session, supervisor, work.conversation_id, world.now, operator_id=full)
    assert (await world.conversation(work.conversation_id)).assignee_id == full
    entry = (await world.log(work.conversation_id))[-1]
    assert "over capacity" in entry.reason


async def test_a_manual_assignment_withdraws_the_offer_and_is_logged(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    chat = await world.queue("Chat", [ann], offer_timeout_seconds=30)
    work = await world.arrive(queue_id=chat)
    await world.route()
    assert len(await world.pending_offers()) == 1
    async with world.sessions() as session, session.begin():
        await assign(session, CLI, work.conversation_id, bob)
    assert await world.pending_offers() == []
    assert kinds(await world.log(work.conversation_id))[-1] == "manual_assign"


# --- leads ------------------------------------------------------------------------------------


async def test_leads_go_round_robin_to_the_matching_sales_operators(world: World) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    away = await world.operator("Carl", presence=Presence.AWAY)
    async with world.sessions() as session, session.begin():
        await set_rules(
            session,
            CLI,
            LEAD_RULES,
            {
                "timezone": "Europe/Berlin",
                "rules": [{"name": "all", "operators": [ann, bob, away], "daily_quota": 1}],
            },
        )
    leads = []
    for _ in range(3):
        async with world.sessions() as session, session.begin():
            contact = Contact(display_name="Lead")
            session.add(contact)
            await session.flush()
            lead = Lead(contact_id=contact.id, source="api", pipeline_id=DEFAULT_PIPELINE)
            session.add(lead)
            await session.flush()
            leads.append(lead.id)
    report = await world.route()
    assert report.leads == 3
    async with world.sessions() as session:
        owners = [
            (await session.get(Lead, lead_id)).owner_id  # type: ignore[union-attr]
            for lead_id in leads
        ]
    # Quota 1 each: Ann and Bob get one, the third stays for a supervisor; Carl is away.
    assert sorted(owner for owner in owners if owner) == sorted([ann, bob])
    assert owners.count(None) == 1


async def test_the_demo_routes_out_of_the_box(world: World) -> None:
    async with world.sessions() as session, session.begin():
        await load_demo(session)
    async with world.sessions() as session:
        for queue in await session.scalars(select(Queue)):
            parse_queue_config(queue.config)
        assert await lead_rules(session) is not None
    world.now = utcnow()
    report = await world.route()
    # Waiting demo work is offered (Support) or assigned (Sales) to whoever has room.
    assert report.offered + report.assigned > 0
    assert report.more is False

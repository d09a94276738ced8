"""Routing's invariants hold after every step of any sequence of events (issue 4, item 9).

A hypothesis state machine runs a small contact center through the routing service on a real
database, one step at a time on a clock it drives: work arrives and customers write again
(reopening resolved work), operators change presence and open their consoles, accept and
reject offers, take, transfer, park and resolve work, supervisors assign and admins change who
works a queue, time passes (offers time out, consoles go quiet, offline operators' work is
requeued) and routing passes run, after any step as the engine's would on its event, or not.
It checks, from the database (tests/routing_checks.py):

- after every step: nobody above capacity, per channel kind and in all (work its customer
  reopened counts once a pass has decided whether its operator keeps it); at most one pending
  offer per conversation, and only while it is unassigned; every operator is as they said,
  or away or offline because their console went quiet;
- after every pass: besides, every pending offer stands (available operator, unexpired, open
  work), no work waits while a member of its queue is eligible for it, and no work awaiting a
  reply stays with an operator offline past the requeue grace. One pass must settle it all.

Left out: going over capacity by hand, which is allowed by design (a supervisor's or an
operator's own assignment), and sticky routing and business hours (work may rightly wait).
The tests after the machine pin the paths it found wrong once (now fixed).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.audit import CLI, Actor
from core.clock import install, using
from core.conversations import assign, set_status
from core.db import SessionFactory, make_engine
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.events import EventBus, session_info
from core.models import (
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    QueueMember,
    Role,
)
from core.operators import set_presence
from core.queues import set_members
from routing.manual import accept_offer, console_seen, reject_offer, transfer
from routing.service import AUTO_AWAY_BUSY_REASON, AUTO_AWAY_REASON
from tests.conftest import empty_database
from tests.routing_checks import (
    capacity_violations,
    has_room_for,
    offer_violations,
    settled_violations,
)
from tests.routing_world import World, operator_actor

pytestmark = pytest.mark.both_databases  # tests/conftest.py

T = TypeVar("T")

SUPERVISOR = Actor("supervisor", Role.SUPERVISOR)
# One queue that assigns directly, one that offers, one that offers only to skilled operators.
QUEUES: list[tuple[str, dict[str, Any]]] = [
    ("Email", {"strategies": ["round_robin"]}),
    ("Chat", {"strategies": ["least_busy", "round_robin"], "offer_timeout_seconds": 30}),
    (
        "Billing",
        {
            "strategies": ["skills_match", "least_busy"],
            "required_skills": "billing >= 2",
            "offer_timeout_seconds": 20,
        },
    ),
]
CHANNELS = ["email", "api", "webform", "sms"]
CAPACITIES: list[dict[str, int]] = [
    {"messaging": 1, "email": 1},
    {"messaging": 2, "email": 2},
    {"messaging": 2},
    {"messaging": 3, "email": 1},
    {"email": 2},
]
MAX_OPERATORS = 4
# Available twice as often as any other presence, so that work moves.
PRESENCES = [Presence.AVAILABLE, Presence.AVAILABLE, Presence.BUSY, Presence.AWAY, Presence.OFFLINE]
operator_specs = st.fixed_dictionaries(
    {
        "capacity": st.sampled_from(CAPACITIES),
        "total_capacity": st.sampled_from([None, None, 2]),
        "billing": st.integers(0, 3),
        "presence": st.sampled_from([Presence.AVAILABLE, *PRESENCES]),
    }
)
picks = st.integers(0, 1000)
# About 30 s on SQLite; OMNICRM_ROUTING_EXAMPLES=500 for a longer hunt.
EXAMPLES = int(os.environ.get("OMNICRM_ROUTING_EXAMPLES", "10"))
_senders = itertools.count(1)


class RoutingMachine(RuleBasedStateMachine):
    """A contact center on a fresh database; each rule is one thing that happens in it."""

    # Set by the test on a subclass of its own: hypothesis builds the machine without arguments.
    database_url: str

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = make_engine(self.database_url)
        self.wait(empty_database(self.engine))
        sessions: SessionFactory = async_sessionmaker(
            self.engine, expire_on_commit=False, info=session_info(EventBus())
        )
        self.world = World(sessions)
        self.previous_clock = install(self.world.clock)
        self.operators: list[int] = []
        self.queues: list[int] = []
        # Who wrote each conversation, on which channel: to write again into the same one.
        self.senders: dict[int, tuple[str, str]] = {}
        self.open = self.assigned = self.offered = 0
        # What each operator said their presence is; routing may only make them away or
        # offline for a closed console, and their console coming back restores what they said.
        self.said: dict[int, Presence] = {}

    def wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        install(self.previous_clock)
        self.wait(self.engine.dispose())
        self.loop.close()

    @property
    def sessions(self) -> SessionFactory:
        return self.world.sessions

    def act(self, action: Coroutine[Any, Any, None], routed: bool) -> None:
        """One thing happens, a second after the step before (so the log has their order);
        then, when `routed`, a routing pass runs, as the engine's would on the event."""
        self.world.tick(1)
        self.wait(action)
        if routed:
            self.wait(self._route())

    # --- the contact center ---------------------------------------------------------------

    @initialize(
        specs=st.lists(operator_specs, min_size=2, max_size=MAX_OPERATORS),
        # Per queue, the operators who do not work it (the simplest case: everyone does).
        outsiders=st.lists(
            st.sets(st.integers(0, MAX_OPERATORS - 1), max_size=1),
            min_size=len(QUEUES),
            max_size=len(QUEUES),
        ),
    )
    def build(self, specs: list[dict[str, Any]], outsiders: list[set[int]]) -> None:
        self.wait(self._build(specs, outsiders))

    async def _build(self, specs: list[dict[str, Any]], outsiders: list[set[int]]) -> None:
        for number, spec in enumerate(specs):
            operator_id = await self.world.operator(
                f"Operator{number}",
                capacity=spec["capacity"],
                total_capacity=spec["total_capacity"],
                skills={"billing": spec["billing"]},
                presence=spec["presence"],
            )
            self.operators.append(operator_id)
            self.said[operator_id] = spec["presence"]
        async with self.sessions() as session, session.begin():
            await session.execute(update(Operator).values(presence_since=self.world.now))
        for (name, config), others in zip(QUEUES, outsiders, strict=True):
            members = [o for number, o in enumerate(self.operators) if number not in others]
            self.queues.append(await self.world.queue(name, members, **config))

    # --- customers ------------------------------------------------------------------------

    @rule(
        channel=st.sampled_from(CHANNELS),
        queue=st.integers(0, len(QUEUES) - 1),
        count=st.integers(1, 2),
        routed=st.booleans(),
    )
    def arrive(self, channel: str, queue: int, count: int, routed: bool) -> None:
        self.act(self._arrive(channel, self.queues[queue], count), routed)

    async def _arrive(self, channel: str, queue_id: int, count: int) -> None:
        for _ in range(count):
            sender = f"customer{next(_senders)}@example.com"
            result = await self.world.arrive(channel=channel, queue_id=queue_id, sender=sender)
            self.senders[result.conversation_id] = (sender, channel)

    @precondition(lambda self: self.senders)
    @rule(pick=picks, routed=st.booleans())
    def customer_writes_again(self, pick: int, routed: bool) -> None:
        """A customer writes into their conversation again, reopening it if it was resolved."""
        self.act(self._write_again(pick), routed)

    async def _write_again(self, pick: int) -> None:
        conversation_id = sorted(self.senders)[pick % len(self.senders)]
        sender, channel = self.senders[conversation_id]
        result = await self.world.arrive(channel=channel, sender=sender)
        assert result.conversation_id == conversation_id

    # --- operators ------------------------------------------------------------------------

    @rule(
        operator=st.integers(0, MAX_OPERATORS - 1),
        presence=st.sampled_from(PRESENCES),
        routed=st.booleans(),
    )
    def change_presence(self, operator: int, presence: Presence, routed: bool) -> None:
        operator_id = self.operators[operator % len(self.operators)]
        self.act(self._change_presence(operator_id, presence), routed)

    async def _change_presence(self, operator_id: int, presence: Presence) -> None:
        # As core.operators.change_own_presence does, at the machine's clock.
        async with self.sessions() as session, session.begin():
            operator = await session.get(Operator, operator_id)
            assert operator is not None
            operator.console_seen_at = None
            await set_presence(session, operator, presence, None, at=self.world.now)
        self.said[operator_id] = presence

    @rule(operator=st.integers(0, MAX_OPERATORS - 1), routed=st.booleans())
    def console_connects(self, operator: int, routed: bool) -> None:
        self.act(self._console(self.operators[operator % len(self.operators)]), routed)

    async def _console(self, operator_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await console_seen(session, operator_id, self.world.now)

    @precondition(lambda self: self.offered)
    @rule(pick=picks, intruder=picks, accept=st.booleans(), routed=st.booleans())
    def answer_offer(self, pick: int, intruder: int, accept: bool, routed: bool) -> None:
        """Someone else's answer is refused as unknown; the operator's own stands if in time."""
        self.act(self._answer(pick, intruder, accept), routed)

    async def _answer(self, pick: int, intruder: int, accept: bool) -> None:
        now = self.world.now
        async with self.sessions() as session:
            offers = list(
                await session.scalars(
                    select(Offer).where(Offer.status == OfferStatus.PENDING).order_by(Offer.id)
                )
            )
        if not offers:
            return
        offer = offers[pick % len(offers)]
        answer = accept_offer if accept else reject_offer
        others = [o for o in self.operators if o != offer.operator_id]
        async with self.sessions() as session, session.begin():
            with pytest.raises(NotFound):
                await answer(session, operator_actor(others[intruder % len(others)]), offer.id, now)
        async with self.sessions() as session, session.begin():
            if offer.expires_at <= now:
                with pytest.raises(Conflict, match="expired"):
                    await answer(session, operator_actor(offer.operator_id), offer.id, now)
                return
            answered = await answer(session, operator_actor(offer.operator_id), offer.id, now)
        assert answered.status == (OfferStatus.ACCEPTED if accept else OfferStatus.REJECTED)
        conversation = await self.world.conversation(offer.conversation_id)
        assert conversation.assignee_id == (offer.operator_id if accept else None)

    @precondition(lambda self: self.assigned)
    @rule(pick=picks, to_queue=st.booleans(), to=picks, routed=st.booleans())
    def transfer_work(self, pick: int, to_queue: bool, to: int, routed: bool) -> None:
        """The assignee hands work on: to a queue, or to a colleague with room for it."""
        self.act(self._transfer(pick, to_queue, to), routed)

    async def _transfer(self, pick: int, to_queue: bool, target: int) -> None:
        now = self.world.now
        held = await self._conversations(
            ConversationStatus.OPEN, ConversationStatus.PENDING, assigned=True
        )
        if not held:
            return
        conversation = await self.world.conversation(held[pick % len(held)])
        assert conversation.assignee_id is not None
        actor = operator_actor(conversation.assignee_id)
        if to_queue:
            queue_id = self.queues[target % len(self.queues)]
            async with self.sessions() as session, session.begin():
                await transfer(session, actor, conversation.id, now, queue_id=queue_id)
            after = await self.world.conversation(conversation.id)
            assert (after.queue_id, after.assignee_id, after.queue_entered_at) == (
                queue_id,
                None,
                now,
            )
            return
        operator_id = self.operators[target % len(self.operators)]
        async with self.sessions() as session:
            room = await has_room_for(session, operator_id, conversation.channel)
        async with self.sessions() as session, session.begin():
            if operator_id == conversation.assignee_id:
                with pytest.raises(InvalidInput):
                    await transfer(session, actor, conversation.id, now, operator_id=operator_id)
                return
            if not room:
                with pytest.raises(Conflict, match="capacity"):
                    await transfer(session, actor, conversation.id, now, operator_id=operator_id)
                return
            await transfer(session, actor, conversation.id, now, operator_id=operator_id)
        assert (await self.world.conversation(conversation.id)).assignee_id == operator_id

    @precondition(lambda self: self.open)
    @rule(
        pick=picks,
        to=st.integers(0, MAX_OPERATORS),
        by_supervisor=st.booleans(),
        routed=st.booleans(),
    )
    def assign_work(self, pick: int, to: int, by_supervisor: bool, routed: bool) -> None:
        """A supervisor assigns (or, with `to` past the last operator, unassigns) work, or an
        operator takes work of their queues for themselves; only where there is room for it,
        as going over capacity by hand is allowed by design."""
        self.act(self._assign(pick, to, by_supervisor), routed)

    async def _assign(self, pick: int, to: int, by_supervisor: bool) -> None:
        candidates = await self._conversations(ConversationStatus.OPEN, ConversationStatus.PENDING)
        if not candidates:
            return
        conversation = await self.world.conversation(candidates[pick % len(candidates)])
        operator_id = self.operators[to] if to < len(self.operators) else None
        if operator_id is None or operator_id == conversation.assignee_id:
            if by_supervisor and operator_id is None:
                async with self.sessions() as session, session.begin():
                    await assign(session, SUPERVISOR, conversation.id, None)
                assert (await self.world.conversation(conversation.id)).assignee_id is None
            return
        async with self.sessions() as session:
            if not await has_room_for(session, operator_id, conversation.channel):
                return
            member = await session.get(QueueMember, (conversation.queue_id or 0, operator_id))
        actor = SUPERVISOR if by_supervisor else operator_actor(operator_id)
        async with self.sessions() as session, session.begin():
            if not by_supervisor and member is None:
                with pytest.raises(Forbidden):
                    await assign(session, actor, conversation.id, operator_id)
                return
            if not by_supervisor and conversation.assignee_id is not None:
                with pytest.raises(Conflict):
                    await assign(session, actor, conversation.id, operator_id)
                return
            await assign(session, actor, conversation.id, operator_id)
        assert (await self.world.conversation(conversation.id)).assignee_id == operator_id

    @rule(
        queue=st.integers(0, len(QUEUES) - 1),
        outsiders=st.sets(st.integers(0, MAX_OPERATORS - 1), max_size=2),
        routed=st.booleans(),
    )
    def change_members(self, queue: int, outsiders: set[int], routed: bool) -> None:
        """An admin changes who works a queue."""
        members = [o for number, o in enumerate(self.operators) if number not in outsiders]
        self.act(self._members(self.queues[queue], members), routed)

    async def _members(self, queue_id: int, members: list[int]) -> None:
        async with self.sessions() as session, session.begin():
            await set_members(session, CLI, queue_id, members)

    @precondition(lambda self: self.open)
    @rule(
        pick=picks,
        status=st.sampled_from(["resolved", "resolved", "pending", "open"]),
        routed=st.booleans(),
    )
    def change_status(self, pick: int, status: str, routed: bool) -> None:
        """The assignee (a supervisor for unassigned work) resolves work, parks it as pending
        or opens it again."""
        self.act(self._set_status(pick, status), routed)

    async def _set_status(self, pick: int, status: str) -> None:
        candidates = await self._conversations(ConversationStatus.OPEN, ConversationStatus.PENDING)
        if not candidates:
            return
        conversation = await self.world.conversation(candidates[pick % len(candidates)])
        actor = (
            SUPERVISOR
            if conversation.assignee_id is None
            else operator_actor(conversation.assignee_id)
        )
        async with self.sessions() as session, session.begin():
            await set_status(session, actor, conversation.id, status)

    # --- time and routing -----------------------------------------------------------------

    @rule(seconds=st.sampled_from([5, 20, 31, 61, 301, 901]))
    def time_passes(self, seconds: int) -> None:
        self.world.tick(seconds)

    @rule()
    def route(self) -> None:
        self.world.tick(1)
        self.wait(self._route())

    async def _route(self) -> None:
        """A committed pass; one pass settles everything."""
        await self.world.route()
        async with self.sessions() as session:
            assert [
                *await capacity_violations(session),
                *await settled_violations(
                    session, self.world.now, self.world.options.requeue_after_offline
                ),
            ] == []

    @invariant()
    def invariants_hold(self) -> None:
        self.wait(self._check_always())

    async def _check_always(self) -> None:
        async with self.sessions() as session:
            assert await capacity_violations(session, before_pass=True) == []
            assert await offer_violations(session) == []
            for operator in await session.scalars(select(Operator)):
                said = self.said[operator.id]
                automatic = (
                    said in (Presence.AVAILABLE, Presence.BUSY)
                    and operator.presence in (Presence.AWAY, Presence.OFFLINE)
                    and operator.presence_reason in (AUTO_AWAY_REASON, AUTO_AWAY_BUSY_REASON)
                )
                assert operator.presence == said or automatic, (
                    f"operator {operator.id} said {said}, is {operator.presence}"
                    f" ({operator.presence_reason})"
                )
        # What there is to act on, so that rules with nothing to do are not chosen.
        held = (ConversationStatus.OPEN, ConversationStatus.PENDING)
        self.open = len(await self._conversations(*held))
        self.assigned = len(await self._conversations(*held, assigned=True))
        self.offered = len(await self._conversations(ConversationStatus.OPEN, offered=True))

    # --- helpers --------------------------------------------------------------------------

    async def _conversations(
        self,
        *statuses: ConversationStatus,
        assigned: bool | None = None,
        offered: bool | None = None,
    ) -> list[int]:
        query = select(Conversation.id).where(Conversation.status.in_(statuses))
        if assigned is not None:
            query = query.where(
                Conversation.assignee_id.is_not(None)
                if assigned
                else Conversation.assignee_id.is_(None)
            )
        if offered is not None:
            pending = (
                select(Offer.id)
                .where(
                    Offer.conversation_id == Conversation.id, Offer.status == OfferStatus.PENDING
                )
                .exists()
            )
            query = query.where(pending if offered else ~pending)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(Conversation.id)))


def test_routing_invariants_hold_after_every_step(database_url: str) -> None:
    examples = EXAMPLES if database_url.startswith("sqlite") else max(1, EXAMPLES * 2 // 3)
    machine = type("RoutingMachineHere", (RoutingMachine,), {"database_url": database_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- found by the machine -----------------------------------------------------------------------


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions)
    with using(world.clock):
        yield world


async def settled(world: World) -> list[str]:
    async with world.sessions() as session:
        return [
            *await capacity_violations(session),
            *await offer_violations(session),
            *await settled_violations(session, world.now, world.options.requeue_after_offline),
        ]


async def test_resolving_offered_work_withdraws_the_offer(world: World) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 1})
    chat = await world.queue("Chat", [ann], offer_timeout_seconds=30)
    spam = await world.arrive(queue_id=chat)
    waiting = await world.arrive(queue_id=chat)
    await world.route()
    [offer] = await world.pending_offers()
    assert offer.conversation_id == spam.conversation_id
    async with world.sessions() as session, session.begin():
        await set_status(session, SUPERVISOR, spam.conversation_id, "resolved")
    world.tick(1)
    await world.route()
    assert await settled(world) == []
    # Ann's one place goes to the customer still waiting.
    [offer] = await world.pending_offers()
    assert offer.conversation_id == waiting.conversation_id


async def test_a_reopened_conversation_does_not_put_its_operator_over_capacity(
    world: World,
) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 1})
    support = await world.queue("Support", [ann])
    first = await world.arrive(queue_id=support, sender="first@example.com")
    await world.route()
    async with world.sessions() as session, session.begin():
        await set_status(session, operator_actor(ann), first.conversation_id, "resolved")
    second = await world.arrive(queue_id=support)
    world.tick(1)
    await world.route()
    assert (await world.conversation(second.conversation_id)).assignee_id == ann
    again = await world.arrive(sender="first@example.com")
    assert again.conversation_id == first.conversation_id
    world.tick(1)
    await world.route()
    assert await settled(world) == []
    reopened = await world.conversation(first.conversation_id)
    assert (reopened.queue_id, reopened.assignee_id) == (support, None)


async def test_work_assigned_before_routing_saw_it_is_not_kept_over_capacity_when_reopened(
    world: World,
) -> None:
    ann = await world.operator("Ann", capacity={"messaging": 1})
    support = await world.queue("Support", [ann])
    first = await world.arrive(queue_id=support, sender="first@example.com")
    async with world.sessions() as session, session.begin():
        await assign(session, SUPERVISOR, first.conversation_id, ann)
    await world.route()
    async with world.sessions() as session, session.begin():
        await set_status(session, operator_actor(ann), first.conversation_id, "resolved")
    second = await world.arrive(queue_id=support)
    world.tick(1)
    await world.route()
    assert (await world.conversation(second.conversation_id)).assignee_id == ann
    await world.arrive(sender="first@example.com")
    world.tick(1)
    await world.route()
    assert await settled(world) == []


async def test_an_operator_who_said_busy_stays_busy_when_their_console_comes_back(
    world: World,
) -> None:
    ann = await world.operator("Ann", presence=Presence.BUSY)
    support = await world.queue("Support", [ann])
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    world.tick(61)
    await world.route()
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    work = await world.arrive(queue_id=support)
    await world.route()
    assert (await world.conversation(work.conversation_id)).assignee_id is None


async def test_a_busy_operator_offline_for_a_closed_console_comes_back_busy(
    world: World,
) -> None:
    ann = await world.operator("Ann", presence=Presence.BUSY)
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    world.tick(61)
    await world.route()
    world.tick(15 * 60)
    await world.route()
    async with world.sessions() as session:
        gone = await session.get(Operator, ann)
        assert gone is not None
        assert gone.presence == Presence.OFFLINE
    async with world.sessions() as session, session.begin():
        await console_seen(session, ann, world.now)
    async with world.sessions() as session:
        back = await session.get(Operator, ann)
        assert back is not None
        assert back.presence == Presence.BUSY

"""The waiting step's scope (routing/scope.py): a step reads the explained work only of
the queues, and kinds, that changes since the engine last looked at them may have made
decidable, reads everything at least every FULL_SECONDS, and never leaves out what may
have become decidable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.audit import CLI
from core.contacts import ContactChanges, update_contact
from core.conversations import assign, set_status
from core.event_types import ROUTING_DECISION
from core.events import Event
from core.models import ConversationStatus, Presence
from core.operators import update_operator
from routing import scope as scope_module
from routing import service, waiting
from routing.capacity import CHANNEL_KINDS
from routing.config import parse_queue_config
from routing.engine import RoutingEngine
from routing.scope import FULL_SECONDS, QueueMarks
from routing.setup import QueueSetup
from routing.strategies import OperatorSnapshot
from tests.routing_engine import settle
from tests.routing_world import World

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
# A customer's message in Georgian: the contact's language is "ka".
GEORGIAN = "გამარჯობა, შეკვეთა ჯერ არ მიმიღია, დამეხმარეთ"
# Required skills that read the work (its language): an operator with room who does not
# speak it leaves the work explained, and the room check cannot rule such work out.
SPEAKS = "languages has language"


# --- the marks (pure) -------------------------------------------------------------------------


def setup(queue_id: int, **config: Any) -> QueueSetup:
    return QueueSetup(queue_id, f"Queue {queue_id}", parse_queue_config(config))


def snapshot(operator_id: int, **changes: Any) -> OperatorSnapshot:
    fields: dict[str, Any] = {
        "id": operator_id,
        "presence": Presence.AVAILABLE,
        "presence_since": NOW - timedelta(hours=1),
        "capacity": {"messaging": 2},
    }
    return OperatorSnapshot(**(fields | changes))


SETUPS = {1: setup(1), 2: setup(2)}
MEMBERS = {1: [10], 2: [20, 21]}


def step(
    marks: QueueMarks,
    now: datetime,
    snapshots: dict[int, OperatorSnapshot],
    *,
    decided: frozenset[int] = frozenset(),
    setups: dict[int, QueueSetup] = SETUPS,
    members: dict[int, list[int]] = MEMBERS,
) -> dict[int, set[str]]:
    """The kinds of explained work a step starting now reads of each marked queue (a queue
    not in the answer: all of it); the step then ends uncut, having decided work in
    `decided`, and left the operators as they were."""
    scope = marks.begin(now, setups, members, snapshots)
    marks.end(scope, snapshots, cut=False, decided=decided, unsettled=())
    return {queue_id: set(kinds) for queue_id, kinds in scope.kinds.items()}


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


ALL = set(CHANNEL_KINDS)
NOTHING: dict[int, set[str]] = {1: set(), 2: set()}


def test_a_step_reads_only_the_kinds_a_queue_may_now_be_given() -> None:
    marks = QueueMarks()
    snapshots = {
        10: snapshot(10),
        20: snapshot(20),
        21: snapshot(21, load={"messaging": 1, "email": 1}, capacity={"messaging": 2, "email": 5}),
    }
    assert step(marks, at(0), snapshots) == {}  # the first step is full
    assert step(marks, at(1), snapshots) == NOTHING
    # An equal snapshot built anew is the same input; one holding more is no freer.
    snapshots[10] = snapshot(10, load={"messaging": 2}, last_assigned_at=NOW)
    assert step(marks, at(2), snapshots) == NOTHING
    # Operator 21 finished an email: queue 2's explained email is read, nothing else.
    snapshots[21] = snapshot(21, load={"messaging": 1}, capacity={"messaging": 2, "email": 5})
    assert step(marks, at(3), snapshots) == {1: set(), 2: {"email"}}
    # Queue 1 kept the freer state it was marked in: 10 back to it is no freer.
    snapshots[10] = snapshot(10)
    assert step(marks, at(4), snapshots) == NOTHING


@pytest.mark.parametrize(
    "change",
    ["presence", "skills", "capacity", "total cap", "member back", "member added", "config"],
)
def test_anything_else_of_the_queues_side_makes_the_step_read_all_of_it(change: str) -> None:
    marks = QueueMarks()
    snapshots = {10: snapshot(10), 20: snapshot(20), 21: snapshot(21, load={"messaging": 1})}
    if change == "total cap":
        snapshots[20] = snapshot(20, load={"messaging": 1}, total_capacity=2)
    if change == "member back":
        del snapshots[21]  # deactivated: no snapshot
    setups, members = dict(SETUPS), {queue_id: list(ids) for queue_id, ids in MEMBERS.items()}
    step(marks, at(0), snapshots)
    if change == "presence":
        snapshots[20] = snapshot(20, presence=Presence.AWAY)
    elif change == "skills":
        snapshots[20] = snapshot(20, skills={"billing": 2})
    elif change == "capacity":
        snapshots[20] = snapshot(20, capacity={"messaging": 3})
    elif change == "total cap":
        snapshots[20] = snapshot(20, total_capacity=2)  # its messaging frees any kind
    elif change == "member back":
        snapshots[21] = snapshot(21)
    elif change == "member added":
        members[2].append(10)
    else:
        setups[2] = setup(2, required_skills="billing >= 1")
    assert step(marks, at(1), snapshots, setups=setups, members=members) == {1: set(), 2: ALL}


def test_a_member_gone_leaves_the_queue_no_freer() -> None:
    marks = QueueMarks()
    snapshots = {10: snapshot(10), 20: snapshot(20), 21: snapshot(21)}
    step(marks, at(0), snapshots)
    del snapshots[21]  # deactivated: no snapshot
    assert step(marks, at(1), snapshots) == NOTHING


def test_a_queue_left_out_but_decided_in_is_marked_as_the_step_left_it() -> None:
    """Work arrived in queue 2 while 21 was busy, and was explained: 21 freeing up must
    have queue 2 read again, though 21 is then as free as when the queue was marked."""
    marks = QueueMarks()
    snapshots = {10: snapshot(10), 20: snapshot(20), 21: snapshot(21)}
    step(marks, at(0), snapshots)
    snapshots[21] = snapshot(21, load={"messaging": 2})
    assert step(marks, at(1), snapshots, decided=frozenset({2})) == NOTHING
    snapshots[21] = snapshot(21)
    assert step(marks, at(2), snapshots) == {1: set(), 2: {"messaging"}}


def test_queues_answered_by_time_sticky_or_invalid_are_never_left_out() -> None:
    setups = {
        1: setup(1),
        2: setup(2, strategies=["sticky", "least_busy"]),
        3: QueueSetup(3, "Broken", None, "strategies: unknown"),
        4: setup(4),
    }
    members = {1: [10], 2: [10], 3: [10], 4: [10]}
    snapshots = {10: snapshot(10)}
    marks = QueueMarks()
    scope = marks.begin(NOW, setups, members, snapshots)
    marks.end(scope, snapshots, cut=False, decided=(), unsettled={4})
    assert set(marks.begin(NOW, setups, members, snapshots).skipped) == {1}


def test_a_step_cut_short_unmarks_what_it_looked_at_or_decided_in() -> None:
    marks = QueueMarks()
    snapshots = {10: snapshot(10), 20: snapshot(20), 21: snapshot(21)}
    scope = marks.begin(at(0), SETUPS, MEMBERS, snapshots)
    marks.end(scope, snapshots, cut=True, decided=(), unsettled=())
    assert marks.full_due(at(1))  # the full step did not end
    assert step(marks, at(1), snapshots) == {}
    snapshots[21] = snapshot(21, capacity={"messaging": 3})
    scope = marks.begin(at(2), SETUPS, MEMBERS, snapshots)
    assert set(scope.skipped) == {1}
    marks.end(scope, snapshots, cut=True, decided=(), unsettled=())
    # Queue 1 was left out of the cut step: its mark stands; queue 2's is gone.
    assert set(marks.begin(at(3), SETUPS, MEMBERS, snapshots).skipped) == {1}
    scope = marks.begin(at(3), SETUPS, MEMBERS, snapshots)
    marks.end(scope, snapshots, cut=True, decided={1}, unsettled=())
    assert set(marks.begin(at(4), SETUPS, MEMBERS, snapshots).skipped) == set()


def test_everything_is_read_again_every_full_seconds() -> None:
    marks = QueueMarks()
    snapshots = {10: snapshot(10), 20: snapshot(20), 21: snapshot(21)}
    step(marks, at(0), snapshots)
    assert step(marks, at(FULL_SECONDS - 1), snapshots) == NOTHING
    full = marks.begin(at(FULL_SECONDS), SETUPS, MEMBERS, snapshots)
    assert (full.full, set(full.skipped)) == (True, set())
    marks.end(full, snapshots, cut=False, decided=(), unsettled=())
    assert marks.next_full == at(2 * FULL_SECONDS)
    marks.forget()
    assert marks.next_full is None


# --- the engine ---------------------------------------------------------------------------------


async def in_georgian(world: World, queue_id: int, count: int) -> set[int]:
    """`count` conversations arriving in the queue in Georgian."""
    return {
        (await world.arrive(queue_id=queue_id, text=GEORGIAN)).conversation_id for _ in range(count)
    }


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The conversations each waiting step read, step by step."""
    steps: list[set[int]] = []
    route = waiting._route

    async def spied(*args: Any) -> None:
        rows: Sequence[Any] = args[5]
        steps.append({row.id for row in rows})
        await route(*args)

    monkeypatch.setattr(waiting, "_route", spied)
    return steps


async def test_an_arrival_reads_the_explained_work_only_of_queues_that_changed(
    world: World, routing: RoutingEngine, read: list[set[int]]
) -> None:
    """Ann and Bob have room, but their queues' work is in a language they do not speak:
    both backlogs are explained, and read again only when their own queue changes."""
    ann = await world.operator("Ann", languages={"en": 3})
    bob = await world.operator("Bob", languages={"en": 3})
    billing = await world.queue("Billing", [ann], required_skills=SPEAKS)
    sales = await world.queue("Sales", [bob], required_skills=SPEAKS)
    billed = await in_georgian(world, billing, 3)
    sold = await in_georgian(world, sales, 2)
    await settle(routing)
    assert billed | sold <= read[-1]  # the first step reads everything
    world.tick(1)
    [arrival] = await in_georgian(world, sales, 1)
    report = await routing.run_next()
    assert report.assigned == 0
    assert read[-1] == {arrival}  # nothing of either backlog: no queue changed
    world.tick(1)
    async with world.sessions() as session, session.begin():
        await update_operator(session, CLI, ann, languages={"en": 3, "ka": 2})
    report = await routing.run_next()
    assert read[-1] == billed  # Billing's backlog, not Sales'
    assert report.assigned == 3
    assert {(await world.conversation(id_)).assignee_id for id_ in billed} == {ann}


async def test_work_another_process_explained_has_its_queue_read_again(
    world: World, routing: RoutingEngine, read: list[set[int]]
) -> None:
    """Another process's engine may explain work while an operator is busier than this
    engine's mark says: its `routing.decision` unmarks the queue it names."""
    ann = await world.operator("Ann", languages={"en": 3})
    billing = await world.queue("Billing", [ann], required_skills=SPEAKS)
    sales = await world.queue("Sales", [ann], required_skills=SPEAKS)
    billed = await in_georgian(world, billing, 2)
    await in_georgian(world, sales, 1)
    await settle(routing)
    elsewhere = {"kind": "none", "queues": str(billing), "operators": ""}
    routing._on_event(Event(ROUTING_DECISION, {"conversation": 1}, elsewhere, origin="other"))
    # Its own decisions, and another process's that explain nothing, unmark nothing.
    own = {**elsewhere, "queues": str(sales)}
    routing._on_event(Event(ROUTING_DECISION, {"conversation": 1}, own))
    gave = {"kind": "assign", "queues": str(sales), "operators": str(ann)}
    routing._on_event(Event(ROUTING_DECISION, {"conversation": 1}, gave, origin="other"))
    world.tick(1)
    arrival = (await world.arrive(queue_id=await world.queue("Other"))).conversation_id
    await routing.run_next()
    assert read[-1] == billed | {arrival}


async def test_a_freed_email_slot_reads_only_the_explained_email(
    world: World, routing: RoutingEngine, read: list[set[int]]
) -> None:
    """Ann has room for chats, but the waiting chat is in a language she does not speak:
    her email slot freed, the step reads the waiting email, not the chat again."""
    ann = await world.operator("Ann", capacity={"messaging": 2, "email": 1}, languages={"en": 3})
    support = await world.queue("Support", [ann], required_skills=SPEAKS)
    mail = await world.arrive(channel="email", queue_id=support)
    chat_waits = await world.arrive(queue_id=support, text=GEORGIAN)
    mail_waits = await world.arrive(channel="email", queue_id=support)
    await settle(routing)
    assert (await world.conversation(mail.conversation_id)).assignee_id == ann
    world.tick(1)
    async with world.sessions() as session, session.begin():
        await set_status(session, CLI, mail.conversation_id, ConversationStatus.RESOLVED)
    report = await routing.run_next()
    assert read[-1] == {mail_waits.conversation_id}
    assert report.assigned == 1
    assert (await world.conversation(mail_waits.conversation_id)).assignee_id == ann
    assert (await world.conversation(chat_waits.conversation_id)).assignee_id is None


async def test_a_reopened_conversation_nobody_held_is_read_by_a_scoped_step(
    world: World, routing: RoutingEngine
) -> None:
    """Work reopened by its customer enters its queue again without a note: a step reads
    it though nothing of the queue changed."""
    ann = await world.operator("Ann", languages={"en": 3})
    support = await world.queue("Support", [ann], required_skills=SPEAKS)
    first = await world.arrive(queue_id=support, sender="kim@example.com", text=GEORGIAN)
    await in_georgian(world, support, 1)  # keeps waiting: the queue stays marked
    await settle(routing)
    async with world.sessions() as session, session.begin():
        await set_status(session, CLI, first.conversation_id, ConversationStatus.RESOLVED)
    await settle(routing)
    world.tick(1)
    again = await world.arrive(
        sender="kim@example.com", text="Hello again, I still need help with my order please"
    )
    assert again.conversation_id == first.conversation_id
    await settle(routing)
    assert (await world.conversation(first.conversation_id)).assignee_id == ann


@pytest.mark.parametrize("away", ["assigned elsewhere", "pending"])
async def test_work_back_to_waiting_by_hand_is_read_by_a_scoped_step(
    world: World, routing: RoutingEngine, away: str
) -> None:
    """Explained work a supervisor gave to someone outside its queue (or set pending), then
    took back (or opened again), waits anew: it is read at once, though its queue is as the
    last step saw it."""
    ann = await world.operator("Ann", capacity={"messaging": 1})
    bob = await world.operator("Bob")
    support = await world.queue("Support", [ann])
    first = await world.arrive(queue_id=support)
    later = await world.arrive(queue_id=support)
    await world.arrive(queue_id=await world.queue("Nobody's"))  # waits: marks are kept
    await settle(routing)
    assert (await world.conversation(later.conversation_id)).routing_note is not None
    async with world.sessions() as session, session.begin():
        if away == "pending":
            await set_status(session, CLI, later.conversation_id, ConversationStatus.PENDING)
        else:
            await assign(session, CLI, later.conversation_id, bob)
    async with world.sessions() as session, session.begin():
        await set_status(session, CLI, first.conversation_id, ConversationStatus.RESOLVED)
    world.tick(1)
    await settle(routing)  # Ann is free, and Support marked so
    async with world.sessions() as session, session.begin():
        if away == "pending":
            await set_status(session, CLI, later.conversation_id, ConversationStatus.OPEN)
        else:
            await assign(session, CLI, later.conversation_id, None)
    world.tick(1)
    await settle(routing)
    assert (await world.conversation(later.conversation_id)).assignee_id == ann


async def test_a_change_no_queue_shows_is_seen_by_the_full_step(
    world: World, routing: RoutingEngine
) -> None:
    """A contact made VIP changes the work's side, which the marks do not see, and commits
    no event routing wakes for: the next full step gives the work."""
    ann = await world.operator("Ann")
    vip = await world.queue("VIP", [ann], required_skills='priority_tier == "vip"')
    other = await world.queue("Other", [])
    work = await world.arrive(queue_id=vip)
    await settle(routing)
    world.tick(1)
    async with world.sessions() as session, session.begin():
        await update_contact(session, CLI, work.contact_id, ContactChanges(priority_tier="vip"))
    await world.arrive(queue_id=other)  # an event, elsewhere
    await routing.run_next()
    world.tick(FULL_SECONDS)
    report = await routing.run_next()
    assert report.assigned == 1
    assert (await world.conversation(work.conversation_id)).assignee_id == ann


async def test_an_sla_escalation_raising_the_priority_has_the_work_decided_again(
    world: World, routing: RoutingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raised priority is the work's side: the escalation clears the note, so the
    same pass decides the work again, scoped or not."""
    monkeypatch.setattr(scope_module, "FULL_SECONDS", 10 * 86400.0)
    ann = await world.operator("Ann")
    urgent = await world.queue(
        "Urgent",
        [ann],
        required_skills="priority >= 2",
        sla={"first_response_minutes": 30},
        escalation={"actions": ["raise_priority"], "raise_priority_by": 2},
    )
    work = await world.arrive(queue_id=urgent)
    await settle(routing)
    assert (await world.conversation(work.conversation_id)).routing_note is not None
    world.tick(31 * 60)
    report = await routing.run_next()
    assert (report.breached, report.assigned) == (1, 1)


async def test_work_given_by_a_pass_that_failed_to_commit_is_given_again(
    world: World, routing: RoutingEngine
) -> None:
    """The failed pass saw Ann with room and gave her the work; nothing of it was written.
    Its marks would say Support is as it saw it, so the engine forgets them."""
    ann = await world.operator("Ann", presence=Presence.AWAY)
    support = await world.queue("Support", [ann])
    backlog = [(await world.arrive(queue_id=support)).conversation_id for _ in range(2)]
    await settle(routing)
    world.tick(1)
    await world.presence(ann, Presence.AVAILABLE)
    route = waiting.route_waiting

    async def failing(*args: Any) -> None:
        await route(*args)
        raise RuntimeError("the database went away")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "route_waiting", failing)
        with pytest.raises(RuntimeError):
            await routing.run_next()
    assert [(await world.conversation(id_)).assignee_id for id_ in backlog] == [None, None]
    world.tick(1)
    report = await routing.run_next()
    assert report.assigned == 2

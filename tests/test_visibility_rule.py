"""The visibility rule's forms agree (core.visibility): on random worlds, each SQL condition
selects exactly the rows its pure predicate accepts, on SQLite and PostgreSQL; the websocket's
event filter agrees with both; and every event type emitted anywhere has a decided audience."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from core.audit import Actor
from core.db import SessionFactory
from core.events import Event
from core.models import (
    Contact,
    Conversation,
    Direction,
    Interaction,
    InteractionKind,
    Lead,
    Operator,
    Queue,
    QueueMember,
    Role,
)
from core.pipelines import default_pipeline_query
from core.visibility import (
    EVENT_AUDIENCE,
    Audience,
    Placement,
    audience_labels,
    conversation_filter,
    interaction_filter,
    lead_filter,
    sees_conversation,
    sees_event,
    sees_interaction,
    sees_lead,
)

pytestmark = pytest.mark.both_databases  # tests/conftest.py

QUEUES = (1, 2, 3)
OPERATORS = (1, 2, 3)
ROOT = Path(__file__).resolve().parent.parent

queue_ids = st.none() | st.sampled_from(QUEUES)
operator_ids = st.none() | st.sampled_from(OPERATORS)
placements = st.builds(Placement, queue_ids, operator_ids)
actors = st.builds(
    lambda role, operator_id: Actor(f"{role}:{operator_id}", role, operator_id),
    st.sampled_from(list(Role)),
    operator_ids,
)

# The pipeline leads go to (tests/conftest.py seeds it like migrations do).
DEFAULT_PIPELINE = default_pipeline_query().scalar_subquery()


@dataclass(frozen=True)
class RandomWorld:
    members: frozenset[tuple[int, int]]
    conversations: list[Placement]
    # (index of the conversation or None, direction, kind)
    interactions: list[tuple[int | None, Direction, InteractionKind]]
    # (owner, index of the conversation or None)
    leads: list[tuple[int | None, int | None]]

    def queues_of(self, operator_id: int | None) -> frozenset[int]:
        return frozenset(queue for queue, member in self.members if member == operator_id)


@st.composite
def worlds(draw: st.DrawFn) -> RandomWorld:
    members = draw(st.frozensets(st.tuples(st.sampled_from(QUEUES), st.sampled_from(OPERATORS))))
    conversations = draw(st.lists(placements, min_size=1, max_size=6))
    index = st.none() | st.integers(0, len(conversations) - 1)
    interactions = draw(
        st.lists(
            st.tuples(
                index, st.sampled_from(list(Direction)), st.sampled_from(list(InteractionKind))
            ),
            max_size=8,
        )
    )
    leads = draw(st.lists(st.tuples(operator_ids, index), max_size=5))
    return RandomWorld(members, conversations, interactions, leads)


agreement = hypothesis_settings(
    max_examples=30,
    deadline=None,
    # The database fixture is shared by the examples; each example empties it first.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _store(sessions: SessionFactory, world: RandomWorld) -> tuple[list[int], list[int]]:
    """Write the world; the ids of its conversations, interactions and leads."""
    async with sessions() as session, session.begin():
        for model in (Lead, Interaction, Conversation, QueueMember, Queue, Operator, Contact):
            await session.execute(delete(model))
        contact = Contact(display_name="Someone")
        session.add(contact)
        for operator_id in OPERATORS:
            session.add(
                Operator(
                    id=operator_id, email=f"o{operator_id}@example.com", name=f"O{operator_id}"
                )
            )
        for queue_id in QUEUES:
            session.add(Queue(id=queue_id, name=f"Q{queue_id}"))
        await session.flush()
        session.add_all(QueueMember(queue_id=q, operator_id=o) for q, o in world.members)
        conversations = [
            Conversation(
                contact_id=contact.id,
                channel="email",
                queue_id=placement.queue_id,
                assignee_id=placement.assignee_id,
            )
            for placement in world.conversations
        ]
        session.add_all(conversations)
        await session.flush()
        interactions = [
            Interaction(
                conversation_id=None if index is None else conversations[index].id,
                contact_id=contact.id,
                kind=kind,
                direction=direction,
                channel="email",
            )
            for index, direction, kind in world.interactions
        ]
        leads = [
            Lead(
                contact_id=contact.id,
                conversation_id=None if index is None else conversations[index].id,
                owner_id=owner,
                source="test",
                pipeline_id=DEFAULT_PIPELINE,
            )
            for owner, index in world.leads
        ]
        session.add_all([*interactions, *leads])
        await session.flush()
        return [c.id for c in conversations], [i.id for i in interactions] + [
            lead.id for lead in leads
        ]


@agreement
@given(world=worlds())
async def test_each_sql_condition_selects_what_its_predicate_accepts(
    sessions: SessionFactory, world: RandomWorld
) -> None:
    conversation_ids, other_ids = await _store(sessions, world)
    interaction_ids = other_ids[: len(world.interactions)]
    lead_ids = other_ids[len(world.interactions) :]
    every_actor = [
        Actor("x", role, operator_id) for role in Role for operator_id in (None, *OPERATORS)
    ]
    async with sessions() as session:
        for actor in every_actor:
            member_queues = world.queues_of(actor.operator_id)
            selected = set(
                await session.scalars(select(Conversation.id).where(conversation_filter(actor)))
            )
            accepted = {
                conversation_id
                for conversation_id, placement in zip(
                    conversation_ids, world.conversations, strict=True
                )
                if sees_conversation(actor, *placement, member_queues)
            }
            assert selected == accepted, actor

            selected = set(
                await session.scalars(select(Interaction.id).where(interaction_filter(actor)))
            )
            accepted = {
                interaction_id
                for interaction_id, (index, direction, kind) in zip(
                    interaction_ids, world.interactions, strict=True
                )
                if sees_interaction(
                    actor,
                    None if index is None else world.conversations[index],
                    direction,
                    kind,
                    member_queues,
                )
            }
            assert selected == accepted, actor

            selected = set(await session.scalars(select(Lead.id).where(lead_filter(actor))))
            accepted = {
                lead_id
                for lead_id, (owner, index) in zip(lead_ids, world.leads, strict=True)
                if sees_lead(
                    actor,
                    owner,
                    None if index is None else world.conversations[index],
                    member_queues,
                )
            }
            assert selected == accepted, actor


@given(
    actor=actors,
    member_queues=st.frozensets(st.sampled_from(QUEUES)),
    before=st.lists(placements, min_size=1, max_size=3),
    owners=st.lists(operator_ids, max_size=2),
    kind=st.sampled_from(
        [kind for kind, audience in EVENT_AUDIENCE.items() if audience is Audience.PLACED]
    ),
)
def test_the_socket_filter_agrees_with_the_rule(
    actor: Actor,
    member_queues: frozenset[int],
    before: list[Placement],
    owners: list[int | None],
    kind: str,
) -> None:
    """An event about what sat at several placements (before and after a change) and about
    some owners reaches exactly those who may see any of them."""
    event = Event(
        kind, {"conversation": 1}, {"channel": "email", **audience_labels(before, owners)}
    )
    expected = any(
        sees_conversation(actor, *placement, member_queues) for placement in before
    ) or any(sees_lead(actor, owner, None, member_queues) for owner in owners)
    assert sees_event(actor, member_queues, event) == expected


@given(
    actor=actors, member_queues=st.frozensets(st.sampled_from(QUEUES)), kind=st.text(max_size=30)
)
def test_events_without_a_decision_or_audience_reach_supervisors_only(
    actor: Actor, member_queues: frozenset[int], kind: str
) -> None:
    unlabelled_kinds = [kind for kind in EVENT_AUDIENCE if EVENT_AUDIENCE[kind] is Audience.PLACED]
    for event in (
        Event(kind if kind not in EVENT_AUDIENCE else "unknown.event", {"conversation": 1}),
        Event(unlabelled_kinds[0], {"conversation": 1}, {"channel": "email"}),
    ):
        assert sees_event(actor, member_queues, event) == actor.is_supervisor


def test_operator_events_reach_that_operator_and_supervisors() -> None:
    event = Event("operator.mentioned", {"operator": 7, "conversation": 1, "interaction": 2})
    assert sees_event(Actor("a", Role.OPERATOR, 7), frozenset(), event)
    assert not sees_event(Actor("b", Role.OPERATOR, 8), frozenset({1, 2, 3}), event)
    assert sees_event(Actor("s", Role.SUPERVISOR, 9), frozenset(), event)
    assert not sees_event(Actor("t", Role.OPERATOR), frozenset(), event)
    admin_only = Event("quarantine.created", {"quarantine": 1, "mailbox": 1})
    assert sees_event(Actor("d", Role.ADMIN, 1), frozenset(), admin_only)
    assert not sees_event(Actor("s", Role.SUPERVISOR, 9), frozenset(), admin_only)


# Every emitted type is declared with its audience: tests/test_event_types.py.

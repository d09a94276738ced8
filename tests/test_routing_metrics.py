"""Business-time durations routing measures for reports (routing/metrics.py, run by each pass):
the time to the first response and to resolution count the queue's business hours only, and a
reopened conversation is counted as such and measured again when it is resolved again."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.clock import ManualClock, using
from core.conversations import reply, set_status
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import Conversation, IdentityKind, Role
from tests.conftest import UserFactory
from tests.routing_world import World, operator_actor

# Friday 27 November 2026, 17:00 in Berlin (16:00 UTC): the office has just closed.
FRIDAY_CLOSING = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
# The Monday after, 09:00 in Berlin: it opens again.
MONDAY_OPENING = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
OFFICE_HOURS = {
    "timezone": "Europe/Berlin",
    "weekly": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}
_serial = itertools.count(1)


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions, ManualClock(FRIDAY_CLOSING))
    with using(world.clock):
        yield world


async def answer(world: World, operator_id: int, conversation_id: int) -> None:
    async with world.sessions() as session, session.begin():
        await reply(session, operator_actor(operator_id), conversation_id, text="Hello!")


async def set_to(world: World, operator_id: int, conversation_id: int, status: str) -> None:
    async with world.sessions() as session, session.begin():
        await set_status(session, operator_actor(operator_id), conversation_id, status)


async def customer_writes(world: World, address: str, queue_id: int) -> int:
    """A message from `address` now (its conversation keeps the time it was created at)."""
    async with world.sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=f"<metrics-{next(_serial)}@example.com>",
                addresses=[Address(IdentityKind.EMAIL, address)],
                text="About my order",
                queue_id=queue_id,
                occurred_at=world.now,
            ),
        )
    return result.conversation_id


async def figures(world: World, conversation_id: int) -> tuple[int | None, int | None, int]:
    """First response and resolution seconds, and how often it was reopened."""
    conversation: Conversation = await world.conversation(conversation_id)
    return (
        conversation.first_response_seconds,
        conversation.resolution_seconds,
        conversation.reopened_count,
    )


async def test_an_answer_on_monday_morning_took_the_minutes_the_office_was_open(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann], business_hours=OFFICE_HOURS)
    conversation = await customer_writes(world, "weekend@example.com", support)
    await world.route()
    assert await figures(world, conversation) == (None, None, 0)

    world.now = MONDAY_OPENING + timedelta(minutes=30)
    await answer(world, ann, conversation)
    # Measured by the next pass, not by the reply.
    assert await figures(world, conversation) == (None, None, 0)
    await world.route()
    assert await figures(world, conversation) == (30 * 60, None, 0)

    world.now = MONDAY_OPENING + timedelta(hours=2)
    await set_to(world, ann, conversation, "resolved")
    await world.route()
    assert await figures(world, conversation) == (30 * 60, 2 * 3600, 0)


@pytest.mark.sqlite_only
async def test_without_business_hours_it_is_the_time_that_passed(world: World) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann])
    conversation = await customer_writes(world, "weekend@example.com", support)
    world.now = MONDAY_OPENING + timedelta(minutes=30)
    await answer(world, ann, conversation)
    world.now = MONDAY_OPENING + timedelta(hours=2)
    await set_to(world, ann, conversation, "resolved")
    await world.route()
    # Friday 17:00 to Monday 09:30 and to 11:00, Berlin time.
    friday_to_monday = timedelta(days=2, hours=16, minutes=30)
    assert await figures(world, conversation) == (
        int(friday_to_monday.total_seconds()),
        int((friday_to_monday + timedelta(minutes=90)).total_seconds()),
        0,
    )


@pytest.mark.sqlite_only
async def test_a_reopened_conversation_is_counted_and_measured_again(
    world: World, make_user: UserFactory
) -> None:
    ann = await world.operator("Ann")
    support = await world.queue("Support", [ann], business_hours=OFFICE_HOURS)
    conversation = await customer_writes(world, "again@example.com", support)
    world.now = MONDAY_OPENING + timedelta(minutes=30)
    await answer(world, ann, conversation)
    world.now = MONDAY_OPENING + timedelta(hours=1)
    await set_to(world, ann, conversation, "resolved")
    await world.route()
    assert await figures(world, conversation) == (30 * 60, 3600, 0)

    # The customer writes again: the same conversation, open, its resolution no longer known.
    world.now = MONDAY_OPENING + timedelta(hours=1, minutes=30)
    assert await customer_writes(world, "again@example.com", support) == conversation
    assert (await world.conversation(conversation)).status == "open"
    assert await figures(world, conversation) == (30 * 60, None, 1)
    await world.route()
    assert await figures(world, conversation) == (30 * 60, None, 1)

    world.now = MONDAY_OPENING + timedelta(hours=3)
    await set_to(world, ann, conversation, "resolved")
    await world.route()
    # From its creation (Friday's closing) to the second resolution: Monday 09:00 to 12:00.
    assert await figures(world, conversation) == (30 * 60, 3 * 3600, 1)

    # A supervisor opens it again in the console.
    sue = await make_user(Role.SUPERVISOR)
    world.now = MONDAY_OPENING + timedelta(hours=4)
    response = await sue.post(
        f"/api/v1/conversations/{conversation}/status", json={"status": "open"}
    )
    assert response.status == 200, await response.text()
    assert await figures(world, conversation) == (30 * 60, None, 2)
    # Moving between unresolved states is no reopening.
    await set_to(world, ann, conversation, "pending")
    await set_to(world, ann, conversation, "open")
    world.now = MONDAY_OPENING + timedelta(hours=5)
    await set_to(world, ann, conversation, "resolved")
    await world.route()
    assert await figures(world, conversation) == (30 * 60, 5 * 3600, 2)

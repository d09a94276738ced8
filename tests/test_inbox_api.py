"""The console's inbox: sections, previews, unread counts and read markers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.events import Event
from core.identity import Address
from core.models import Conversation, ConversationStatus, IdentityKind, Role, utcnow
from tests.conftest import User, UserFactory
from tests.test_conversations_api import inbound, json_of, queue_with
from web.keys import BUS

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL


def ids(section: dict[str, Any]) -> list[int]:
    return [item["id"] for item in section["items"]]


async def set_fields(sessions: SessionFactory, conversation_id: int, **values: Any) -> None:
    async with sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        for name, value in values.items():
            setattr(conversation, name, value)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/inbox"), ("POST", "/api/v1/conversations/1/read")]
)
async def test_routes_need_sign_in(client: TestClient[Any, Any], method: str, path: str) -> None:
    await json_of(await client.request(method, path), 401)


async def test_sections_hold_what_the_operator_works_on(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    mine_queue = await queue_with(sessions, "Support", me, colleague)
    other_queue = await queue_with(sessions, "Sales", colleague)

    async def conversation(name: str, queue: int | None, **values: Any) -> int:
        conversation_id = await inbound(
            sessions, name, Address(EMAIL, f"{name}@example.com"), queue_id=queue, subject=name
        )
        await set_fields(sessions, conversation_id, **values)
        return conversation_id

    now = utcnow()
    assigned = await conversation("assigned", mine_queue, assignee_id=me.operator.id)
    pending = await conversation(
        "pending", None, assignee_id=me.operator.id, status=ConversationStatus.PENDING
    )
    await conversation(
        "resolved", mine_queue, assignee_id=me.operator.id, status=ConversationStatus.RESOLVED
    )
    theirs = await conversation("theirs", mine_queue, assignee_id=colleague.operator.id)
    waiting_long = await conversation(
        "waiting-long", mine_queue, queue_entered_at=now - timedelta(minutes=30)
    )
    waiting_short = await conversation(
        "waiting-short", mine_queue, queue_entered_at=now - timedelta(minutes=5)
    )
    urgent = await conversation(
        "urgent", mine_queue, priority=5, queue_entered_at=now - timedelta(minutes=1)
    )
    await conversation(
        "snoozed",
        mine_queue,
        status=ConversationStatus.SNOOZED,
        snoozed_until=now + timedelta(hours=1),
    )
    await conversation("elsewhere", other_queue)

    body = await json_of(await me.get("/api/v1/inbox"), 200)
    assert sorted(ids(body["mine"])) == sorted([assigned, pending])
    # A colleague's in my queues: neither mine nor the waiting ones (no section repeats one).
    assert ids(body["queues"]) == [theirs]
    # Highest priority first, then the longest waiting.
    assert ids(body["unassigned"]) == [urgent, waiting_long, waiting_short]
    assert body["unassigned"]["total"] == 3

    item = body["unassigned"]["items"][1]
    assert item["contact_display_name"] == ""
    assert item["subject"] == "waiting-long"
    assert item["preview"] == "Hello, where is my order?"
    assert item["preview_direction"] == "in"
    assert item["unread"] == 1
    assert item["queue_entered_at"] is not None

    limited = await json_of(await me.get("/api/v1/inbox?limit=1"), 200)
    assert ids(limited["unassigned"]) == [urgent]
    assert (limited["unassigned"]["total"], limited["queues"]["total"]) == (3, 1)
    assert limited["unassigned"]["next_cursor"] is not None
    assert limited["queues"]["next_cursor"] is None
    assert limited["unassigned"]["unread_conversations"] == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "other=1"])
async def test_bad_query_is_400(make_user: UserFactory, query: str) -> None:
    me = await make_user(Role.OPERATOR)
    await json_of(await me.get(f"/api/v1/inbox?{query}"), 400)


async def test_integration_tokens_have_no_inbox(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "erp")
    response = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {plain}"})
    await json_of(response, 403)


async def test_unread_counts_follow_each_operators_read_marker(
    make_user: UserFactory, sessions: SessionFactory, app: web.Application
) -> None:
    me = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", me, colleague)
    customer = Address(EMAIL, "kim@example.com")
    conversation_id = await inbound(sessions, "m1", customer, queue_id=queue)
    await inbound(sessions, "m2", customer, queue_id=queue, text="Anyone there?")

    async def unread(user: User) -> int:
        body = await json_of(await user.get("/api/v1/inbox"), 200)
        (item,) = body["unassigned"]["items"]
        assert item["id"] == conversation_id
        return int(item["unread"])

    assert await unread(me) == 2
    events: list[Event] = []
    app[BUS].add_listener(events.append)
    marker = await json_of(await me.post(f"/api/v1/conversations/{conversation_id}/read"), 200)
    assert marker["conversation_id"] == conversation_id
    assert [event.type for event in events] == ["conversation.read"]
    assert events[0].ids == {"conversation": conversation_id, "operator": me.operator.id}
    assert await unread(me) == 0
    assert await unread(colleague) == 2

    # Your own replies and notes are nothing to read; the customer's next message is.
    reply = await me.post(f"/api/v1/conversations/{conversation_id}/reply", json={"text": "Yes"})
    await json_of(reply, 201)
    note = await me.post(f"/api/v1/conversations/{conversation_id}/notes", json={"text": "hm"})
    await json_of(note, 201)
    assert await unread(me) == 0
    body = await json_of(await me.get("/api/v1/inbox"), 200)
    # The preview is what the customer sees, not the note.
    assert body["unassigned"]["items"][0]["preview"] == "Yes"
    assert body["unassigned"]["items"][0]["preview_direction"] == "out"
    await inbound(sessions, "m3", customer, queue_id=queue, text="Thanks")
    assert await unread(me) == 1
    assert await unread(colleague) == 3

    again = await json_of(await me.post(f"/api/v1/conversations/{conversation_id}/read"), 200)
    assert again["last_read_interaction_id"] > marker["last_read_interaction_id"]
    assert await unread(me) == 0


async def test_each_conversation_has_its_own_marker(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", me)
    first = Address(EMAIL, "first@example.com")
    second = Address(EMAIL, "second@example.com")
    one = await inbound(sessions, "a1", first, queue_id=queue)
    two = await inbound(sessions, "b1", second, queue_id=queue)
    for conversation_id in (one, two):
        await json_of(await me.post(f"/api/v1/conversations/{conversation_id}/read"), 200)
    await inbound(sessions, "a2", first, queue_id=queue)
    await inbound(sessions, "a3", first, queue_id=queue)
    body = await json_of(await me.get("/api/v1/inbox"), 200)
    section = body["unassigned"]
    assert {item["id"]: item["unread"] for item in section["items"]} == {one: 2, two: 0}
    assert section["unread_conversations"] == 1


async def test_read_needs_a_visible_conversation(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    other_queue = await queue_with(sessions, "Sales")
    conversation_id = await inbound(
        sessions, "m1", Address(EMAIL, "kim@example.com"), queue_id=other_queue
    )
    await json_of(await me.post(f"/api/v1/conversations/{conversation_id}/read"), 403)
    await json_of(await me.post("/api/v1/conversations/999999/read"), 404)
    body = await json_of(await me.get("/api/v1/inbox"), 200)
    assert [body[name]["total"] for name in ("mine", "queues", "unassigned")] == [0, 0, 0]


async def test_supervisors_inbox_is_their_queues_too(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    queue = await queue_with(sessions, "Support", boss)
    await queue_with(sessions, "Sales")
    in_queue = await inbound(sessions, "m1", Address(EMAIL, "a@example.com"), queue_id=queue)
    await inbound(sessions, "m2", Address(EMAIL, "b@example.com"))
    body = await json_of(await boss.get("/api/v1/inbox"), 200)
    assert ids(body["unassigned"]) == [in_queue]

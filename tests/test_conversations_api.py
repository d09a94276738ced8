"""Conversations API: who sees what, filters and pages, status, notes, assignment, replies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.registry import default_channels
from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.events import Event
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import (
    AuditEntry,
    Conversation,
    IdentityKind,
    Interaction,
    Operator,
    OutboxItem,
    Role,
    utcnow,
)
from core.pagination import encode_cursor
from core.queues import set_members
from core.settings import Settings
from routing.setup import create_queue
from tests.conftest import User, UserFactory, new_user
from tests.fake_channel import FakeSms
from web.app import create_app
from web.keys import BUS

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE


async def inbound(
    sessions: SessionFactory,
    external_id: str,
    *addresses: Address,
    channel: str = "email",
    queue_id: int | None = None,
    subject: str = "",
    text: str = "Hello, where is my order?",
) -> int:
    """Ingest one customer message; return its conversation id."""
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=external_id,
                addresses=addresses,
                queue_id=queue_id,
                subject=subject,
                text=text,
            ),
        )
    return result.conversation_id


async def queue_with(sessions: SessionFactory, name: str, *members: User) -> int:
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name=name)
        await set_members(session, CLI, queue.id, [member.operator.id for member in members])
    return queue.id


async def audit_rows(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def two_queues(
    sessions: SessionFactory, make_user: UserFactory
) -> tuple[User, int, int, int, int]:
    """An operator of queue A, and one conversation in A and one in B."""
    operator = await make_user(Role.OPERATOR)
    queue_a = await queue_with(sessions, "A", operator)
    queue_b = await queue_with(sessions, "B")
    in_a = await inbound(sessions, "a1", Address(EMAIL, "ann@example.com"), queue_id=queue_a)
    in_b = await inbound(sessions, "b1", Address(EMAIL, "bob@example.com"), queue_id=queue_b)
    return operator, queue_a, queue_b, in_a, in_b


ROUTES = [
    ("GET", "/api/v1/conversations"),
    ("GET", "/api/v1/conversations/1"),
    ("GET", "/api/v1/conversations/1/interactions"),
    ("GET", "/api/v1/conversations/1/outbox"),
    ("POST", "/api/v1/conversations/1/status"),
    ("POST", "/api/v1/conversations/1/notes"),
    ("POST", "/api/v1/conversations/1/assign"),
    ("POST", "/api/v1/conversations/1/reply"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    body = await json_of(response, 401)
    assert body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_integration_tokens_may_not_use_conversations(
    client: TestClient[Any, Any], sessions: SessionFactory, method: str, path: str
) -> None:
    await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"))
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "erp")
    response = await client.request(
        method, path, json={}, headers={"Authorization": f"Bearer {plain}"}
    )
    await json_of(response, 403)


async def test_operator_sees_only_their_queues(
    two_queues: tuple[User, int, int, int, int],
) -> None:
    operator, _, _, in_a, in_b = two_queues
    assert (await json_of(await operator.get(f"/api/v1/conversations/{in_a}"), 200))["id"] == in_a
    denied = await json_of(await operator.get(f"/api/v1/conversations/{in_b}"), 403)
    assert denied["error"]["code"] == "forbidden"
    listed = await json_of(await operator.get("/api/v1/conversations"), 200)
    assert [item["id"] for item in listed["items"]] == [in_a]
    for path in ("interactions", "outbox"):
        await json_of(await operator.get(f"/api/v1/conversations/{in_b}/{path}"), 403)
    for path, body in (
        ("status", {"status": "resolved"}),
        ("notes", {"text": "peek"}),
        ("assign", {"assignee_id": operator.operator.id}),
        ("reply", {"text": "hi"}),
    ):
        await json_of(await operator.post(f"/api/v1/conversations/{in_b}/{path}", json=body), 403)


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
async def test_supervisors_and_admins_see_every_conversation(
    two_queues: tuple[User, int, int, int, int], make_user: UserFactory, role: Role
) -> None:
    _, _, _, in_a, in_b = two_queues
    boss = await make_user(role)
    assert (await json_of(await boss.get(f"/api/v1/conversations/{in_b}"), 200))["id"] == in_b
    listed = await json_of(await boss.get("/api/v1/conversations"), 200)
    assert {item["id"] for item in listed["items"]} == {in_a, in_b}


async def test_operator_sees_a_conversation_assigned_to_them_outside_their_queues(
    two_queues: tuple[User, int, int, int, int], make_user: UserFactory
) -> None:
    operator, _, _, in_a, in_b = two_queues
    supervisor = await make_user(Role.SUPERVISOR)
    await json_of(
        await supervisor.post(
            f"/api/v1/conversations/{in_b}/assign", json={"assignee_id": operator.operator.id}
        ),
        200,
    )
    assert (await json_of(await operator.get(f"/api/v1/conversations/{in_b}"), 200))["id"] == in_b
    listed = await json_of(await operator.get("/api/v1/conversations"), 200)
    assert {item["id"] for item in listed["items"]} == {in_a, in_b}


async def test_unknown_conversation_is_404(make_user: UserFactory) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    for path in ("/api/v1/conversations/999", "/api/v1/conversations/abc"):
        body = await json_of(await supervisor.get(path), 404)
        assert body["error"]["code"] == "not_found"


async def test_list_filters(sessions: SessionFactory, make_user: UserFactory) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Sales", operator)
    in_queue = await inbound(sessions, "q1", Address(EMAIL, "q@example.com"), queue_id=queue)
    mine = await inbound(sessions, "m1", Address(EMAIL, "m@example.com"))
    resolved = await inbound(sessions, "r1", Address(EMAIL, "r@example.com"))
    await json_of(
        await supervisor.post(
            f"/api/v1/conversations/{resolved}/status", json={"status": "resolved"}
        ),
        200,
    )
    await json_of(
        await supervisor.post(
            f"/api/v1/conversations/{mine}/assign", json={"assignee_id": supervisor.operator.id}
        ),
        200,
    )

    async def ids(query: str) -> set[int]:
        page = await json_of(await supervisor.get(f"/api/v1/conversations?{query}"), 200)
        return {item["id"] for item in page["items"]}

    assert await ids("status=resolved") == {resolved}
    assert await ids("status=open") == {in_queue, mine}
    assert await ids(f"queue_id={queue}") == {in_queue}
    assert await ids("assignee_id=me") == {mine}
    assert await ids(f"assignee_id={supervisor.operator.id}") == {mine}
    assert await ids(f"assignee_id={operator.operator.id}") == set()
    assert await ids("unassigned=true") == {in_queue, resolved}
    assert await ids("unassigned=true&status=open") == {in_queue}
    async with sessions() as session:
        contact_of_mine = (await session.get(Conversation, mine)).contact_id  # type: ignore[union-attr]
    assert await ids(f"contact_id={contact_of_mine}") == {mine}

    huge = 10**30
    for bad in (
        "status=closed",
        "assignee_id=you",
        f"assignee_id={huge}",
        f"queue_id={huge}",
        "limit=0",
        "limit=201",
        "colour=red",
    ):
        response = await supervisor.get(f"/api/v1/conversations?{bad}")
        body = await json_of(response, 400)
        assert body["error"]["fields"], bad
    both = await json_of(
        await supervisor.get("/api/v1/conversations?unassigned=true&assignee_id=me"), 400
    )
    assert "unassigned" in both["error"]["fields"]


@pytest.mark.both_databases
async def test_list_is_newest_activity_first_and_paginates(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    created = [
        await inbound(sessions, f"m{n}", Address(EMAIL, f"c{n}@example.com")) for n in range(5)
    ]
    # A new message in the oldest conversation makes it the most recently active.
    await inbound(sessions, "m0-again", Address(EMAIL, "c0@example.com"))
    expected = [created[0], *reversed(created[1:])]

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await json_of(await supervisor.get(f"/api/v1/conversations?{query}"), 200)
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3

    for forged in (
        "not-a-cursor",
        encode_cursor(utcnow(), 10**30),
        encode_cursor("0001-01-01T00:00:00+05:00", 1),
    ):
        bad = await json_of(await supervisor.get(f"/api/v1/conversations?cursor={forged}"), 400)
        assert "cursor" in bad["error"]["fields"]


@pytest.mark.both_databases
async def test_interactions_oldest_first_and_paginated(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    address = Address(EMAIL, "ann@example.com")
    conversation = await inbound(sessions, "m1", address, text="first")
    await inbound(sessions, "m2", address, text="second")
    await json_of(
        await supervisor.post(
            f"/api/v1/conversations/{conversation}/notes", json={"text": "third"}
        ),
        201,
    )
    path = f"/api/v1/conversations/{conversation}/interactions"
    first = await json_of(await supervisor.get(f"{path}?limit=2"), 200)
    assert [item["text"] for item in first["items"]] == ["first", "second"]
    rest = await json_of(await supervisor.get(f"{path}?limit=2&cursor={first['next_cursor']}"), 200)
    assert [item["text"] for item in rest["items"]] == ["third"]
    assert rest["next_cursor"] is None


async def test_status_changes_are_stored_audited_and_announced(
    sessions: SessionFactory, make_user: UserFactory, app: web.Application
) -> None:
    events: list[Event] = []
    app[BUS].add_listener(events.append)
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", operator)
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"), queue_id=queue)
    path = f"/api/v1/conversations/{conversation}/status"

    resolved = await json_of(await operator.post(path, json={"status": "resolved"}), 200)
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    until = (utcnow() + timedelta(hours=2)).isoformat()
    snoozed = await json_of(
        await operator.post(path, json={"status": "snoozed", "snoozed_until": until}), 200
    )
    assert snoozed["status"] == "snoozed"
    assert snoozed["snoozed_until"] is not None
    assert snoozed["resolved_at"] is None
    reopened = await json_of(await operator.post(path, json={"status": "open"}), 200)
    assert reopened["snoozed_until"] is None
    assert reopened["resolved_at"] is None

    rows = await audit_rows(sessions, "conversation.status")
    assert [(row.details["from"], row.details["to"]) for row in rows] == [
        ("open", "resolved"),
        ("resolved", "snoozed"),
        ("snoozed", "open"),
    ]
    assert {row.actor_id for row in rows} == {operator.operator.id}
    assert [e.ids["conversation"] for e in events if e.type == "conversation.updated"] == [
        conversation
    ] * 3


async def test_bad_status_changes_are_400_and_change_nothing(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"))
    path = f"/api/v1/conversations/{conversation}/status"
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    future = (utcnow() + timedelta(hours=1)).isoformat()
    for body, field in (
        ({"status": "closed"}, "status"),
        ({"status": "snoozed"}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": past}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2030-01-01T10:00:00"}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "9999-12-31T23:00:00-12:00"}, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2500-01-01T00:00:00Z"}, "snoozed_until"),
        ({"status": "pending", "snoozed_until": future}, "snoozed_until"),
        ({"status": "open", "extra": 1}, "extra"),
    ):
        error = await json_of(await supervisor.post(path, json=body), 400)
        assert field in error["error"]["fields"], body
    unchanged = await json_of(await supervisor.get(f"/api/v1/conversations/{conversation}"), 200)
    assert unchanged["status"] == "open"
    assert await audit_rows(sessions, "conversation.status") == []


async def test_internal_note(sessions: SessionFactory, make_user: UserFactory) -> None:
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", operator)
    conversation = await inbound(
        sessions, "m1", Address(EMAIL, "ann@example.com"), queue_id=queue, channel="telegram"
    )
    path = f"/api/v1/conversations/{conversation}/notes"
    note = await json_of(await operator.post(path, json={"text": "VIP, be nice"}), 201)
    assert note["kind"] == "note"
    assert note["direction"] == "internal"
    assert note["channel"] == "telegram"
    assert note["operator_id"] == operator.operator.id
    stream = await json_of(
        await operator.get(f"/api/v1/conversations/{conversation}/interactions"), 200
    )
    assert [item["kind"] for item in stream["items"]] == ["message", "note"]
    outbox = await json_of(await operator.get(f"/api/v1/conversations/{conversation}/outbox"), 200)
    assert outbox["items"] == []
    for bad in ({"text": ""}, {}, {"text": "x" * 100_001}):
        await json_of(await operator.post(path, json=bad), 400)
    assert len(await audit_rows(sessions, "conversation.note")) == 1


async def test_supervisor_assigns_and_unassigns(
    sessions: SessionFactory, make_user: UserFactory, app: web.Application
) -> None:
    events: list[Event] = []
    app[BUS].add_listener(events.append)
    supervisor = await make_user(Role.SUPERVISOR)
    operator = await make_user(Role.OPERATOR)
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"))
    path = f"/api/v1/conversations/{conversation}/assign"

    assigned = await json_of(
        await supervisor.post(path, json={"assignee_id": operator.operator.id}), 200
    )
    assert assigned["assignee_id"] == operator.operator.id
    unassigned = await json_of(await supervisor.post(path, json={"assignee_id": None}), 200)
    assert unassigned["assignee_id"] is None

    rows = await audit_rows(sessions, "conversation.assign")
    assert [(row.details["from"], row.details["to"]) for row in rows] == [
        (None, operator.operator.id),
        (operator.operator.id, None),
    ]
    assert {row.actor_id for row in rows} == {supervisor.operator.id}
    assigned_events = [e for e in events if e.type == "conversation.assigned"]
    assert [e.ids.get("operator") for e in assigned_events] == [operator.operator.id, None]


async def test_assigning_an_unknown_or_inactive_operator_is_400(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    leaver = await make_user(Role.OPERATOR)
    async with sessions() as session, session.begin():
        operator = await session.get(Operator, leaver.operator.id)
        assert operator is not None
        operator.active = False
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"))
    path = f"/api/v1/conversations/{conversation}/assign"
    for body in (
        {"assignee_id": leaver.operator.id},
        {"assignee_id": 99999},
        {"assignee_id": 10**30},
        {"assignee_id": "me"},
        {},
    ):
        error = await json_of(await supervisor.post(path, json=body), 400)
        assert "assignee_id" in error["error"]["fields"]
    assert await audit_rows(sessions, "conversation.assign") == []


async def test_operator_takes_an_unassigned_conversation_of_their_queue(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", operator, colleague)
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"), queue_id=queue)
    path = f"/api/v1/conversations/{conversation}/assign"

    # An operator may not hand work to someone else, nor take it for nobody.
    for body in ({"assignee_id": colleague.operator.id}, {"assignee_id": None}):
        await json_of(await operator.post(path, json=body), 403)
    taken = await json_of(
        await operator.post(path, json={"assignee_id": operator.operator.id}), 200
    )
    assert taken["assignee_id"] == operator.operator.id
    # Taken already: the colleague cannot take it over, nor the taker give it away.
    await json_of(await colleague.post(path, json={"assignee_id": colleague.operator.id}), 409)
    await json_of(await operator.post(path, json={"assignee_id": None}), 403)
    rows = await audit_rows(sessions, "conversation.assign")
    assert [(row.actor_id, row.details["to"]) for row in rows] == [
        (operator.operator.id, operator.operator.id)
    ]


async def test_operator_may_not_take_a_conversation_outside_their_queues(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    supervisor = await make_user(Role.SUPERVISOR)
    await queue_with(sessions, "Support", operator)
    # Unqueued, assigned to the operator by a supervisor, then unassigned again.
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"))
    path = f"/api/v1/conversations/{conversation}/assign"
    await json_of(await operator.post(path, json={"assignee_id": operator.operator.id}), 403)
    await json_of(await supervisor.post(path, json={"assignee_id": operator.operator.id}), 200)
    # Being assigned it does not make it theirs to give back.
    await json_of(await operator.post(path, json={"assignee_id": None}), 403)


@pytest.mark.both_databases
async def test_two_operators_taking_at_once_only_one_gets_it(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    operators = [await make_user(Role.OPERATOR) for _ in range(4)]
    queue = await queue_with(sessions, "Support", *operators)
    conversation = await inbound(sessions, "m1", Address(EMAIL, "ann@example.com"), queue_id=queue)
    path = f"/api/v1/conversations/{conversation}/assign"
    responses = await asyncio.gather(
        *(user.post(path, json={"assignee_id": user.operator.id}) for user in operators)
    )
    statuses = sorted(response.status for response in responses)
    assert statuses == [200, 409, 409, 409]
    winner = next(
        user for user, response in zip(operators, responses, strict=True) if response.status == 200
    )
    async with sessions() as session:
        stored = await session.get(Conversation, conversation)
    assert stored is not None
    assert stored.assignee_id == winner.operator.id
    assert len(await audit_rows(sessions, "conversation.assign")) == 1


async def test_a_chat_reply_has_no_email_style_subject(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Web", operator)
    conversation = await inbound(
        sessions,
        "form-2",
        Address(PHONE, "+4930123456"),
        channel="webform",
        queue_id=queue,
        subject="Quote request",
    )
    response = await operator.post(
        f"/api/v1/conversations/{conversation}/reply",
        json={"text": "A quote follows by text.", "channel": "sms"},
    )
    interaction = (await json_of(response, 201))["interaction"]
    assert (interaction["channel"], interaction["subject"]) == ("sms", "")


async def test_reply_to_a_webform_conversation_goes_by_email(
    sessions: SessionFactory, make_user: UserFactory, app: web.Application
) -> None:
    events: list[Event] = []
    app[BUS].add_listener(events.append)
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Web", operator)
    conversation = await inbound(
        sessions,
        "form-1",
        Address(EMAIL, "Ann@Example.com"),
        Address(PHONE, "+4930123456"),
        channel="webform",
        queue_id=queue,
        subject="Quote request",
    )
    response = await operator.post(
        f"/api/v1/conversations/{conversation}/reply",
        json={"text": "Thanks, a quote follows.", "html": "<p onclick='x()'>Thanks</p>"},
    )
    body = await json_of(response, 201)
    interaction, item = body["interaction"], body["outbox"]
    assert interaction["channel"] == "email"
    assert interaction["direction"] == "out"
    assert interaction["kind"] == "message"
    assert interaction["operator_id"] == operator.operator.id
    assert interaction["external_id"] is None
    assert interaction["subject"] == "Re: Quote request"
    assert "onclick" not in interaction["html"]
    assert item["channel"] == "email"
    assert item["recipient"] == "ann@example.com"
    assert item["status"] == "queued"
    assert item["interaction_id"] == interaction["id"]

    async with sessions() as session:
        stored = await session.get(OutboxItem, item["id"])
        conv = await session.get(Conversation, conversation)
    assert stored is not None
    assert stored.payload["text"] == "Thanks, a quote follows."
    assert stored.payload["subject"] == "Re: Quote request"
    assert stored.payload["conversation_id"] == conversation
    assert conv is not None
    assert conv.first_response_at is not None

    outbox = await json_of(await operator.get(f"/api/v1/conversations/{conversation}/outbox"), 200)
    assert [(row["id"], row["status"]) for row in outbox["items"]] == [(item["id"], "queued")]
    created = [e for e in events if e.type == "interaction.created"]
    assert created[-1].ids["interaction"] == interaction["id"]
    assert created[-1].labels["channel"] == "email"
    rows = await audit_rows(sessions, "conversation.reply")
    assert rows[0].details["outbox"] == item["id"]


async def test_reply_on_another_channel_of_the_contact(
    settings: Settings,
    engine: AsyncEngine,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    # A channel that answers on phone numbers, added to the app with one line.
    app = create_app(settings, background_workers=False, channels=[*default_channels(), FakeSms()])
    server = await aiohttp_server(app)
    supervisor = await new_user(server, sessions, aiohttp_client, Role.SUPERVISOR)
    conversation = await inbound(
        sessions,
        "form-1",
        Address(EMAIL, "ann@example.com"),
        Address(PHONE, "+4930123456"),
        channel="webform",
    )
    body = await json_of(
        await supervisor.post(
            f"/api/v1/conversations/{conversation}/reply", json={"text": "Hi", "channel": "fakesms"}
        ),
        201,
    )
    assert body["outbox"]["channel"] == "fakesms"
    assert body["outbox"]["recipient"] == "+4930123456"


async def test_reply_on_a_channel_that_cannot_send_is_400_naming_those_that_can(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await inbound(
        sessions, "api-1", Address(EMAIL, "ann@example.com"), Address(PHONE, "+4930123456")
    )
    path = f"/api/v1/conversations/{conversation}/reply"
    for channel in ("api", "webform", "pigeon"):
        body = await json_of(
            await supervisor.post(path, json={"text": "Hi", "channel": channel}), 400
        )
        assert (
            "channels that can send: email, sms, telegram, webchat, whatsapp"
            in body["error"]["fields"]["channel"]
        )
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxItem)) == 0


async def test_reply_when_the_contact_has_no_address_for_the_channel_is_400(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    phone_only = await inbound(sessions, "form-1", Address(PHONE, "+4930123456"), channel="webform")
    path = f"/api/v1/conversations/{phone_only}/reply"
    for body in (
        {"text": "Hi"},
        {"text": "Hi", "channel": "telegram"},
        {"text": "Hi", "channel": "fax"},
    ):
        error = await json_of(await supervisor.post(path, json=body), 400)
        assert "channel" in error["error"]["fields"], body
    for body in ({"text": ""}, {"text": "   "}, {}, {"text": "Hi", "to": "x"}):
        await json_of(await supervisor.post(path, json=body), 400)
    async with sessions() as session:
        assert list(await session.scalars(select(OutboxItem))) == []
        kinds = list(await session.scalars(select(Interaction.direction)))
    assert kinds == ["in"]

"""@mentions in notes notify the operators mentioned who may see the conversation."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.db import SessionFactory
from core.events import Event
from core.identity import Address
from core.mentions import handles_in
from core.models import IdentityKind, Interaction, Notification, Role
from core.queues import queue_by_name, set_members
from tests.conftest import User, UserFactory
from tests.test_conversations_api import inbound, json_of, queue_with
from web.keys import BUS

EMAIL = IdentityKind.EMAIL


@pytest.mark.parametrize(
    ("text", "handles"),
    [
        ("@anna please look", ["anna"]),
        ("Thanks @Anna.", ["anna"]),
        ("@anna, @luis.garcia and @anna again", ["anna", "luis.garcia"]),
        ("cc @anna@example.org: done", ["anna@example.org"]),
        ("customer wrote from jane@anna.example", []),
        ("email@ nobody, @ nobody", []),
        ("(@tom)", ["tom"]),
    ],
)
def test_handles_in_text(text: str, handles: list[str]) -> None:
    assert handles_in(text) == handles


async def note(user: User, conversation_id: int, text: str) -> Any:
    response = await user.post(
        f"/api/v1/conversations/{conversation_id}/notes", json={"text": text}
    )
    return await json_of(response, 201)


async def notifications(user: User, query: str = "") -> Any:
    return await json_of(await user.get(f"/api/v1/notifications{query}"), 200)


async def notification_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


@pytest.fixture
async def team(
    make_user: UserFactory, sessions: SessionFactory
) -> tuple[User, User, User, User, int]:
    """Tom and Anna work Support (with a conversation); Luis works elsewhere; a supervisor."""
    tom = await make_user(Role.OPERATOR, email="tom@example.com", name="Tom Becker")
    anna = await make_user(Role.OPERATOR, email="anna@example.com", name="Anna Novak")
    luis = await make_user(Role.OPERATOR, email="luis@example.com", name="Luis García")
    boss = await make_user(Role.SUPERVISOR, email="maria@example.com", name="Maria Keller")
    support = await queue_with(sessions, "Support", tom, anna)
    await queue_with(sessions, "Sales", luis)
    conversation_id = await inbound(
        sessions, "m1", Address(EMAIL, "kim@example.com"), queue_id=support, subject="Order"
    )
    return tom, anna, luis, boss, conversation_id


async def test_a_mention_notifies_the_operator(
    team: tuple[User, User, User, User, int], app: web.Application
) -> None:
    tom, anna, _, _, conversation_id = team
    events: list[Event] = []
    app[BUS].add_listener(events.append)
    created = await note(tom, conversation_id, "@anna can you check the order? Thanks @Anna.")
    assert created["meta"]["mentions"] == [
        {"operator_id": anna.operator.id, "handle": "anna", "notified": True}
    ]
    mentioned = [event for event in events if event.type == "operator.mentioned"]
    assert [event.ids for event in mentioned] == [
        {
            "operator": anna.operator.id,
            "conversation": conversation_id,
            "interaction": created["id"],
        }
    ]
    body = await notifications(anna)
    assert body["unread_count"] == 1
    (item,) = body["items"]
    assert item["kind"] == "mention"
    assert item["conversation_id"] == conversation_id
    assert item["interaction_id"] == created["id"]
    assert (item["author_id"], item["author_name"]) == (tom.operator.id, "Tom Becker")
    assert item["excerpt"].startswith("@anna can you check")
    assert item["conversation_subject"] == "Order"
    assert item["read_at"] is None
    assert (await notifications(tom))["items"] == []


async def test_who_cannot_see_the_conversation_is_not_notified(
    team: tuple[User, User, User, User, int], sessions: SessionFactory
) -> None:
    tom, _, luis, boss, conversation_id = team
    created = await note(tom, conversation_id, "@luis @maria @tom @nobody FYI")
    mentions = {entry["handle"]: entry for entry in created["meta"]["mentions"]}
    assert set(mentions) == {"luis", "maria", "tom"}
    assert mentions["luis"]["notified"] is False
    assert "cannot see this conversation" in mentions["luis"]["reason"]
    assert mentions["tom"]["notified"] is False
    assert mentions["tom"]["reason"] == "you mentioned yourself"
    # Supervisors see every conversation.
    assert mentions["maria"]["notified"] is True
    assert (await notifications(luis))["items"] == []
    assert len((await notifications(boss))["items"]) == 1
    await json_of(await luis.get(f"/api/v1/conversations/{conversation_id}"), 403)
    assert await notification_count(sessions) == 1


async def test_a_shared_local_part_needs_the_whole_address(
    team: tuple[User, User, User, User, int], make_user: UserFactory
) -> None:
    tom, anna, _, _, conversation_id = team
    await make_user(Role.SUPERVISOR, email="anna@example.org", name="Anna Other")
    ambiguous = await note(tom, conversation_id, "@anna?")
    assert "mentions" not in ambiguous["meta"]
    exact = await note(tom, conversation_id, "@anna@example.com please")
    assert exact["meta"]["mentions"][0]["operator_id"] == anna.operator.id
    assert len((await notifications(anna))["items"]) == 1


async def test_a_note_without_mentions_is_as_before(
    team: tuple[User, User, User, User, int], sessions: SessionFactory
) -> None:
    tom, _, _, _, conversation_id = team
    created = await note(tom, conversation_id, "Customer writes from kim@anna.example")
    assert created["meta"] == {}
    assert await notification_count(sessions) == 0


@pytest.mark.both_databases
async def test_notifications_unread_first_and_marked_read(
    team: tuple[User, User, User, User, int], sessions: SessionFactory
) -> None:
    tom, anna, luis, _, conversation_id = team
    first = await note(tom, conversation_id, "@anna first")
    second = await note(tom, conversation_id, "@anna second")
    third = await note(tom, conversation_id, "@anna third")
    body = await notifications(anna)
    assert [item["interaction_id"] for item in body["items"]] == [
        third["id"],
        second["id"],
        first["id"],
    ]
    by_interaction = {item["interaction_id"]: item["id"] for item in body["items"]}
    read = await anna.post(f"/api/v1/notifications/{by_interaction[third['id']]}/read")
    read_body = await json_of(read, 200)
    assert read_body["read_at"] is not None
    assert read_body["excerpt"] == "@anna third"
    again = await anna.post(f"/api/v1/notifications/{by_interaction[third['id']]}/read")
    assert (await json_of(again, 200))["read_at"] == read_body["read_at"]

    body = await notifications(anna)
    assert body["unread_count"] == 2
    # Unread first, then newest.
    assert [item["interaction_id"] for item in body["items"]] == [
        second["id"],
        first["id"],
        third["id"],
    ]
    unread_only = await notifications(anna, "?unread=true")
    assert [item["interaction_id"] for item in unread_only["items"]] == [second["id"], first["id"]]
    assert len((await notifications(anna, "?limit=1"))["items"]) == 1

    # Someone else's notification is not found, and stays unread.
    theirs = by_interaction[second["id"]]
    await json_of(await luis.post(f"/api/v1/notifications/{theirs}/read"), 404)
    await json_of(await anna.post("/api/v1/notifications/999999/read"), 404)
    assert (await notifications(anna))["unread_count"] == 2

    everything = await json_of(await anna.post("/api/v1/notifications/read-all"), 200)
    assert everything == {"updated": 2}
    assert (await notifications(anna))["unread_count"] == 0
    assert await json_of(await anna.post("/api/v1/notifications/read-all"), 200) == {"updated": 0}
    async with sessions() as session:
        notes = await session.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.kind == "note")
        )
    assert notes == 3


async def test_notifications_of_conversations_out_of_reach_are_hidden(
    team: tuple[User, User, User, User, int], sessions: SessionFactory
) -> None:
    tom, anna, _, _, conversation_id = team
    await note(tom, conversation_id, "@anna look")
    assert (await notifications(anna))["unread_count"] == 1
    # Anna leaves the queue: the conversation, and the note's excerpt, are no longer hers.
    async with sessions() as session, session.begin():
        support = await queue_by_name(session, "Support")
        await set_members(session, CLI, support.id, [tom.operator.id])
    body = await notifications(anna)
    assert (body["items"], body["unread_count"]) == ([], 0)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/notifications"),
        ("POST", "/api/v1/notifications/1/read"),
        ("POST", "/api/v1/notifications/read-all"),
    ],
)
async def test_routes_need_sign_in(client: TestClient[Any, Any], method: str, path: str) -> None:
    await json_of(await client.request(method, path), 401)


@pytest.mark.parametrize("query", ["?limit=0", "?limit=500", "?unread=maybe"])
async def test_bad_queries_are_400(make_user: UserFactory, query: str) -> None:
    user = await make_user(Role.OPERATOR)
    await json_of(await user.get(f"/api/v1/notifications{query}"), 400)

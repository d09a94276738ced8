"""Canned responses: own and shared ones, who manages which, placeholders filled safely."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.contacts import ContactChanges, update_contact
from core.db import SessionFactory
from core.identity import Address
from core.models import CannedResponse, Contact, Conversation, IdentityKind, Role
from tests.conftest import User, UserFactory
from tests.test_conversations_api import inbound, json_of, queue_with

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE


async def create(user: User, status: int = 201, **body: Any) -> Any:
    payload = {"title": "Thanks", "body": "Thank you!", **body}
    return await json_of(await user.post("/api/v1/canned-responses", json=payload), status)


async def stored(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CannedResponse)) or 0)


ROUTES = [
    ("GET", "/api/v1/canned-responses"),
    ("POST", "/api/v1/canned-responses"),
    ("GET", "/api/v1/canned-responses/1"),
    ("PATCH", "/api/v1/canned-responses/1"),
    ("DELETE", "/api/v1/canned-responses/1"),
    ("POST", "/api/v1/conversations/1/canned-responses/1/render"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    await json_of(response, 401)


async def test_own_responses_are_private_and_shared_ones_are_everyones(
    make_user: UserFactory,
) -> None:
    anna = await make_user(Role.OPERATOR)
    luis = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    mine = await create(anna, title="My greeting", shortcut="/Hi", body="Hi there")
    assert (mine["shared"], mine["owner_id"], mine["shortcut"]) == (
        False,
        anna.operator.id,
        "hi",
    )
    shared = await create(boss, title="Address change", body="Done.", shared=True)
    assert (shared["shared"], shared["owner_id"]) == (True, None)

    listed = await json_of(await anna.get("/api/v1/canned-responses"), 200)
    assert [item["title"] for item in listed["items"]] == ["Address change", "My greeting"]
    assert "contact.first_name" in listed["placeholders"]
    theirs = await json_of(await luis.get("/api/v1/canned-responses"), 200)
    assert [item["id"] for item in theirs["items"]] == [shared["id"]]
    # Someone else's own response does not exist for you, supervisors included.
    for other in (luis, boss):
        await json_of(await other.get(f"/api/v1/canned-responses/{mine['id']}"), 404)
        patch = await other.patch(f"/api/v1/canned-responses/{mine['id']}", json={"title": "x"})
        await json_of(patch, 404)
        await json_of(await other.delete(f"/api/v1/canned-responses/{mine['id']}"), 404)
    found = await json_of(await anna.get("/api/v1/canned-responses?q=greet"), 200)
    assert [item["id"] for item in found["items"]] == [mine["id"]]


async def test_only_supervisors_manage_shared_responses(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    admin = await make_user(Role.ADMIN)
    denied = await create(operator, 403, shared=True)
    assert "supervisors" in denied["error"]["message"]
    assert await stored(sessions) == 0
    shared = await create(admin, shared=True, body="Hello")
    path = f"/api/v1/canned-responses/{shared['id']}"
    await json_of(await operator.patch(path, json={"body": "Changed"}), 403)
    await json_of(await operator.delete(path), 403)
    assert (await json_of(await operator.get(path), 200))["body"] == "Hello"
    changed = await json_of(await admin.patch(path, json={"body": "Hi {{contact.name}}"}), 200)
    assert changed["body"] == "Hi {{contact.name}}"
    response = await admin.delete(path)
    assert response.status == 204
    assert await stored(sessions) == 0


async def test_operators_change_and_delete_their_own(make_user: UserFactory) -> None:
    operator = await make_user(Role.OPERATOR)
    own = await create(operator, shortcut="thx")
    path = f"/api/v1/canned-responses/{own['id']}"
    changed = await json_of(await operator.patch(path, json={"shortcut": None}), 200)
    assert changed["shortcut"] is None
    await json_of(await operator.patch(path, json={"title": None}), 400)
    assert (await operator.delete(path)).status == 204
    await json_of(await operator.get(path), 404)


async def test_unknown_placeholders_are_refused_by_name(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    body = "Hi {{contact.first_name}}, {{ contact.age }} and {{order.total}} {{contact.age}}"
    refused = await create(operator, 400, body=body)
    message = refused["error"]["fields"]["body"]
    assert "{{contact.age}}, {{order.total}}" in message
    assert await stored(sessions) == 0
    own = await create(operator, body="Hi {{ contact.first_name }}")
    path = f"/api/v1/canned-responses/{own['id']}"
    patch = await operator.patch(path, json={"body": "{{__class__}}"})
    assert "{{__class__}}" in (await json_of(patch, 400))["error"]["fields"]["body"]
    assert (await json_of(await operator.get(path), 200))["body"] == "Hi {{ contact.first_name }}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "   "}, "title"),
        ({"body": "  \n "}, "body"),
        ({"shortcut": "no spaces"}, "shortcut"),
        ({"shortcut": "-dash"}, "shortcut"),
        ({"body": "x" * 20_001}, "body"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_fields_are_400(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any], field: str
) -> None:
    operator = await make_user(Role.OPERATOR)
    refused = await create(operator, 400, **body)
    assert field in refused["error"]["fields"]
    assert await stored(sessions) == 0


async def test_shortcuts_are_unique_within_their_scope(make_user: UserFactory) -> None:
    anna = await make_user(Role.OPERATOR)
    luis = await make_user(Role.OPERATOR)
    boss = await make_user(Role.SUPERVISOR)
    await create(anna, shortcut="thanks")
    taken = await create(anna, 409, shortcut="THANKS")
    assert "shortcut" in taken["error"]["fields"]
    # Another operator's, and the shared ones, are separate scopes.
    await create(luis, shortcut="thanks")
    shared = await create(boss, shortcut="thanks", shared=True)
    await create(boss, 409, shortcut="thanks", shared=True)
    other = await create(boss, shortcut="other", shared=True)
    patch = await boss.patch(f"/api/v1/canned-responses/{other['id']}", json={"shortcut": "thanks"})
    await json_of(patch, 409)
    same = await boss.patch(f"/api/v1/canned-responses/{shared['id']}", json={"shortcut": "thanks"})
    await json_of(same, 200)


async def _conversation(sessions: SessionFactory, make_user: UserFactory) -> tuple[User, int]:
    operator = await make_user(Role.OPERATOR, email="luis.garcia@example.com", name="Luis García")
    queue = await queue_with(sessions, "Support", operator)
    conversation_id = await inbound(
        sessions,
        "m1",
        Address(EMAIL, "Emma.Schultz@example.org"),
        queue_id=queue,
        subject="Broken blender",
    )
    async with sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        await update_contact(
            session,
            CLI,
            conversation.contact_id,
            ContactChanges(display_name="Emma van der Berg"),
        )
    return operator, conversation_id


async def test_render_fills_every_placeholder(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator, conversation_id = await _conversation(sessions, make_user)
    body = (
        "{{contact.first_name}}|{{contact.last_name}}|{{contact.name}}|{{contact.email}}|"
        "{{contact.phone}}|{{operator.name}}|{{operator.first_name}}|{{conversation.id}}|"
        "{{ conversation.subject }}"
    )
    own = await create(operator, body=body)
    path = f"/api/v1/conversations/{conversation_id}/canned-responses/{own['id']}/render"
    rendered = await json_of(await operator.post(path), 200)
    assert rendered == {
        "text": f"Emma|van der Berg|Emma van der Berg|emma.schultz@example.org|"
        f"|Luis García|Luis|{conversation_id}|Broken blender"
    }


async def test_render_is_plain_substitution(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator, conversation_id = await _conversation(sessions, make_user)
    async with sessions() as session, session.begin():
        contact = await session.scalar(select(Contact))
        assert contact is not None
        contact.display_name = "{{operator.name}} {{7*7}}"
    own = await create(operator, body="Dear {{contact.name}}: {{contact.phone}}.")
    path = f"/api/v1/conversations/{conversation_id}/canned-responses/{own['id']}/render"
    rendered = await json_of(await operator.post(path), 200)
    # The value is inserted as it is, never read as a placeholder or an expression.
    assert rendered["text"] == "Dear {{operator.name}} {{7*7}}: ."


async def test_render_formats_the_phone_number(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Sms", operator)
    conversation_id = await inbound(
        sessions, "sms1", Address(PHONE, "+494032901177"), channel="sms", queue_id=queue
    )
    own = await create(operator, body="We will call {{contact.phone}}{{contact.email}}.")
    path = f"/api/v1/conversations/{conversation_id}/canned-responses/{own['id']}/render"
    assert (await json_of(await operator.post(path), 200))["text"] == (
        "We will call +49 40 32901177."
    )


async def test_render_needs_the_conversation_and_the_response(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator, conversation_id = await _conversation(sessions, make_user)
    outsider = await make_user(Role.OPERATOR)
    own = await create(operator, body="Hi")
    theirs = await create(outsider, body="Theirs")
    render = "/api/v1/conversations/{}/canned-responses/{}/render"
    await json_of(await outsider.post(render.format(conversation_id, theirs["id"])), 403)
    await json_of(await operator.post(render.format(conversation_id, theirs["id"])), 404)
    await json_of(await operator.post(render.format(conversation_id + 100, own["id"])), 404)
    await json_of(await operator.post(render.format(conversation_id, 99999)), 404)


async def test_erp_placeholders_are_kept_for_the_console_to_fill(
    make_user: UserFactory,
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    body = "Your order {{order.number}} is {{order.status}}: {{ order.tracking_url }}"
    created = await supervisor.post(
        "/api/v1/canned-responses", json={"title": "Order status", "body": body, "shared": True}
    )
    assert created.status == 201, await created.text()
    refused = await supervisor.post(
        "/api/v1/canned-responses",
        json={"title": "Typo", "body": "{{order.colour}}", "shared": True},
    )
    assert refused.status == 400
    assert "order.tracking_url" in (await refused.json())["error"]["message"]

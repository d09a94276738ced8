"""The API channel: POST /api/v1/interactions from another system."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.forms import create_form
from core.models import Contact, Conversation, Identity, Interaction, Lead, Role
from routing.setup import create_queue
from tests.conftest import UserFactory

Client = TestClient[Any, Any]
PATH = "/api/v1/interactions"


async def bearer(sessions: SessionFactory, name: str = "shop") -> dict[str, str]:
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, name)
    return {"Authorization": f"Bearer {token}"}


async def count(sessions: SessionFactory, model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def body(**fields: Any) -> dict[str, Any]:
    return {
        "external_id": "crm-1",
        "contact": {"email": "Ivy@Example.com", "name": "Ivy Ng"},
        "text": "Order A-17 arrived damaged",
        **fields,
    }


@pytest.mark.both_databases
async def test_an_integration_posts_an_interaction_and_a_repeat_is_stored_once(
    client: Client, sessions: SessionFactory
) -> None:
    headers = await bearer(sessions)
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Claims")
    sent = body(
        kind="call",
        subject="Damaged delivery",
        occurred_at="2026-03-01T09:30:00+01:00",
        meta={"ticket": {"id": 17, "tags": ["damage"]}},
        queue="Claims",
    )
    created = await client.post(PATH, json=sent, headers=headers)
    assert created.status == 201, await created.text()
    ids = await created.json()
    repeated = await client.post(PATH, json={**sent, "text": "changed"}, headers=headers)
    assert repeated.status == 200
    assert await repeated.json() == ids
    async with sessions() as session:
        interaction = await session.get(Interaction, ids["interaction_id"])
        conversation = await session.get(Conversation, ids["conversation_id"])
        contact = await session.get(Contact, ids["contact_id"])
    assert interaction is not None
    assert conversation is not None
    assert contact is not None
    assert (interaction.channel, interaction.kind, interaction.external_id) == (
        "api",
        "call",
        "crm-1",
    )
    assert interaction.text == "Order A-17 arrived damaged"
    assert interaction.subject == "Damaged delivery"
    assert interaction.meta == {"ticket": {"id": 17, "tags": ["damage"]}}
    assert interaction.occurred_at == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert conversation.queue_id == queue.id
    assert contact.display_name == "Ivy Ng"
    assert await count(sessions, Interaction) == 1


async def test_two_simultaneous_posts_of_one_external_id_store_one(
    client: Client, sessions: SessionFactory
) -> None:
    headers = await bearer(sessions)
    responses = await asyncio.gather(
        client.post(PATH, json=body(), headers=headers),
        client.post(PATH, json=body(), headers=headers),
    )
    assert sorted(response.status for response in responses) == [200, 201]
    assert await count(sessions, Interaction) == 1
    assert await count(sessions, Contact) == 1


async def test_contact_addresses_are_normalized_and_an_external_id_identifies(
    client: Client, sessions: SessionFactory
) -> None:
    headers = await bearer(sessions)
    first = await client.post(
        PATH,
        json=body(
            external_id="m-1", contact={"phone": "+1 (202) 555-0143", "external_id": "cust-9"}
        ),
        headers=headers,
    )
    assert first.status == 201
    # Known only by the other system's id: still the same person.
    second = await client.post(
        PATH, json=body(external_id="m-2", contact={"external_id": "cust-9"}), headers=headers
    )
    assert second.status == 201
    assert (await first.json())["contact_id"] == (await second.json())["contact_id"]
    async with sessions() as session:
        rows = (await session.execute(select(Identity.kind, Identity.address))).all()
    assert {(kind, address) for kind, address in rows} == {
        ("phone", "+12025550143"),
        ("external", "cust-9"),
    }


async def test_html_is_sanitized_before_it_is_stored(
    client: Client, sessions: SessionFactory
) -> None:
    headers = await bearer(sessions)
    response = await client.post(
        PATH,
        json=body(text="", html='<p onclick="x()">Hi <script>alert(1)</script>there</p>'),
        headers=headers,
    )
    assert response.status == 201
    async with sessions() as session:
        interaction = await session.scalar(select(Interaction))
    assert interaction is not None
    assert interaction.html is not None
    assert "script" not in interaction.html
    assert "onclick" not in interaction.html
    assert interaction.text == "Hi there"


@pytest.mark.both_databases
async def test_the_same_email_by_form_and_by_api_is_one_contact_with_one_history(
    client: Client, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact")
    form = await client.post(
        "/forms/contact", json={"email": "jo@example.com", "message": "Where is my order?"}
    )
    assert form.status == 201
    api = await client.post(
        PATH,
        json=body(contact={"email": "JO@example.com"}, text="Order shipped"),
        headers=await bearer(sessions),
    )
    assert api.status == 201
    contact_id = (await form.json())["contact_id"]
    assert (await api.json())["contact_id"] == contact_id
    assert await count(sessions, Contact) == 1
    async with sessions() as session:
        history = list(
            await session.scalars(
                select(Interaction.channel)
                .where(Interaction.contact_id == contact_id)
                .order_by(Interaction.id)
            )
        )
    assert history == ["webform", "api"]


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"contact": {"name": "No Address"}}, "contact"),
        ({"contact": {"email": "not-an-email"}}, "contact.email"),
        ({"contact": {"phone": "12"}}, "contact.phone"),
        ({"queue": "No such queue"}, "queue"),
        ({"occurred_at": "2026-03-01T09:30:00"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
        ({"kind": "note"}, "kind"),
        ({"external_id": ""}, "external_id"),
        ({"text": "nul\x00byte"}, "text"),
        ({"meta": {"deep": nested(25)}}, "meta"),
        ({"meta": {"big": "x" * 70_000}}, "meta"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_bodies_are_400_per_field_and_store_nothing(
    client: Client, sessions: SessionFactory, sent: dict[str, Any], field: str
) -> None:
    headers = await bearer(sessions)
    response = await client.post(PATH, json=body(**sent), headers=headers)
    assert response.status == 400
    assert field in (await response.json())["error"]["fields"]
    assert await count(sessions, Interaction) == 0
    assert await count(sessions, Contact) == 0


@pytest.mark.both_databases
async def test_meta_that_json_cannot_hold_is_400(client: Client, sessions: SessionFactory) -> None:
    # Python's JSON parser accepts NaN; PostgreSQL's JSON type does not.
    response = await client.post(
        PATH,
        data='{"external_id": "x", "contact": {"email": "a@example.com"}, "text": "",'
        ' "meta": {"score": NaN}}',
        headers={**await bearer(sessions), "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert "meta" in (await response.json())["error"]["fields"]
    assert await count(sessions, Interaction) == 0


async def test_without_a_valid_token_it_is_401(client: Client, sessions: SessionFactory) -> None:
    assert (await client.post(PATH, json=body())).status == 401
    wrong = await client.post(PATH, json=body(), headers={"Authorization": "Bearer omni_wrong"})
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "unauthorized"
    assert await count(sessions, Interaction) == 0


async def test_operators_and_supervisors_may_not_post_but_admins_may(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    for role in (Role.OPERATOR, Role.SUPERVISOR):
        user = await make_user(role)
        response = await user.post(PATH, json=body())
        assert response.status == 403, role
    assert await count(sessions, Interaction) == 0
    admin = await make_user(Role.ADMIN)
    assert (await admin.post(PATH, json=body())).status == 201


async def test_an_integration_may_open_a_lead_once_with_a_source_of_its_own(
    client: Client, sessions: SessionFactory
) -> None:
    headers = await bearer(sessions)
    sent = body(external_id="visit-881", kind="call", lead={"source": "field-sales"})
    created = await client.post(PATH, json=sent, headers=headers)
    assert created.status == 201, await created.text()
    assert (await client.post(PATH, json=sent, headers=headers)).status == 200
    plain = await client.post(PATH, json=body(external_id="note-2", lead={}), headers=headers)
    assert plain.status == 201
    async with sessions() as session:
        sources = sorted(await session.scalars(select(Lead.source)))
    assert sources == ["api", "api:field-sales"]  # the repeat opened none
    # A source cannot pose as another channel's ("form:quote" is a web form's).
    for source in ("form:quote", "Field Sales", ""):
        refused = await client.post(
            PATH, json=body(external_id="x", lead={"source": source}), headers=headers
        )
        assert refused.status == 400
        assert "lead.source" in (await refused.json())["error"]["fields"]
    assert await count(sessions, Lead) == 2

"""Leads API: list, read, and stage changes with who may make them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, LeadRequest, ingest
from core.models import AuditEntry, IdentityKind, InteractionKind, Lead, LeadStage, Role
from core.queues import set_members
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from web.keys import BUS

STAGES = [stage.value for stage in LeadStage]


async def new_lead(
    sessions: SessionFactory,
    n: int,
    *,
    source: str = "form:contact",
    owner: User | None = None,
    stage: LeadStage = LeadStage.NEW,
    queue_id: int | None = None,
) -> int:
    """A lead from a web-form submission (its conversation in `queue_id`), committed; its id."""
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="webform",
                external_id=f"submission-{n}",
                addresses=[Address(IdentityKind.EMAIL, f"lead{n}@example.com")],
                kind=InteractionKind.FORM,
                text="please call me back",
                queue_id=queue_id,
                lead=LeadRequest(source=source, marketing={"utm_source": "ads"}),
            ),
        )
        assert result.lead_id is not None
        await session.execute(
            update(Lead)
            .where(Lead.id == result.lead_id)
            .values(owner_id=owner.operator.id if owner else None, stage=stage)
        )
        return result.lead_id


async def queue_of(sessions: SessionFactory, *members: User) -> int:
    """A queue worked by `members`: operators see the leads of its conversations."""
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name=f"Sales {len(members)}")
        await set_members(session, CLI, queue.id, [member.operator.id for member in members])
    return queue.id


async def lead_row(sessions: SessionFactory, lead_id: int) -> Lead:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    return lead


async def audit_rows(sessions: SessionFactory, *actions: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.id)
            )
        )


async def ids(user: User, **params: Any) -> list[int]:
    response = await user.get("/api/v1/leads", params=params)
    assert response.status == 200, await response.text()
    return [item["id"] for item in (await response.json())["items"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/leads"), ("GET", "/api/v1/leads/1"), ("PATCH", "/api/v1/leads/1")],
)
async def test_every_lead_route_needs_auth(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_integration_tokens_may_not_use_leads(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    lead_id = await new_lead(sessions, 1)
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "crm-sync")
    headers = {"Authorization": f"Bearer {plain}"}
    assert (await client.get("/api/v1/leads", headers=headers)).status == 403
    patch = await client.patch(f"/api/v1/leads/{lead_id}", json={"stage": "won"}, headers=headers)
    assert patch.status == 403
    assert (await lead_row(sessions, lead_id)).stage == LeadStage.NEW


@pytest.mark.both_databases
async def test_list_is_newest_first_and_filters(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    # A supervisor sees every lead; which ones an operator sees is tests/test_visibility.py's.
    user = await make_user(Role.SUPERVISOR)
    other = await make_user(Role.OPERATOR)
    first = await new_lead(sessions, 1, owner=user)
    second = await new_lead(sessions, 2, source="form:demo", stage=LeadStage.QUALIFIED)
    third = await new_lead(sessions, 3, owner=other, stage=LeadStage.QUALIFIED)
    assert await ids(user) == [third, second, first]
    assert await ids(user, stage="qualified") == [third, second]
    assert await ids(user, owner_id=user.operator.id) == [first]
    assert await ids(user, source="form:demo") == [second]
    assert await ids(user, stage="qualified", owner_id=other.operator.id) == [third]
    assert await ids(user, stage="won") == []
    contact_of_second = (await lead_row(sessions, second)).contact_id
    assert await ids(user, contact_id=contact_of_second) == [second]


@pytest.mark.both_databases
async def test_list_pages_return_every_lead_exactly_once(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.SUPERVISOR)
    created = [await new_lead(sessions, n) for n in range(5)]
    # Same creation time for all: the id must break the tie.
    async with sessions() as session, session.begin():
        await session.execute(update(Lead).values(created_at=datetime(2024, 5, 1, tzinfo=UTC)))
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await user.get("/api/v1/leads", params=params)
        body = await response.json()
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stage": "x" * 41}, "stage"),
        ({"cursor": "%%%"}, "cursor"),
        ({"owner_id": "x"}, "owner_id"),
        ({"limit": "-1"}, "limit"),
    ],
)
async def test_bad_list_parameters_are_400(
    make_user: UserFactory, params: dict[str, str], field: str
) -> None:
    user = await make_user(Role.OPERATOR)
    response = await user.get("/api/v1/leads", params=params)
    assert response.status == 400
    fields = (await response.json())["error"]["fields"]
    assert field in fields


async def test_get_lead_and_404(make_user: UserFactory, sessions: SessionFactory) -> None:
    user = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, queue_id=await queue_of(sessions, user))
    response = await user.get(f"/api/v1/leads/{lead_id}")
    assert response.status == 200
    body = await response.json()
    assert (body["id"], body["stage"], body["source"]) == (lead_id, "new", "form:contact")
    assert body["marketing"] == {"utm_source": "ads"}
    missing = await user.get(f"/api/v1/leads/{lead_id + 100}")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


async def test_operator_moves_an_unowned_lead_through_stages(
    make_user: UserFactory, sessions: SessionFactory, app: web.Application
) -> None:
    user = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, queue_id=await queue_of(sessions, user))
    async with app[BUS].subscribe() as events:
        response = await user.patch(f"/api/v1/leads/{lead_id}", json={"stage": "qualified"})
        assert response.status == 200, await response.text()
        published = [events.get_nowait() for _ in range(events.qsize())]
    assert (await response.json())["stage"] == "qualified"
    lead = await lead_row(sessions, lead_id)
    assert lead.stage == LeadStage.QUALIFIED
    assert [(e.type, e.ids) for e in published if e.type == "lead.updated"] == [
        ("lead.updated", {"lead": lead_id, "contact": lead.contact_id})
    ]
    [entry] = await audit_rows(sessions, "lead.stage", "lead.update")
    assert (entry.action, entry.actor_id, entry.entity_id) == (
        "lead.stage",
        user.operator.id,
        str(lead_id),
    )
    assert entry.details == {"from": "new", "to": "qualified"}


async def test_value_and_currency_change_is_lead_update(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, owner=user)
    response = await user.patch(
        f"/api/v1/leads/{lead_id}", json={"value": 1234.5, "currency": "eur", "stage": "proposal"}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["value"], body["currency"], body["stage"]) == ("1234.50", "EUR", "proposal")
    entries = await audit_rows(sessions, "lead.stage", "lead.update")
    assert [(e.action, e.details) for e in entries] == [
        ("lead.stage", {"from": "new", "to": "proposal"}),
        ("lead.update", {"fields": ["value", "currency"]}),
    ]
    cleared = await user.patch(f"/api/v1/leads/{lead_id}", json={"value": None})
    assert (await cleared.json())["value"] is None
    assert (await lead_row(sessions, lead_id)).value is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "maybe"}, "stage"),
        ({"stage": None}, "stage"),
        ({"value": -1}, "value"),
        ({"value": "12.345"}, "value"),
        ({"value": 10**15}, "value"),
        # NaN is no JSON: refused while parsing (no field) or by the field.
        ({"value": float("nan")}, None),
        ({"currency": "EURO"}, "currency"),
        ({"owner_id": 999_999}, "owner_id"),
        ({"notes": "x"}, "notes"),
    ],
)
async def test_bad_patch_is_400_and_changes_nothing(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any], field: str | None
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    lead_id = await new_lead(sessions, 1)
    response = await boss.patch(f"/api/v1/leads/{lead_id}", json={"currency": "USD", **body})
    assert response.status == 400, await response.text()
    fields = (await response.json())["error"]["fields"]
    if field is not None:
        assert field in fields
    if field == "stage" and body["stage"] is not None:
        assert all(stage in fields["stage"] for stage in STAGES)
    lead = await lead_row(sessions, lead_id)
    assert (lead.stage, lead.currency, lead.owner_id) == (LeadStage.NEW, None, None)
    assert await audit_rows(sessions, "lead.stage", "lead.update") == []


async def test_operator_may_not_touch_another_operators_lead(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    owner = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, owner=owner)
    response = await user.patch(f"/api/v1/leads/{lead_id}", json={"stage": "won"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    assert (await lead_row(sessions, lead_id)).stage == LeadStage.NEW
    mine = await owner.patch(f"/api/v1/leads/{lead_id}", json={"stage": "won"})
    assert mine.status == 200


async def test_operator_may_not_reassign_even_their_own_lead(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    user = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, owner=user)
    for owner_id in (colleague.operator.id, None, user.operator.id):
        response = await user.patch(
            f"/api/v1/leads/{lead_id}",
            json={"owner_id": owner_id, "stage": "lost", "reason": "too expensive"},
        )
        assert response.status == 403
        assert "owner_id" in (await response.json())["error"]["fields"]
    lead = await lead_row(sessions, lead_id)
    assert (lead.owner_id, lead.stage) == (user.operator.id, LeadStage.NEW)


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
async def test_supervisor_changes_any_lead_and_its_owner(
    make_user: UserFactory, sessions: SessionFactory, role: Role
) -> None:
    boss = await make_user(role)
    owner = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    lead_id = await new_lead(sessions, 1, owner=owner)
    response = await boss.patch(
        f"/api/v1/leads/{lead_id}",
        json={"owner_id": colleague.operator.id, "stage": "lost", "reason": "too expensive"},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["owner_id"], body["stage"]) == (colleague.operator.id, "lost")
    entries = await audit_rows(sessions, "lead.stage", "lead.update")
    assert [(e.action, e.details) for e in entries] == [
        ("lead.stage", {"from": "new", "to": "lost", "reason": "too expensive"}),
        ("lead.update", {"fields": ["owner_id"]}),
    ]
    unowned = await boss.patch(f"/api/v1/leads/{lead_id}", json={"owner_id": None})
    assert (await unowned.json())["owner_id"] is None


async def test_patch_missing_lead_is_404(make_user: UserFactory) -> None:
    user = await make_user(Role.SUPERVISOR)
    response = await user.patch("/api/v1/leads/777", json={"stage": "won"})
    assert response.status == 404

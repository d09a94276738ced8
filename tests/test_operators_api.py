"""Operators and queues over the API: who may do what, validation, sessions, presence."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.events import Event
from core.models import AuditEntry, Operator, QueueMember, Role
from routing.setup import create_queue
from tests.conftest import PASSWORD, UserFactory
from web.keys import BUS

NEW_PASSWORD = "a fresh long secret"


async def audit_entries(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


async def login(client: TestClient[Any, Any], email: str, password: str) -> int:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return response.status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/operators"),
        ("POST", "/api/v1/operators"),
        ("PATCH", "/api/v1/operators/1"),
        ("POST", "/api/v1/operators/1/password"),
        ("PUT", "/api/v1/operators/me/presence"),
        ("GET", "/api/v1/queues"),
        ("POST", "/api/v1/queues"),
        ("PATCH", "/api/v1/queues/1"),
        ("PUT", "/api/v1/queues/1/members"),
    ],
)
async def test_team_routes_need_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_only_admins_manage_operators_and_queues(
    make_user: UserFactory, sessions: SessionFactory, role: Role
) -> None:
    user = await make_user(role)
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Support")
    target = user.operator.id
    attempts = [
        user.post(
            "/api/v1/operators", json={"email": "new@example.com", "name": "New", "role": "admin"}
        ),
        user.patch(f"/api/v1/operators/{target}", json={"role": "admin"}),
        user.post(f"/api/v1/operators/{target}/password", json={"password": NEW_PASSWORD}),
        user.post("/api/v1/queues", json={"name": "Sales"}),
        user.patch(f"/api/v1/queues/{queue.id}", json={"name": "Renamed"}),
        user.put(f"/api/v1/queues/{queue.id}/members", json={"operator_ids": [target]}),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status == 403, await response.text()
        assert (await response.json())["error"]["code"] == "forbidden"
    async with sessions() as session:
        operator = await session.get(Operator, target)
        assert operator is not None
        assert operator.role == role
        assert await session.scalar(select(QueueMember.operator_id)) is None
    assert await audit_entries(sessions, "operator.update") == []


async def test_every_signed_in_role_sees_the_team_but_integrations_do_not(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR, name="Anna Novak")
    supervisor = await make_user(Role.SUPERVISOR, name="Tom Becker")
    for user in (operator, supervisor):
        response = await user.get("/api/v1/operators")
        assert response.status == 200
        names = [item["name"] for item in await response.json()]
        assert names == ["Anna Novak", "Tom Becker"]
        assert (await user.get("/api/v1/queues")).status == 200
    async with sessions() as session, session.begin():
        _, plain = await create_token(session, CLI, "crm-sync")
    as_token = await client.get("/api/v1/operators", headers={"Authorization": f"Bearer {plain}"})
    assert as_token.status == 403


async def test_admin_adds_an_operator_who_can_sign_in(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/operators",
        json={
            "email": " Lena.Fischer@Example.com ",
            "name": "Lena Fischer",
            "role": "supervisor",
            "password": NEW_PASSWORD,
            "skills": {"billing": 80},
            "languages": {"de": 100, "en": 70},
            "capacity": {"email": 20, "voice": 1},
        },
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["email"] == "lena.fischer@example.com"
    assert created["role"] == "supervisor"
    assert created["skills"] == {"billing": 80}
    assert created["capacity"] == {"email": 20, "voice": 1}
    assert created["presence"] == "offline"
    assert "password_hash" not in created
    assert await login(client, "lena.fischer@example.com", NEW_PASSWORD) == 200
    [entry] = [
        entry
        for entry in await audit_entries(sessions, "operator.create")
        if entry.entity_id == str(created["id"])
    ]
    assert entry.actor_id == admin.operator.id
    assert entry.details == {"role": "supervisor", "email": "lena.fischer@example.com"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "name": "X"}, "email"),
        ({"email": "x@example.com", "name": "X", "role": "integration"}, "role"),
        ({"email": "x@example.com", "name": "X", "password": "short"}, "password"),
        ({"email": "x@example.com", "name": "   "}, "name"),
        ({"email": "x@example.com", "name": "X", "capacity": {"email": -1}}, "capacity.email"),
        ({"email": "x@example.com", "name": "X", "skills": {"sales": "high"}}, "skills.sales"),
        ({"email": "x@example.com", "name": "X", "is_god": True}, "is_god"),
        ({"name": "X"}, "email"),
    ],
)
async def test_invalid_new_operator_is_400_and_names_the_field(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any], field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/operators", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    assert field in error["fields"], error
    async with sessions() as session:
        assert list(await session.scalars(select(Operator.email))) == [admin.operator.email]


@pytest.mark.both_databases
async def test_duplicate_operator_email_is_409(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/operators", json={"email": admin.operator.email.upper(), "name": "Twin"}
    )
    assert response.status == 409
    assert "email" in (await response.json())["error"]["fields"]


async def test_deactivating_signs_the_operator_out_and_is_audited(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    operator = await make_user(Role.OPERATOR)
    assert (await operator.get("/api/v1/auth/me")).status == 200
    response = await admin.patch(
        f"/api/v1/operators/{operator.operator.id}", json={"active": False}
    )
    assert response.status == 200
    assert (await response.json())["active"] is False
    assert (await operator.get("/api/v1/auth/me")).status == 401
    assert await login(client, operator.operator.email, PASSWORD) == 401
    [entry] = await audit_entries(sessions, "operator.update")
    assert entry.details == {"active": False}
    assert entry.entity_id == str(operator.operator.id)


async def test_role_change_signs_out_and_settings_change_keeps_the_session(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    operator = await make_user(Role.OPERATOR)
    path = f"/api/v1/operators/{operator.operator.id}"
    response = await admin.patch(
        path, json={"name": "Anna N.", "capacity": {"messaging": 5}, "languages": {"pl": 100}}
    )
    assert response.status == 200
    body = await response.json()
    assert (body["name"], body["capacity"], body["languages"]) == (
        "Anna N.",
        {"messaging": 5},
        {"pl": 100},
    )
    assert (await operator.get("/api/v1/auth/me")).status == 200
    response = await admin.patch(path, json={"role": "supervisor"})
    assert (await response.json())["role"] == "supervisor"
    assert (await operator.get("/api/v1/auth/me")).status == 401
    details = [entry.details for entry in await audit_entries(sessions, "operator.update")]
    assert details == [
        {"name": "Anna N.", "capacity": {"messaging": 5}, "languages": {"pl": 100}},
        {"role": "supervisor"},
    ]


@pytest.mark.parametrize("change", [{"active": False}, {"role": "supervisor"}])
async def test_admin_cannot_deactivate_or_demote_themselves(
    make_user: UserFactory, sessions: SessionFactory, change: dict[str, Any]
) -> None:
    admin = await make_user(Role.ADMIN)
    await make_user(Role.ADMIN)  # another admin exists, yet one may not lock oneself out
    response = await admin.patch(f"/api/v1/operators/{admin.operator.id}", json=change)
    assert response.status == 400
    assert set((await response.json())["error"]["fields"]) == set(change)
    assert (await admin.get("/api/v1/auth/me")).status == 200
    async with sessions() as session:
        me = await session.get(Operator, admin.operator.id)
        assert me is not None
        assert (me.role, me.active) == (Role.ADMIN, True)


async def test_another_admin_may_be_demoted(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    other = await make_user(Role.ADMIN)
    response = await admin.patch(
        f"/api/v1/operators/{other.operator.id}", json={"role": "operator"}
    )
    assert response.status == 200
    assert (await response.json())["role"] == "operator"


async def test_patch_unknown_or_malformed_operator_is_404(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    assert (await admin.patch("/api/v1/operators/99999", json={"name": "X"})).status == 404
    assert (await admin.patch("/api/v1/operators/abc", json={"name": "X"})).status == 404
    bad = await admin.patch(f"/api/v1/operators/{admin.operator.id}", json={"role": "root"})
    assert bad.status == 400


async def test_admin_sets_a_password_and_old_sessions_end(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    operator = await make_user(Role.OPERATOR)
    path = f"/api/v1/operators/{operator.operator.id}/password"
    short = await admin.post(path, json={"password": "short"})
    assert short.status == 400
    assert (await operator.get("/api/v1/auth/me")).status == 200
    response = await admin.post(path, json={"password": NEW_PASSWORD})
    assert response.status == 204
    assert (await operator.get("/api/v1/auth/me")).status == 401
    assert await login(client, operator.operator.email, PASSWORD) == 401
    assert await login(client, operator.operator.email, NEW_PASSWORD) == 200
    assert len(await audit_entries(sessions, "operator.password")) == 1


async def test_operator_sets_own_presence_and_the_team_sees_it_live(
    make_user: UserFactory, app: web.Application, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    async with app[BUS].subscribe() as events:
        response = await operator.put(
            "/api/v1/operators/me/presence", json={"presence": "away", "reason": "lunch"}
        )
        assert response.status == 200
        body = await response.json()
        assert (body["presence"], body["presence_reason"]) == ("away", "lunch")
        event: Event = await asyncio.wait_for(events.get(), 5)
    assert event.type == "operator.presence"
    assert event.ids == {"operator": operator.operator.id}
    assert event.labels == {"presence": "away"}
    async with sessions() as session:
        stored = await session.get(Operator, operator.operator.id)
        assert stored is not None
        assert (stored.presence, stored.presence_reason) == ("away", "lunch")
    [entry] = await audit_entries(sessions, "operator.presence")
    assert entry.details == {"presence": "away", "reason": "lunch"}
    again = await operator.put("/api/v1/operators/me/presence", json={"presence": "available"})
    assert (await again.json())["presence_reason"] is None


async def test_invalid_presence_is_400_and_changes_nothing(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    operator = await make_user(Role.OPERATOR)
    for body in ({"presence": "sleeping"}, {"presence": "away", "reason": "x" * 201}, {}):
        response = await operator.put("/api/v1/operators/me/presence", json=body)
        assert response.status == 400
    async with sessions() as session:
        stored = await session.get(Operator, operator.operator.id)
        assert stored is not None
        assert stored.presence == "offline"


async def test_admin_manages_queues_and_members(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    anna = await make_user(Role.OPERATOR)
    created = await admin.post(
        "/api/v1/queues",
        json={
            "name": "Support",
            "description": "Customers",
            "config": {"strategies": ["least_busy"]},
        },
    )
    assert created.status == 201
    queue = await created.json()
    assert queue["config"] == {"strategies": ["least_busy"]}
    duplicate = await admin.post("/api/v1/queues", json={"name": "Support"})
    assert duplicate.status == 409

    renamed = await admin.patch(
        f"/api/v1/queues/{queue['id']}", json={"name": "Customer support", "config": {}}
    )
    assert renamed.status == 200
    assert (await renamed.json())["name"] == "Customer support"
    [entry] = await audit_entries(sessions, "queue.update")
    assert entry.details == {"name": "Customer support", "config": {}}

    members_path = f"/api/v1/queues/{queue['id']}/members"
    unknown = await admin.put(members_path, json={"operator_ids": [anna.operator.id, 99999]})
    assert unknown.status == 400
    assert "operator_ids" in (await unknown.json())["error"]["fields"]
    async with sessions() as session:
        assert await session.scalar(select(QueueMember.operator_id)) is None

    response = await admin.put(members_path, json={"operator_ids": [anna.operator.id]})
    assert response.status == 200
    assert (await response.json())["operator_ids"] == [anna.operator.id]
    listed = await (await anna.get("/api/v1/queues")).json()
    assert [(item["name"], item["operator_ids"]) for item in listed] == [
        ("Customer support", [anna.operator.id])
    ]
    assert len(await audit_entries(sessions, "queue.members")) == 1


async def test_queue_validation_and_unknown_queue(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    assert (await admin.post("/api/v1/queues", json={"name": ""})).status == 400
    assert (await admin.post("/api/v1/queues", json={"name": "Q", "config": []})).status == 400
    assert (await admin.patch("/api/v1/queues/4242", json={"name": "X"})).status == 404
    missing = await admin.put("/api/v1/queues/4242/members", json={"operator_ids": []})
    assert missing.status == 404

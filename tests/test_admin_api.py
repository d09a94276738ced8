"""API tokens and the audit log: admins only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core import audit
from core.audit import CLI, Actor
from core.auth import token_actor
from core.db import SessionFactory
from core.models import ApiToken, AuditEntry, Role, utcnow
from tests.conftest import UserFactory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/1"),
        ("GET", "/api/v1/audit"),
    ],
)
async def test_admin_routes_need_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json={"name": "x"})
    assert response.status == 401


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_operators_and_supervisors_may_not_administer(
    make_user: UserFactory, sessions: SessionFactory, role: Role
) -> None:
    user = await make_user(role)
    attempts = [
        user.get("/api/v1/tokens"),
        user.post("/api/v1/tokens", json={"name": "sneaky", "role": "admin"}),
        user.delete("/api/v1/tokens/1"),
        user.get("/api/v1/audit"),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    async with sessions() as session:
        assert await session.scalar(select(ApiToken.id)) is None


async def test_integration_token_may_not_administer(
    make_user: UserFactory, client: TestClient[Any, Any]
) -> None:
    admin = await make_user(Role.ADMIN)
    created = await (await admin.post("/api/v1/tokens", json={"name": "erp"})).json()
    assert created["role"] == "integration"
    for path in ("/api/v1/tokens", "/api/v1/audit"):
        response = await client.get(path, headers=bearer(created["token"]))
        assert response.status == 403


async def test_created_token_is_shown_once_and_works_as_bearer(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/tokens", json={"name": "ops-bot", "role": "admin"})
    assert response.status == 201
    created = await response.json()
    plain = created["token"]
    assert (created["name"], created["role"], created["revoked_at"]) == ("ops-bot", "admin", None)

    async with sessions() as session:
        actor = await token_actor(session, plain)
        stored = await session.scalar(select(ApiToken.token_hash))
    assert actor == Actor("token:ops-bot", Role.ADMIN)
    assert stored is not None
    assert plain not in stored

    as_token = await client.get("/api/v1/tokens", headers=bearer(plain))
    assert as_token.status == 200
    listed = await as_token.json()
    assert [item["name"] for item in listed] == ["ops-bot"]
    assert "token" not in listed[0]
    assert (await client.get("/api/v1/tokens", headers=bearer(plain + "x"))).status == 401


async def test_revoked_token_stops_working(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    created = await (
        await admin.post("/api/v1/tokens", json={"name": "old", "role": "supervisor"})
    ).json()
    assert (await client.get("/api/v1/queues", headers=bearer(created["token"]))).status == 200
    response = await admin.delete(f"/api/v1/tokens/{created['id']}")
    assert response.status == 204
    assert (await client.get("/api/v1/queues", headers=bearer(created["token"]))).status == 401
    listed = await (await admin.get("/api/v1/tokens")).json()
    assert listed[0]["revoked_at"] is not None
    assert (await admin.delete(f"/api/v1/tokens/{created['id']}")).status == 204
    assert (await admin.delete("/api/v1/tokens/424242")).status == 404
    async with sessions() as session:
        revocations = list(
            await session.scalars(
                select(AuditEntry.entity_id).where(AuditEntry.action == "token.revoke")
            )
        )
    assert revocations == [str(created["id"])]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": ""}, 400, "name"),
        ({"name": "x", "role": "root"}, 400, "role"),
        ({"name": "x", "expires": "never"}, 400, "expires"),
        ({}, 400, "name"),
    ],
)
async def test_invalid_token_request_is_400(
    make_user: UserFactory, body: dict[str, Any], status: int, field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/tokens", json=body)
    assert response.status == status
    assert field in (await response.json())["error"]["fields"]


@pytest.mark.both_databases
async def test_duplicate_token_name_is_409(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    assert (await admin.post("/api/v1/tokens", json={"name": "erp"})).status == 201
    assert (await admin.post("/api/v1/tokens", json={"name": "erp"})).status == 409


async def seed_audit(sessions: SessionFactory, count: int) -> None:
    """`count` queue.update entries by the CLI, one second apart, for queue ids 1..count."""
    async with sessions() as session, session.begin():
        start = utcnow() - timedelta(hours=1)
        for number in range(1, count + 1):
            await audit.record(session, CLI, "queue.update", "queue", number, {"n": number})
        await session.flush()
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.actor_label == "cli").order_by(AuditEntry.id)
        )
        for number, entry in enumerate(entries, start=1):
            entry.created_at = start + timedelta(seconds=number)


@pytest.mark.both_databases
async def test_audit_log_is_newest_first_and_filterable(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await seed_audit(sessions, 3)
    response = await admin.patch(f"/api/v1/operators/{admin.operator.id}", json={"name": "Boss"})
    assert response.status == 200

    page = await (await admin.get("/api/v1/audit")).json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"] is None
    first = page["items"][0]
    assert (first["action"], first["actor_id"], first["details"]) == (
        "operator.update",
        admin.operator.id,
        {"name": "Boss"},
    )
    times = [item["created_at"] for item in page["items"]]
    assert times == sorted(times, reverse=True)

    by_action = await (await admin.get("/api/v1/audit", params={"action": "queue.update"})).json()
    assert [item["entity_id"] for item in by_action["items"]] == ["3", "2", "1"]
    by_entity = await (
        await admin.get("/api/v1/audit", params={"entity_type": "queue", "entity_id": "2"})
    ).json()
    assert [item["details"] for item in by_entity["items"]] == [{"n": 2}]
    by_actor = await (
        await admin.get("/api/v1/audit", params={"actor_id": str(admin.operator.id)})
    ).json()
    assert {item["action"] for item in by_actor["items"]} == {"login", "operator.update"}
    assert all(item["actor_id"] == admin.operator.id for item in by_actor["items"])


@pytest.mark.both_databases
async def test_audit_log_pages_with_a_cursor(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await seed_audit(sessions, 7)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"action": "queue.update", "limit": "3"}
        if cursor:
            params["cursor"] = cursor
        response = await admin.get("/api/v1/audit", params=params)
        assert response.status == 200
        page = await response.json()
        seen += [item["entity_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["7", "6", "5", "4", "3", "2", "1"]
    assert pages == 3


@pytest.mark.parametrize(
    "params",
    [{"cursor": "not-a-cursor"}, {"limit": "0"}, {"limit": "9999"}, {"actor_id": "me"}, {"x": "1"}],
)
async def test_bad_audit_query_is_400(make_user: UserFactory, params: dict[str, str]) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.get("/api/v1/audit", params=params)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_input"

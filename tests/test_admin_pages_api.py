"""What the admin pages need from the API: default capacity and capacity kinds, an operator's
queues, the channels' settings schemas, the audit log by date, the form embed snippet, and
the /admin page's role checks (an HTML 403, a redirect to sign in)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.db import SessionFactory
from core.models import AuditEntry, Operator, QueueMember, Role, utcnow
from core.operators import DEFAULT_CAPACITY
from tests.conftest import UserFactory


async def test_an_operator_added_without_capacity_gets_the_default(
    make_user: UserFactory,
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/operators", json={"email": "new@example.com", "name": "New"}
    )
    assert response.status == 201
    assert (await response.json())["capacity"] == dict(DEFAULT_CAPACITY)
    assert DEFAULT_CAPACITY == {"voice": 1, "messaging": 5, "email": 10}
    explicit = await admin.post(
        "/api/v1/operators",
        json={"email": "none@example.com", "name": "None", "capacity": {}},
    )
    assert (await explicit.json())["capacity"] == {}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_capacity_keys_must_be_capacity_kinds(
    make_user: UserFactory, sessions: SessionFactory, method: str
) -> None:
    admin = await make_user(Role.ADMIN)
    body: dict[str, Any] = {"capacity": {"sms": 3, "email": 5, "chat": 1}}
    if method == "POST":
        response = await admin.post(
            "/api/v1/operators", json={"email": "x@example.com", "name": "X", **body}
        )
    else:
        response = await admin.patch(f"/api/v1/operators/{admin.operator.id}", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert set(error["fields"]) == {"capacity.sms", "capacity.chat"}
    assert "voice, messaging, email" in error["fields"]["capacity.sms"]
    async with sessions() as session:
        assert (
            await session.scalar(select(Operator.id).where(Operator.email == "x@example.com"))
            is None
        )


async def test_the_queues_an_operator_works_are_set_with_the_operator_and_audited(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    support = await (await admin.post("/api/v1/queues", json={"name": "Support"})).json()
    sales = await (await admin.post("/api/v1/queues", json={"name": "Sales"})).json()
    created = await admin.post(
        "/api/v1/operators",
        json={"email": "q@example.com", "name": "Q", "queue_ids": [support["id"]]},
    )
    assert created.status == 201
    operator_id = (await created.json())["id"]
    changed = await admin.patch(
        f"/api/v1/operators/{operator_id}", json={"queue_ids": [sales["id"]]}
    )
    assert changed.status == 200
    unknown = await admin.patch(f"/api/v1/operators/{operator_id}", json={"queue_ids": [999]})
    assert unknown.status == 400
    assert "queue_ids" in (await unknown.json())["error"]["fields"]
    async with sessions() as session:
        members = await session.scalars(
            select(QueueMember.queue_id).where(QueueMember.operator_id == operator_id)
        )
        assert list(members) == [sales["id"]]
        audited = await session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "operator.queues", AuditEntry.entity_id == str(operator_id))
            .order_by(AuditEntry.id)
        )
        assert list(audited) == [{"queue_ids": [support["id"]]}, {"queue_ids": [sales["id"]]}]
    queues = await (await admin.get("/api/v1/queues")).json()
    assert {q["name"]: q["operator_ids"] for q in queues} == {
        "Sales": [operator_id],
        "Support": [],
    }


async def test_channel_settings_schemas_are_for_admins(
    make_user: UserFactory, client: TestClient[Any, Any]
) -> None:
    assert (await client.get("/api/v1/channel-settings")).status == 401
    for role in (Role.OPERATOR, Role.SUPERVISOR):
        user = await make_user(role)
        assert (await user.get("/api/v1/channel-settings")).status == 403
    admin = await make_user(Role.ADMIN)
    response = await admin.get("/api/v1/channel-settings")
    assert response.status == 200
    by_channel = {item["channel"]: item for item in await response.json()}
    email = by_channel["email"]
    assert email["label"]
    assert "imap_password" in email["secret_fields"]
    assert {"imap_host", "smtp_host", "address"} <= set(email["settings_schema"]["properties"])
    assert "webform" not in by_channel


async def test_the_audit_log_filters_by_date(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    await admin.post("/api/v1/queues", json={"name": "Dated"})
    now = utcnow()
    async with sessions() as session, session.begin():
        old = AuditEntry(
            actor_label="cli",
            action="queue.update",
            entity_type="queue",
            entity_id="1",
            details={},
            created_at=now - timedelta(days=10),
        )
        session.add(old)
    since = (now - timedelta(days=1)).isoformat()
    recent = await (await admin.get("/api/v1/audit", params={"since": since})).json()
    assert "queue.create" in [entry["action"] for entry in recent["items"]]
    assert all(entry["id"] != old.id for entry in recent["items"])
    until = (now - timedelta(days=5)).isoformat()
    older = await (await admin.get("/api/v1/audit", params={"until": until})).json()
    assert [entry["id"] for entry in older["items"]] == [old.id]
    naive = await admin.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status == 400
    assert "since" in (await naive.json())["error"]["fields"]


async def test_forms_list_carries_the_embed_snippet(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/forms", json={"slug": "contact", "title": "Write <us>"})
    assert response.status == 201
    form = await response.json()
    assert form["embed_snippet"].startswith(f'<iframe src="{form["url"]}"')
    assert 'title="Write &lt;us&gt;"' in form["embed_snippet"]


async def test_the_admin_page_checks_the_role_on_the_server(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    response = await client.get("/admin/", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/admin/"
    response = await client.get("/admin", allow_redirects=False)
    assert response.headers["Location"] == "/admin/"
    operator = await make_user(Role.OPERATOR)
    response = await operator.get("/admin/")
    assert response.status == 403
    assert response.content_type == "text/html"
    page = await response.text()
    assert "Admins only" in page
    assert "/static/admin/main.js" not in page
    for role in (Role.SUPERVISOR, Role.ADMIN):
        user = await make_user(role)
        response = await user.get("/admin/")
        assert response.status == 200
        assert "/static/admin/main.js" in await response.text()


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_only_admins_change_what_the_admin_page_changes(
    make_user: UserFactory, role: Role
) -> None:
    """The role matrix of the admin page's changes: supervisors may look at the team, queues
    and forms, and manage shared canned responses; the rest is for admins."""
    admin = await make_user(Role.ADMIN)
    queue = await (await admin.post("/api/v1/queues", json={"name": "Matrix"})).json()
    user = await make_user(role)
    denied = [
        user.post("/api/v1/operators", json={"email": "m@example.com", "name": "M"}),
        user.patch(f"/api/v1/operators/{admin.operator.id}", json={"queue_ids": []}),
        user.post(f"/api/v1/operators/{admin.operator.id}/password", json={"password": "x" * 12}),
        user.patch(f"/api/v1/queues/{queue['id']}", json={"name": "Renamed"}),
        user.put(f"/api/v1/queues/{queue['id']}/members", json={"operator_ids": []}),
        user.put("/api/v1/routing/queue-rules", json={"rules": {"rules": []}}),
        user.post("/api/v1/forms", json={"slug": "nope"}),
        user.get("/api/v1/channel-accounts"),
        user.get("/api/v1/tokens"),
        user.get("/api/v1/audit"),
    ]
    for attempt in denied:
        assert (await attempt).status == 403
    allowed = ["/api/v1/operators", "/api/v1/queues", "/api/v1/canned-responses"]
    if role == Role.SUPERVISOR:
        allowed.append("/api/v1/forms")
    for path in allowed:
        assert (await user.get(path)).status == 200, path
    shared = await user.post(
        "/api/v1/canned-responses", json={"title": "Hi", "body": "Hello", "shared": True}
    )
    assert shared.status == (201 if role == Role.SUPERVISOR else 403)

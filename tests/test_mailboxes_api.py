"""Mailboxes through the API: admins only, validated per field, passwords write-only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.auth import create_token
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.events import Event
from core.models import AuditEntry, Mailbox, Role
from core.queues import create_queue
from tests.conftest import User, UserFactory
from web.keys import BUS

IMAP_SECRET = "imap-Secret-7361"
SMTP_SECRET = "smtp-Secret-9024"

ROUTES = [
    ("GET", "/api/v1/mailboxes"),
    ("POST", "/api/v1/mailboxes"),
    ("GET", "/api/v1/mailboxes/1"),
    ("PATCH", "/api/v1/mailboxes/1"),
    ("DELETE", "/api/v1/mailboxes/1"),
]


def new_mailbox(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "support",
        "address": "Support@Example.com",
        "display_name": "Example Support",
        "imap_host": "imap.example.com",
        "imap_user": "support@example.com",
        "imap_password": IMAP_SECRET,
        "smtp_host": "smtp.example.com",
        "smtp_port": 587,
        "smtp_tls": "starttls",
        "smtp_user": "support@example.com",
        "smtp_password": SMTP_SECRET,
        **overrides,
    }


async def json_of(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert IMAP_SECRET not in text
    assert SMTP_SECRET not in text
    return json.loads(text) if text else None


async def stored(sessions: SessionFactory, mailbox_id: int) -> Mailbox:
    async with sessions() as session:
        mailbox = await session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    return mailbox


async def passwords(
    sessions: SessionFactory, cipher: CredentialCipher, mailbox_id: int
) -> tuple[str, str]:
    """The stored IMAP and SMTP passwords, decrypted."""
    mailbox = await stored(sessions, mailbox_id)
    return cipher.decrypt(mailbox.imap_password), cipher.decrypt(mailbox.smtp_password)


async def audit_rows(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return list(rows)


async def mailbox_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Mailbox)) or 0)


@pytest.fixture
async def admin(make_user: UserFactory) -> User:
    return await make_user(Role.ADMIN)


@pytest.fixture
def events(app: web.Application) -> list[Event]:
    seen: list[Event] = []
    app[BUS].add_listener(seen.append)
    return seen


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path, json=new_mailbox())
    assert response.status == 401


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_only_admins_manage_mailboxes(
    make_user: UserFactory, sessions: SessionFactory, role: Role, method: str, path: str
) -> None:
    user = await make_user(role)
    call = {"GET": user.get, "POST": user.post, "PATCH": user.patch, "DELETE": user.delete}
    response = await call[method](path, json=new_mailbox())
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    assert await mailbox_count(sessions) == 0


async def test_integration_tokens_may_not_manage_mailboxes(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "erp", Role.INTEGRATION)
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in ROUTES:
        response = await client.request(method, path, json=new_mailbox(), headers=headers)
        assert response.status == 403, (method, path)
    assert await mailbox_count(sessions) == 0


async def test_create_list_and_get_never_show_passwords(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Support")
    created = await json_of(
        await admin.post("/api/v1/mailboxes", json=new_mailbox(queue_id=queue.id)), 201
    )
    assert created["name"] == "support"
    assert created["address"] == "support@example.com"
    assert (created["imap_host"], created["imap_port"], created["imap_tls"]) == (
        "imap.example.com",
        993,
        "ssl",
    )
    assert (created["smtp_host"], created["smtp_port"], created["smtp_tls"]) == (
        "smtp.example.com",
        587,
        "starttls",
    )
    assert created["imap_password_set"] is True
    assert created["smtp_password_set"] is True
    assert "imap_password" not in created
    assert "smtp_password" not in created
    assert created["queue_id"] == queue.id
    assert (created["imap_folder"], created["after_import"], created["backfill_days"]) == (
        "INBOX",
        "leave",
        30,
    )
    assert created["active"] is True
    assert created["from_config"] is False

    listed = await json_of(await admin.get("/api/v1/mailboxes"), 200)
    assert [row["id"] for row in listed] == [created["id"]]
    one = await json_of(await admin.get(f"/api/v1/mailboxes/{created['id']}"), 200)
    assert one == listed[0]

    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, SMTP_SECRET)
    [row] = await audit_rows(sessions, "mailbox.create")
    assert row.actor_id == admin.operator.id
    assert row.entity_id == str(created["id"])
    assert IMAP_SECRET not in json.dumps(row.details)
    assert SMTP_SECRET not in json.dumps(row.details)
    assert [e.ids for e in events if e.type == "mailbox.created"] == [{"mailbox": created["id"]}]


async def test_several_mailboxes_and_a_unique_name(admin: User, sessions: SessionFactory) -> None:
    await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 201)
    await json_of(
        await admin.post(
            "/api/v1/mailboxes",
            json=new_mailbox(name="sales", address="sales@example.com", imap_user="sales"),
        ),
        201,
    )
    twin = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 409)
    assert "name" in twin["error"]["fields"]
    listed = await json_of(await admin.get("/api/v1/mailboxes"), 200)
    assert [row["name"] for row in listed] == ["support", "sales"]


async def test_patch_without_a_password_keeps_it(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    created = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 201)
    path = f"/api/v1/mailboxes/{created['id']}"
    changed = await json_of(
        await admin.patch(path, json={"imap_port": 143, "imap_tls": "starttls"}), 200
    )
    assert (changed["imap_port"], changed["imap_tls"]) == (143, "starttls")
    assert changed["imap_password_set"] is True
    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, SMTP_SECRET)

    new_secret = "rotated-Secret-5150"
    rotated = await admin.patch(path, json={"smtp_password": new_secret})
    assert new_secret not in await rotated.text()
    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, new_secret)
    cleared = await json_of(await admin.patch(path, json={"imap_password": ""}), 200)
    assert cleared["imap_password_set"] is False
    assert cleared["smtp_password_set"] is True

    updates = await audit_rows(sessions, "mailbox.update")
    assert [row.details for row in updates] == [
        {"changed": ["imap_port", "imap_tls"]},
        {"changed": ["smtp_password"]},
        {"changed": ["imap_password"]},
    ]
    assert [e.ids for e in events if e.type == "mailbox.updated"] == [
        {"mailbox": created["id"]}
    ] * 3
    unchanged = await json_of(await admin.patch(path, json={"imap_port": 143}), 200)
    assert unchanged["updated_at"] == cleared["updated_at"]
    assert len(await audit_rows(sessions, "mailbox.update")) == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "  "}, "name"),
        ({"address": "not-an-address"}, "address"),
        ({"address": "a b@example.com"}, "address"),
        ({"imap_host": "imap example com"}, "imap_host"),
        ({"smtp_host": ""}, "smtp_host"),
        ({"imap_port": 0}, "imap_port"),
        ({"smtp_port": 65536}, "smtp_port"),
        ({"imap_tls": "tls"}, "imap_tls"),
        ({"smtp_tls": "SSL"}, "smtp_tls"),
        ({"imap_user": ""}, "imap_user"),
        ({"imap_password": "line\nbreak"}, "imap_password"),
        ({"imap_folder": ""}, "imap_folder"),
        ({"imap_folder": "Tab\there"}, "imap_folder"),
        ({"queue_id": 999}, "queue_id"),
        ({"after_import": "delete"}, "after_import"),
        ({"after_import": "move"}, "move_to_folder"),
        ({"after_import": "move", "move_to_folder": "INBOX"}, "move_to_folder"),
        ({"poll_seconds": 0}, "poll_seconds"),
        ({"backfill_days": -1}, "backfill_days"),
        ({"use_idle": "sometimes"}, "use_idle"),
        ({"imap_pasword": "typo"}, "imap_pasword"),
        ({"display_name": "x" * 201}, "display_name"),
    ],
)
async def test_invalid_settings_are_400_per_field(
    admin: User, sessions: SessionFactory, overrides: dict[str, Any], field: str
) -> None:
    body = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox(**overrides)), 400)
    assert field in body["error"]["fields"], body
    assert await mailbox_count(sessions) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"imap_port": None}, "imap_port"),
        ({"name": None}, "name"),
        ({"imap_host": "bad host"}, "imap_host"),
        ({"after_import": "move"}, "move_to_folder"),
        ({"smtp_port": 99999}, "smtp_port"),
        ({"queue_id": 12345}, "queue_id"),
    ],
)
async def test_invalid_changes_are_400_and_change_nothing(
    admin: User, sessions: SessionFactory, changes: dict[str, Any], field: str
) -> None:
    created = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 201)
    path = f"/api/v1/mailboxes/{created['id']}"
    body = await json_of(await admin.patch(path, json=changes), 400)
    assert field in body["error"]["fields"], body
    assert await json_of(await admin.get(path), 200) == created
    assert await audit_rows(sessions, "mailbox.update") == []


async def test_move_after_import_needs_a_folder(admin: User) -> None:
    created = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 201)
    path = f"/api/v1/mailboxes/{created['id']}"
    moved = await json_of(
        await admin.patch(path, json={"after_import": "move", "move_to_folder": "Imported"}), 200
    )
    assert (moved["after_import"], moved["move_to_folder"]) == ("move", "Imported")
    body = await json_of(await admin.patch(path, json={"move_to_folder": None}), 400)
    assert "move_to_folder" in body["error"]["fields"]


async def test_deactivate_and_reactivate(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    created = await json_of(await admin.post("/api/v1/mailboxes", json=new_mailbox()), 201)
    path = f"/api/v1/mailboxes/{created['id']}"
    assert (await admin.delete(path)).status == 204
    assert (await json_of(await admin.get(path), 200))["active"] is False
    # Deactivating again is a no-op: the admin's intent holds either way.
    assert (await admin.delete(path)).status == 204
    [row] = await audit_rows(sessions, "mailbox.deactivate")
    assert row.entity_id == str(created["id"])
    assert [e.ids for e in events if e.type == "mailbox.deleted"] == [{"mailbox": created["id"]}]

    reactivated = await json_of(await admin.patch(path, json={"active": True}), 200)
    assert reactivated["active"] is True
    assert (await passwords(sessions, cipher, created["id"]))[0] == IMAP_SECRET
    assert (await admin.delete("/api/v1/mailboxes/999")).status == 404
    assert (await admin.get("/api/v1/mailboxes/999")).status == 404
    assert (await admin.patch("/api/v1/mailboxes/999", json={"active": True})).status == 404
    assert (await admin.get("/api/v1/mailboxes/abc")).status == 404

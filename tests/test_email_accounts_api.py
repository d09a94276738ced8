"""Email accounts (mailboxes) through `/api/v1/channel-accounts`: admins only, validated per
setting by the email channel, passwords write-only and stored encrypted."""

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
from core.models import AuditEntry, ChannelAccount, Role
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from tests.mailservers import DovecotServer, SmtpServer
from web.keys import BUS

IMAP_SECRET = "imap-Secret-7361"
SMTP_SECRET = "smtp-Secret-9024"
PATH = "/api/v1/channel-accounts"

ROUTES = [
    ("GET", PATH),
    ("POST", PATH),
    ("GET", f"{PATH}/1"),
    ("PATCH", f"{PATH}/1"),
    ("DELETE", f"{PATH}/1"),
    ("POST", f"{PATH}/1/check"),
]


def settings(**overrides: Any) -> dict[str, Any]:
    return {
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


def new_account(name: str = "support", **overrides: Any) -> dict[str, Any]:
    queue = {"queue_id": overrides.pop("queue_id")} if "queue_id" in overrides else {}
    return {"channel": "email", "name": name, "settings": settings(**overrides), **queue}


async def json_of(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert IMAP_SECRET not in text
    assert SMTP_SECRET not in text
    return json.loads(text) if text else None


async def stored(sessions: SessionFactory, account_id: int) -> ChannelAccount:
    async with sessions() as session:
        account = await session.get(ChannelAccount, account_id)
    assert account is not None
    return account


async def passwords(
    sessions: SessionFactory, cipher: CredentialCipher, account_id: int
) -> tuple[str, str]:
    """The stored IMAP and SMTP passwords, decrypted."""
    account = await stored(sessions, account_id)
    return (
        cipher.decrypt(account.settings["imap_password"]),
        cipher.decrypt(account.settings["smtp_password"]),
    )


async def audit_rows(sessions: SessionFactory, action: str) -> list[AuditEntry]:
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return list(rows)


async def account_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ChannelAccount)) or 0)


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
    response = await client.request(method, path, json=new_account())
    assert response.status == 401


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_only_admins_manage_email_accounts(
    make_user: UserFactory, sessions: SessionFactory, role: Role, method: str, path: str
) -> None:
    user = await make_user(role)
    call = {"GET": user.get, "POST": user.post, "PATCH": user.patch, "DELETE": user.delete}
    response = await call[method](path, json=new_account())
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"
    assert await account_count(sessions) == 0


async def test_integration_tokens_may_not_manage_email_accounts(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "erp", Role.INTEGRATION)
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in ROUTES:
        response = await client.request(method, path, json=new_account(), headers=headers)
        assert response.status == 403, (method, path)
    assert await account_count(sessions) == 0


async def test_create_list_and_get_never_show_passwords(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Support")
    created = await json_of(await admin.post(PATH, json=new_account(queue_id=queue.id)), 201)
    assert (created["channel"], created["name"]) == ("email", "support")
    shown = created["settings"]
    assert shown["address"] == "support@example.com"
    assert (shown["imap_host"], shown["imap_port"], shown["imap_tls"]) == (
        "imap.example.com",
        993,
        "ssl",
    )
    assert (shown["smtp_host"], shown["smtp_port"], shown["smtp_tls"]) == (
        "smtp.example.com",
        587,
        "starttls",
    )
    assert shown["imap_password_set"] is True
    assert shown["smtp_password_set"] is True
    assert "imap_password" not in shown
    assert "smtp_password" not in shown
    assert created["queue_id"] == queue.id
    assert (shown["imap_folder"], shown["after_import"], shown["backfill_days"]) == (
        "INBOX",
        "leave",
        30,
    )
    assert (shown["use_idle"], shown["poll_seconds"], shown["move_to_folder"]) == (True, 60, None)
    assert created["enabled"] is True
    assert created["from_config"] is False
    assert created["health"] == "starting"
    assert created["webhooks"] == {}

    listed = await json_of(await admin.get(PATH), 200)
    assert [row["id"] for row in listed] == [created["id"]]
    one = await json_of(await admin.get(f"{PATH}/{created['id']}"), 200)
    assert one == listed[0]

    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, SMTP_SECRET)
    [row] = await audit_rows(sessions, "channel_account.create")
    assert row.actor_id == admin.operator.id
    assert row.entity_id == str(created["id"])
    assert IMAP_SECRET not in json.dumps(row.details)
    assert SMTP_SECRET not in json.dumps(row.details)
    assert [e.ids for e in events if e.type == "channel_account.created"] == [
        {"channel_account": created["id"]}
    ]


@pytest.mark.both_databases
async def test_several_accounts_and_a_unique_name(admin: User) -> None:
    await json_of(await admin.post(PATH, json=new_account()), 201)
    await json_of(
        await admin.post(
            PATH, json=new_account("sales", address="sales@example.com", imap_user="sales")
        ),
        201,
    )
    twin = await json_of(await admin.post(PATH, json=new_account()), 409)
    assert "name" in twin["error"]["fields"]
    listed = await json_of(await admin.get(PATH), 200)
    assert [row["name"] for row in listed] == ["sales", "support"]


async def test_patch_without_a_password_keeps_it(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    created = await json_of(await admin.post(PATH, json=new_account()), 201)
    path = f"{PATH}/{created['id']}"
    changed = await json_of(
        await admin.patch(path, json={"settings": {"imap_port": 143, "imap_tls": "starttls"}}),
        200,
    )
    assert (changed["settings"]["imap_port"], changed["settings"]["imap_tls"]) == (
        143,
        "starttls",
    )
    assert changed["settings"]["imap_password_set"] is True
    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, SMTP_SECRET)

    new_secret = "rotated-Secret-5150"
    rotated = await admin.patch(path, json={"settings": {"smtp_password": new_secret}})
    assert new_secret not in await rotated.text()
    assert await passwords(sessions, cipher, created["id"]) == (IMAP_SECRET, new_secret)
    cleared = await json_of(await admin.patch(path, json={"settings": {"imap_password": ""}}), 200)
    assert cleared["settings"]["imap_password_set"] is False
    assert cleared["settings"]["smtp_password_set"] is True

    updates = await audit_rows(sessions, "channel_account.update")
    assert [row.details["fields"] for row in updates] == [
        ["imap_port", "imap_tls"],
        ["smtp_password"],
        ["imap_password"],
    ]
    assert new_secret not in json.dumps([row.details for row in updates])
    assert [e.ids for e in events if e.type == "channel_account.updated"] == [
        {"channel_account": created["id"]}
    ] * 3
    unchanged = await json_of(await admin.patch(path, json={"settings": {"imap_port": 143}}), 200)
    assert unchanged["updated_at"] == cleared["updated_at"]
    assert len(await audit_rows(sessions, "channel_account.update")) == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"address": "not-an-address"}, "settings.address"),
        ({"address": "a b@example.com"}, "settings.address"),
        ({"imap_host": "imap example com"}, "settings.imap_host"),
        ({"smtp_host": ""}, "settings.smtp_host"),
        ({"imap_port": 0}, "settings.imap_port"),
        ({"smtp_port": 65536}, "settings.smtp_port"),
        ({"smtp_port": "587"}, "settings.smtp_port"),
        ({"imap_tls": "tls"}, "settings.imap_tls"),
        ({"smtp_tls": "SSL"}, "settings.smtp_tls"),
        ({"imap_user": ""}, "settings.imap_user"),
        ({"imap_password": "line\nbreak"}, "settings.imap_password"),
        ({"imap_folder": ""}, "settings.imap_folder"),
        ({"imap_folder": "Tab\there"}, "settings.imap_folder"),
        ({"after_import": "delete"}, "settings.after_import"),
        ({"after_import": "move"}, "settings.move_to_folder"),
        ({"after_import": "move", "move_to_folder": "INBOX"}, "settings.move_to_folder"),
        ({"poll_seconds": 0}, "settings.poll_seconds"),
        ({"backfill_days": -1}, "settings.backfill_days"),
        ({"use_idle": "sometimes"}, "settings.use_idle"),
        ({"imap_pasword": "typo"}, "settings.imap_pasword"),
        ({"display_name": "x" * 201}, "settings.display_name"),
    ],
)
async def test_invalid_settings_are_400_per_field(
    admin: User, sessions: SessionFactory, overrides: dict[str, Any], field: str
) -> None:
    body = await json_of(await admin.post(PATH, json=new_account(**overrides)), 400)
    assert field in body["error"]["fields"], body
    assert await account_count(sessions) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_account(name="  "), "name"),
        ({**new_account(), "queue_id": 999}, "queue_id"),
        ({**new_account(), "settings": {"address": "a@example.com"}}, "settings.imap_host"),
    ],
)
async def test_an_invalid_account_is_400(
    admin: User, sessions: SessionFactory, body: dict[str, Any], field: str
) -> None:
    response = await json_of(await admin.post(PATH, json=body), 400)
    assert field in response["error"]["fields"], response
    assert await account_count(sessions) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"settings": {"imap_port": None}}, "settings.imap_port"),
        ({"settings": {"imap_host": "bad host"}}, "settings.imap_host"),
        ({"settings": {"after_import": "move"}}, "settings.move_to_folder"),
        ({"settings": {"smtp_port": 99999}}, "settings.smtp_port"),
        ({"queue_id": 12345}, "queue_id"),
        ({"name": "renamed"}, "name"),
    ],
)
async def test_invalid_changes_are_400_and_change_nothing(
    admin: User, sessions: SessionFactory, changes: dict[str, Any], field: str
) -> None:
    created = await json_of(await admin.post(PATH, json=new_account()), 201)
    path = f"{PATH}/{created['id']}"
    body = await json_of(await admin.patch(path, json=changes), 400)
    assert field in body["error"]["fields"], body
    assert await json_of(await admin.get(path), 200) == created
    assert await audit_rows(sessions, "channel_account.update") == []


async def test_move_after_import_needs_a_folder(admin: User) -> None:
    created = await json_of(await admin.post(PATH, json=new_account()), 201)
    path = f"{PATH}/{created['id']}"
    moved = await json_of(
        await admin.patch(
            path, json={"settings": {"after_import": "move", "move_to_folder": "Imported"}}
        ),
        200,
    )
    assert (moved["settings"]["after_import"], moved["settings"]["move_to_folder"]) == (
        "move",
        "Imported",
    )
    body = await json_of(await admin.patch(path, json={"settings": {"move_to_folder": None}}), 400)
    assert "settings.move_to_folder" in body["error"]["fields"]


async def test_disable_and_enable_again(
    admin: User, sessions: SessionFactory, events: list[Event], cipher: CredentialCipher
) -> None:
    created = await json_of(await admin.post(PATH, json=new_account()), 201)
    path = f"{PATH}/{created['id']}"
    disabled = await json_of(await admin.delete(path), 200)
    assert (disabled["enabled"], disabled["health"]) == (False, "disabled")
    assert (await json_of(await admin.get(path), 200))["enabled"] is False
    # Disabling again is a no-op: the admin's intent holds either way.
    assert (await admin.delete(path)).status == 200
    [row] = await audit_rows(sessions, "channel_account.update")
    assert (row.entity_id, row.details["fields"]) == (str(created["id"]), ["enabled"])
    assert [e.ids for e in events if e.type == "channel_account.updated"] == [
        {"channel_account": created["id"]}
    ]

    enabled = await json_of(await admin.patch(path, json={"enabled": True}), 200)
    assert enabled["enabled"] is True
    assert (await passwords(sessions, cipher, created["id"]))[0] == IMAP_SECRET
    assert (await admin.delete(f"{PATH}/999")).status == 404
    assert (await admin.get(f"{PATH}/999")).status == 404
    assert (await admin.patch(f"{PATH}/999", json={"enabled": True})).status == 404
    assert (await admin.get(f"{PATH}/abc")).status == 404


async def test_check_logs_in_to_both_servers_and_says_which_refused(
    admin: User, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    user = dovecot.add_user("api-check")
    smtp_server.require_auth("relay", SMTP_SECRET)
    body = new_account(
        "checked",
        imap_host=dovecot.host,
        imap_port=dovecot.port,
        imap_tls="none",
        imap_user=user.login,
        imap_password=user.password,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_tls="none",
        smtp_user="relay",
    )
    created = await json_of(await admin.post(PATH, json=body), 201)
    path = f"{PATH}/{created['id']}"
    checked = await json_of(await admin.post(f"{path}/check"), 200)
    assert checked["ok"] is True, checked
    assert f"logged in as {user.login}, folder 'INBOX' selected" in checked["message"]
    assert (
        f"SMTP {smtp_server.host}:{smtp_server.port} (none): logged in as relay"
        in (checked["message"])
    )

    await json_of(await admin.patch(path, json={"settings": {"smtp_password": "wrong"}}), 200)
    smtp_refused = await json_of(await admin.post(f"{path}/check"), 200)
    assert smtp_refused["ok"] is False
    assert "SMTP" in smtp_refused["message"]
    assert "535" in smtp_refused["message"]
    await json_of(await admin.patch(path, json={"settings": {"imap_password": "wrong"}}), 200)
    imap_refused = await json_of(await admin.post(f"{path}/check"), 200)
    assert imap_refused["ok"] is False
    assert f"IMAP {dovecot.host}:{dovecot.port} (none): login failed" in imap_refused["message"]
    # Checking reads nothing and changes nothing: the account's health is the poller's.
    assert (await json_of(await admin.get(path), 200))["health"] == "starting"

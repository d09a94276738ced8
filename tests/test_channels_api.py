"""The channel interface from outside: channel metadata, channel accounts, provider webhooks.

A test-only channel (`tests/fake_channel.py`) joins the app with one line and gets its
accounts API, its encrypted secrets, its webhook route (authenticated before parsing), its
sender and its place in the console's metadata, with no edit anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.email.plugin import EmailChannel
from channels.registry import default_channels
from core.audit import CLI
from core.db import SessionFactory
from core.forms import create_form
from core.models import Interaction, Role
from core.settings import Settings
from tests.conftest import User, new_user
from tests.fake_channel import SIGNATURE_HEADER, FakeSms, sign
from web.app import create_app
from web.keys import METRICS

TOKEN = "token-of-the-fake-provider"


@pytest.fixture
def fake() -> FakeSms:
    return FakeSms()


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, fake: FakeSms) -> web.Application:
    return create_app(settings, background_workers=False, channels=[*default_channels(), fake])


async def admin_of(
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> User:
    return await new_user(server, sessions, aiohttp_client, Role.ADMIN)


async def add_account(admin: User, name: str = "main", **settings: Any) -> dict[str, Any]:
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={"channel": "fakesms", "name": name, "settings": {"token": TOKEN, **settings}},
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_the_console_learns_every_channel_and_what_it_can_send(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any, client: TestClient[Any, Any]
) -> None:
    assert (await client.get("/api/v1/channels")).status == 401
    operator = await new_user(server, sessions, aiohttp_client, Role.OPERATOR)
    listed = {item["name"]: item for item in await (await operator.get("/api/v1/channels")).json()}
    assert set(listed) == {"email", "webform", "api", "fakesms"}
    assert listed["fakesms"]["sends"] == ["text"]
    assert listed["fakesms"]["address_kind"] == "phone"
    assert listed["email"]["sends"] == ["html", "text"]
    assert listed["webform"]["can_send"] is False
    assert listed["webform"]["answered_by"] == "email"
    assert listed["api"]["can_send"] is False


async def test_an_account_keeps_its_secret_encrypted_and_never_shows_it(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    created = await add_account(admin)
    assert created["settings"] == {"sender_number": "+15550100", "token_set": True}
    assert created["webhooks"] == {
        "message": f"http://{admin.client.server.host}:{admin.client.server.port}"
        "/hooks/fakesms/main/message"
    }
    assert TOKEN not in json.dumps(created)
    async with sessions() as session:
        raw = await session.scalar(text("SELECT settings FROM channel_account"))
    assert TOKEN not in str(raw)
    # A change of another setting leaves the secret as it was.
    changed = await admin.patch(
        f"/api/v1/channel-accounts/{created['id']}", json={"settings": {"sender_number": "+1555"}}
    )
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["settings"]["sender_number"] == "+1555"
    async with sessions() as session:
        again = await session.scalar(text("SELECT settings FROM channel_account"))
    assert again != raw
    assert TOKEN not in str(again)
    checked = await admin.post(f"/api/v1/channel-accounts/{created['id']}/check")
    assert await checked.json() == {"ok": True, "message": "signed in as +1555"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "fax", "name": "x", "settings": {}}, "channel"),
        ({"channel": "webform", "name": "x", "settings": {}}, "channel"),
        ({"channel": "fakesms", "name": "x", "settings": {"token": "short"}}, "settings.token"),
        (
            {"channel": "fakesms", "name": "x", "settings": {"token": TOKEN, "pin": 1}},
            "settings.pin",
        ),
        ({"channel": "fakesms", "name": "a/b", "settings": {"token": TOKEN}}, "name"),
    ],
)
async def test_bad_accounts_are_400_naming_the_field(
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Any,
    body: dict[str, Any],
    field: str,
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    response = await admin.post("/api/v1/channel-accounts", json=body)
    assert response.status == 400, await response.text()
    assert field in (await response.json())["error"]["fields"]
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM channel_account")) == 0


async def test_only_admins_manage_accounts(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any
) -> None:
    supervisor = await new_user(server, sessions, aiohttp_client, Role.SUPERVISOR)
    assert (await supervisor.get("/api/v1/channel-accounts")).status == 403
    response = await supervisor.post(
        "/api/v1/channel-accounts",
        json={"channel": "fakesms", "name": "x", "settings": {"token": TOKEN}},
    )
    assert response.status == 403


async def stored(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Interaction)
                .where(Interaction.channel == "fakesms")
            )
            or 0
        )


def outcomes(app: web.Application) -> dict[str, float]:
    counter = app[METRICS].webhooks
    return {
        sample.labels["outcome"]: sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


async def test_a_webhook_authenticates_before_it_parses_and_stores_once(
    app: web.Application,
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Any,
    client: TestClient[Any, Any],
    fake: FakeSms,
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    await add_account(admin)
    path = "/hooks/fakesms/main/message"
    body = json.dumps({"id": "m-1", "from": "+1 212 555 0187", "text": "Hello"}).encode()

    for signature in ("", "0" * 64, sign("another-token", body)):
        response = await client.post(path, data=body, headers={SIGNATURE_HEADER: signature})
        assert response.status == 403
    assert fake.message_hook.parsed == 0  # nothing unsigned reached the parser
    assert await stored(sessions) == 0

    for _ in range(2):  # the provider re-delivers: stored once
        response = await client.post(path, data=body, headers={SIGNATURE_HEADER: sign(TOKEN, body)})
        assert response.status == 200, await response.text()
    assert await stored(sessions) == 1

    typing = json.dumps({"type": "typing"}).encode()
    response = await client.post(path, data=typing, headers={SIGNATURE_HEADER: sign(TOKEN, typing)})
    assert response.status == 200
    broken = b'{"id": "m-2"}'
    response = await client.post(path, data=broken, headers={SIGNATURE_HEADER: sign(TOKEN, broken)})
    assert response.status == 400
    assert "needs id, from and text" in (await response.json())["error"]["message"]
    assert await stored(sessions) == 1
    assert outcomes(app) == {"forbidden": 3, "stored": 2, "unsupported": 1, "malformed": 1}


async def test_webhooks_of_unknown_or_disabled_accounts_are_404(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any, client: TestClient[Any, Any]
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    created = await add_account(admin)
    body = b'{"id": "m-1", "from": "+12125550187", "text": "Hi"}'
    headers = {SIGNATURE_HEADER: sign(TOKEN, body)}
    for path in ("/hooks/fakesms/other/message", "/hooks/fakesms/main/status", "/hooks/fax/main/x"):
        assert (await client.post(path, data=body, headers=headers)).status == 404
    assert (await admin.delete(f"/api/v1/channel-accounts/{created['id']}")).status == 200
    assert (
        await client.post("/hooks/fakesms/main/message", data=body, headers=headers)
    ).status == 404
    assert await stored(sessions) == 0


async def test_web_forms_and_the_api_channel_take_input_only_through_their_channel(
    settings: Settings,
    engine: AsyncEngine,
    sessions: SessionFactory,
    aiohttp_server: Any,
    aiohttp_client: Any,
) -> None:
    """Their intake belongs to their channel: an application that does not run one answers
    404 for its pages and posts and stores nothing."""
    only_email = create_app(settings, background_workers=False, channels=[EmailChannel()])
    server = await aiohttp_server(only_email)
    async with sessions() as session, session.begin():
        await create_form(session, CLI, slug="contact", title="Contact us")
    anonymous = await aiohttp_client(server)
    for path in ("/forms/contact", "/forms/contact/embed", "/forms/contact/thanks"):
        assert (await anonymous.get(path)).status == 404, path
    posted = await anonymous.post(
        "/forms/contact", json={"email": "kim@example.com", "message": "Hi"}
    )
    assert posted.status == 404
    assert "web forms are not enabled" in (await posted.json())["error"]["message"]
    admin = await new_user(server, sessions, aiohttp_client, Role.ADMIN)
    body = {"external_id": "x-1", "contact": {"email": "kim@example.com"}, "text": "Hi"}
    refused = await admin.post("/api/v1/interactions", json=body)
    assert refused.status == 404
    assert "API channel is not enabled" in (await refused.json())["error"]["message"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 0

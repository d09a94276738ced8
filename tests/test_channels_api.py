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
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import counted
from channels.email.plugin import EmailChannel
from channels.registry import default_channels
from core.audit import CLI
from core.channel_accounts import HeardFrom, record_account_error
from core.db import SessionFactory
from core.event_types import CHANNEL_ACCOUNT_FAILED, RESYNC
from core.events import Event, EventBus
from core.forms import create_form
from core.models import Conversation, Interaction, OutboxItem, Role, utcnow
from core.outbox import OutboxWorker
from core.settings import Settings
from routing.engine import RoutingEngine
from tests.conftest import User, new_user
from tests.fake_channel import SIGNATURE_HEADER, FakeSms, sign
from web.app import create_app
from web.keys import BUS, ENGINE, METRICS, REGISTRY, SERVICES, SESSIONS

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
    assert set(listed) == {
        "email",
        "webform",
        "api",
        "twilio",
        "sms",
        "whatsapp",
        "voice",
        "telegram",
        "webchat",
        "fakesms",
    }
    assert listed["fakesms"]["sends"] == ["text"]
    assert listed["fakesms"]["address_kind"] == "phone"
    assert listed["email"]["sends"] == ["html", "text"]
    assert listed["webform"]["can_send"] is False
    assert listed["webform"]["answered_by"] == "email"
    assert listed["api"]["can_send"] is False
    # Twilio holds the accounts of SMS and WhatsApp; no conversation is ever on it.
    assert listed["twilio"]["carries_conversations"] is False
    assert listed["sms"]["carries_conversations"] is True
    # A call is answered in writing by SMS; it holds the operator's voice capacity.
    assert listed["voice"]["can_send"] is False
    assert listed["voice"]["answered_by"] == "sms"
    assert listed["voice"]["capacity_kind"] == "voice"


async def test_an_account_keeps_its_secret_encrypted_and_never_shows_it(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    created = await add_account(admin)
    assert created["settings"] == {"sender_number": "+15550100", "token_set": True}
    base = f"http://{admin.client.server.host}:{admin.client.server.port}"
    assert created["webhooks"] == {
        "message": f"{base}/hooks/fakesms/main/message",
        "status": f"{base}/hooks/fakesms/main/status",
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
    account = await add_account(admin)
    assert account["health"] == "starting"  # nothing heard from the provider yet
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
    # The provider's webhooks arrive: the account works, as /healthz and the API say.
    shown = await (await admin.get(f"/api/v1/channel-accounts/{account['id']}")).json()
    assert shown["health"] == "ok"


async def test_webhooks_of_unknown_or_disabled_accounts_are_404(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any, client: TestClient[Any, Any]
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    created = await add_account(admin)
    body = b'{"id": "m-1", "from": "+12125550187", "text": "Hi"}'
    headers = {SIGNATURE_HEADER: sign(TOKEN, body)}
    for path in ("/hooks/fakesms/other/message", "/hooks/fakesms/main/typing", "/hooks/fax/main/x"):
        assert (await client.post(path, data=body, headers=headers)).status == 404
    path = "/hooks/fakesms/main/message"
    assert (await client.post(path, data=body, headers=headers)).status == 200
    # The server keeps the account it read; disabling it is heard of at once all the same.
    assert (await admin.delete(f"/api/v1/channel-accounts/{created['id']}")).status == 200
    later = b'{"id": "m-2", "from": "+12125550187", "text": "Hi again"}'
    response = await client.post(path, data=later, headers={SIGNATURE_HEADER: sign(TOKEN, later)})
    assert response.status == 404
    assert await stored(sessions) == 1


async def test_a_webhook_checks_the_secret_the_account_has_now(
    server: TestServer, sessions: SessionFactory, aiohttp_client: Any, client: TestClient[Any, Any]
) -> None:
    admin = await admin_of(server, sessions, aiohttp_client)
    created = await add_account(admin)
    path = "/hooks/fakesms/main/message"
    first = b'{"id": "m-1", "from": "+12125550187", "text": "Hi"}'
    response = await client.post(path, data=first, headers={SIGNATURE_HEADER: sign(TOKEN, first)})
    assert response.status == 200
    changed = await admin.patch(
        f"/api/v1/channel-accounts/{created['id']}", json={"settings": {"token": "rotated-token"}}
    )
    assert changed.status == 200, await changed.text()
    second = b'{"id": "m-2", "from": "+12125550187", "text": "Hi again"}'
    response = await client.post(path, data=second, headers={SIGNATURE_HEADER: sign(TOKEN, second)})
    assert response.status == 403  # the old secret no longer signs
    response = await client.post(
        path, data=second, headers={SIGNATURE_HEADER: sign("rotated-token", second)}
    )
    assert response.status == 200
    assert await stored(sessions) == 2


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


async def signed_post(
    client: TestClient[Any, Any], hook: str, data: dict[str, Any]
) -> ClientResponse:
    body = json.dumps(data).encode()
    return await client.post(
        f"/hooks/fakesms/main/{hook}", data=body, headers={SIGNATURE_HEADER: sign(TOKEN, body)}
    )


async def test_webhooks_write_their_accounts_health_once_a_minute_and_at_once_after_an_error(
    app: web.Application,
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Any,
    client: TestClient[Any, Any],
) -> None:
    """Webhooks arriving say the account works (its health); within a minute of writing so,
    the server spares the write. An error recorded meanwhile (a failed send, in any process)
    is cleared by the very next webhook."""
    admin = await admin_of(server, sessions, aiohttp_client)
    account_id = (await add_account(admin))["id"]

    async def health() -> str:
        response = await admin.get(f"/api/v1/channel-accounts/{account_id}")
        return str((await response.json())["health"])

    async def hello(number: int) -> None:
        data = {"id": f"m-{number}", "from": "+1 212 555 0187", "text": f"Hello {number}"}
        assert (await signed_post(client, "message", data)).status == 200

    await hello(1)
    assert await health() == "ok"
    with counted(app[ENGINE]) as statements:
        for number in range(2, 6):
            await hello(number)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE CHANNEL_ACCOUNT")]
    assert len([s for s in statements if "INSERT INTO interaction" in s]) == 4

    async with app[SESSIONS]() as session, session.begin():
        await record_account_error(session, account_id, "the provider said no", utcnow())
    assert (await health()).startswith("error since")
    await hello(6)
    assert await health() == "ok"


def test_a_health_write_an_error_overtook_is_made_again() -> None:
    """The write was asked for before an error another process recorded, and committed
    after it: it is not the account's last word, so the next webhook writes again."""
    bus, moment = EventBus(), [0.0]
    heard = HeardFrom(bus, clock=lambda: moment[0])
    asked = heard.due(7)
    assert asked is not None
    moment[0] = 1.0
    bus.publish(Event(CHANNEL_ACCOUNT_FAILED, {"channel_account": 7}))
    heard.written(7, asked)
    moment[0] = 2.0
    asked = heard.due(7)
    assert asked is not None
    heard.written(7, asked)
    moment[0] = 61.9
    assert heard.due(7) is None  # written at 2.0: spared for a minute
    bus.publish(Event(RESYNC, {}))  # events may have been missed
    assert heard.due(7) is not None


async def test_a_channel_added_with_one_line_works_end_to_end(
    app: web.Application,
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Any,
    client: TestClient[Any, Any],
    fake: FakeSms,
) -> None:
    """Inbound through its webhook, routed by a rule that names it, answered by an operator
    through the API, delivered by the outbox worker through its own sender: nothing outside
    tests/ knows the channel."""
    admin = await admin_of(server, sessions, aiohttp_client)
    operator = await new_user(server, sessions, aiohttp_client, Role.OPERATOR)
    queues = {}
    for name in ("General", "Texts"):
        response = await admin.post("/api/v1/queues", json={"name": name})
        queues[name] = (await response.json())["id"]
    await admin.put(
        f"/api/v1/queues/{queues['Texts']}/members", json={"operator_ids": [operator.operator.id]}
    )
    await admin.patch(
        f"/api/v1/operators/{operator.operator.id}", json={"capacity": {"messaging": 3}}
    )
    assert (await operator.put("/api/v1/operators/me/presence", json={"presence": "available"})).ok
    # Routing rules may name it, since the application runs it.
    rules = await admin.put(
        "/api/v1/routing/queue-rules",
        json={
            "rules": {
                "default_queue_id": queues["General"],
                "rules": [{"name": "texts", "channels": ["fakesms"], "queue_id": queues["Texts"]}],
            }
        },
    )
    assert rules.status == 200, await rules.text()
    await add_account(admin)

    received = await signed_post(
        client, "message", {"id": "m-1", "from": "+1 212 555 0187", "text": "Is it in stock?"}
    )
    assert received.status == 200, await received.text()
    await RoutingEngine(app[SESSIONS], app[BUS]).run_once()
    async with sessions() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.channel == "fakesms")
        )
    assert conversation is not None
    assert conversation.queue_id == queues["Texts"]
    assert conversation.assignee_id == operator.operator.id
    log = await (await operator.get(f"/api/v1/conversations/{conversation.id}/routing")).json()
    assert log["items"][0]["reason"] == "queue Texts: rule 1: channel fakesms"

    # The operator answers on the conversation's own channel, to the customer's number.
    reply = await operator.post(
        f"/api/v1/conversations/{conversation.id}/reply", json={"text": "Yes, 3 left."}
    )
    assert reply.status == 201, await reply.text()
    outbox = (await reply.json())["outbox"]
    assert (outbox["channel"], outbox["recipient"]) == ("fakesms", "+12125550187")
    worker = OutboxWorker(app[SESSIONS], app[REGISTRY].senders(app[SERVICES]), app[BUS])
    assert await worker.run_once() == 1
    assert [(sent.recipient, sent.payload["text"]) for sent in fake.outbox.sent] == [
        ("+12125550187", "Yes, 3 left.")
    ]
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox["id"])
    assert item is not None
    assert (item.status, item.provider_id) == ("sent", f"fake-{outbox['id']}")

    # And the console knows how to show and offer it.
    listed = {c["name"]: c for c in await (await operator.get("/api/v1/channels")).json()}
    assert (listed["fakesms"]["label"], listed["fakesms"]["can_send"]) == ("Fake SMS", True)


async def test_the_channel_reports_delivery_receipts_through_core(
    app: web.Application,
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Any,
    client: TestClient[Any, Any],
    fake: FakeSms,
) -> None:
    """The channel reports receipts through core's one receipt function, applied by rank."""
    admin = await admin_of(server, sessions, aiohttp_client)
    await add_account(admin)
    received = await signed_post(
        client, "message", {"id": "m-1", "from": "+12125550187", "text": "Hello?"}
    )
    assert received.status == 200
    async with sessions() as session:
        conversation_id = await session.scalar(select(Conversation.id))
    reply = await admin.post(f"/api/v1/conversations/{conversation_id}/reply", json={"text": "Hi"})
    outbox_id = (await reply.json())["outbox"]["id"]
    worker = OutboxWorker(app[SESSIONS], app[REGISTRY].senders(app[SERVICES]), app[BUS])
    assert await worker.run_once() == 1
    for status in ("delivered", "sent"):  # an out-of-order "sent" does not move it back
        answer = await signed_post(client, "status", {"id": f"fake-{outbox_id}", "status": status})
        assert answer.status == 200, await answer.text()
    shown = await (await admin.get(f"/api/v1/conversations/{conversation_id}/outbox")).json()
    assert "delivered" in json.dumps(shown)

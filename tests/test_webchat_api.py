"""The website chat's HTTP side, as the widget calls it from a customer's website."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import FormData, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.db import SessionFactory
from core.models import (
    Contact,
    Identity,
    IdentityKind,
    Interaction,
    OutboxItem,
    Presence,
    Role,
)
from core.operators import set_presence
from core.outbox import OutboxWorker
from tests.conftest import User, UserFactory
from web.keys import REGISTRY, SERVICES

SITE = "https://shop.example"
OTHER_SITE = "https://evil.example"


async def add_widget(make_user: UserFactory, name: str = "shop", **settings: Any) -> User:
    admin = await make_user(Role.ADMIN, name="Anna Novak")
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={
            "channel": "webchat",
            "name": name,
            "settings": {"allowed_origins": [SITE], **settings},
        },
    )
    assert response.status == 201, await response.text()
    return admin


async def available(sessions: SessionFactory, user: User) -> None:
    async with sessions() as session, session.begin():
        operator = await session.merge(user.operator)
        await set_presence(session, operator, Presence.AVAILABLE, None)


class Widget:
    """The widget in a visitor's browser on `origin`."""

    def __init__(self, client: TestClient[Any, Any], origin: str = SITE, account: str = "shop"):
        self.client = client
        self.origin = origin
        self.base = f"/webchat/{account}"
        self.token: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        found = {"Origin": self.origin, **extra}
        if self.token:
            found["Authorization"] = f"Bearer {self.token}"
        return found

    async def start(self, status: int = 200, **body: Any) -> Any:
        response = await self.client.post(
            f"{self.base}/session",
            json={"visitor_token": self.token, "languages": ["en"], **body},
            headers={"Origin": self.origin},
        )
        assert response.status == status, await response.text()
        data = await response.json()
        if status == 200:
            self.token = data["visitor_token"]
        return data

    async def say(self, text: str, client_id: str, status: int = 201, **headers: str) -> Any:
        response = await self.client.post(
            f"{self.base}/messages",
            json={"client_id": client_id, "text": text},
            headers=self.headers(**headers),
        )
        assert response.status == status, await response.text()
        return await response.json()

    async def messages(self, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{self.base}/messages?after={after}", headers=self.headers()
        )
        assert response.status == 200, await response.text()
        return list((await response.json())["items"])

    async def post(self, endpoint: str, status: int, **kwargs: Any) -> Any:
        headers = self.headers(**kwargs.pop("headers", {}))
        response = await self.client.post(f"{self.base}/{endpoint}", headers=headers, **kwargs)
        assert response.status == status, await response.text()
        return await response.json() if response.content_type == "application/json" else None


async def deliver_all(app: web.Application) -> None:
    senders = app[REGISTRY].senders(app[SERVICES])
    await OutboxWorker(app[SERVICES].sessions, senders, poll_seconds=0.05).run_once()


async def conversation_of(sessions: SessionFactory) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction.conversation_id)
            .where(Interaction.channel == "webchat")
            .order_by(Interaction.id)
            .limit(1)
        )
    assert found is not None
    return found


async def test_a_visitor_chats_with_an_operator_and_reads_only_their_own_chat(
    app: web.Application,
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
) -> None:
    admin = await add_widget(make_user)
    await available(sessions, admin)
    visitor = Widget(client)
    started = await visitor.start()
    assert started["online"] is True
    assert started["locale"] == "en"
    assert started["config"]["prechat"] == "optional"

    first = await visitor.say("Do you ship to Tbilisi?", "client-0001")
    assert first["direction"] == "in"
    (account,) = await (await admin.get("/api/v1/channel-accounts")).json()
    assert account["health"] == "ok"  # its visitors' messages arrive
    # The widget sends again after a lost answer: stored once.
    again = await visitor.say("Do you ship to Tbilisi?", "client-0001", status=200)
    assert again["id"] == first["id"]

    conversation = await conversation_of(sessions)
    note = await admin.post(f"/api/v1/conversations/{conversation}/notes", json={"text": "VIP?"})
    assert note.status == 201, await note.text()
    answer = await admin.post(
        f"/api/v1/conversations/{conversation}/reply", json={"text": "Yes, in 3 days."}
    )
    assert answer.status == 201, await answer.text()
    await deliver_all(app)

    shown = await visitor.messages()
    assert [(item["direction"], item["text"]) for item in shown] == [
        ("in", "Do you ship to Tbilisi?"),
        ("out", "Yes, in 3 days."),
    ]  # the internal note is not there
    assert shown[1]["author"] == "Anna Novak"
    assert set(shown[1]) == {
        "id", "client_id", "direction", "text", "author", "at", "read", "attachments"
    }  # fmt: skip

    await visitor.post("read", 204, json={"up_to": shown[1]["id"]})
    assert (await visitor.messages())[1]["read"] is True
    async with sessions() as session:
        receipt = await session.scalar(select(OutboxItem.receipt))
    assert receipt == "read"

    # Another visitor of the same website sees nothing of it.
    stranger = Widget(client)
    await stranger.start()
    assert await stranger.messages() == []


async def test_requests_are_refused_before_anything_is_read(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    await add_widget(make_user)
    await add_widget(make_user, name="other")
    assert (await Widget(client, OTHER_SITE).start(status=403))["error"]["code"] == "forbidden"
    assert (await Widget(client, account="nope").start(status=404))["error"]["code"]
    visitor = Widget(client)
    await visitor.start()

    # No token, a forged one, another widget's: 401, even with a body that is not JSON.
    for token in (None, "1.AAAAAAAAAAAAAAAAAAAAAA.forged", None):
        response = await client.post(
            "/webchat/shop/messages",
            data=b"{not json",
            headers={"Origin": SITE, **({"Authorization": f"Bearer {token}"} if token else {})},
        )
        assert response.status == 401, await response.text()
    other = Widget(client, account="other")
    await other.start()
    stolen = Widget(client)
    stolen.token = other.token
    await stolen.say("hi", "client-0002", status=401)
    # The right token from a foreign website: 403.
    visitor.origin = OTHER_SITE
    await visitor.say("hi", "client-0003", status=403)
    async with sessions() as session:
        assert await session.scalar(select(Interaction.id)) is None


async def test_an_admins_change_to_the_widget_applies_to_the_next_request(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    """The server keeps the widget's account between requests; a change made through the
    API (allowed websites, disabling) still holds from the very next request."""
    admin = await add_widget(make_user)
    visitor = Widget(client)
    await visitor.start()
    await visitor.say("hi", "client-0001")
    account_id = (await (await admin.get("/api/v1/channel-accounts")).json())[0]["id"]
    moved = await admin.patch(
        f"/api/v1/channel-accounts/{account_id}",
        json={"settings": {"allowed_origins": [OTHER_SITE]}},
    )
    assert moved.status == 200, await moved.text()
    await visitor.say("still there?", "client-0002", status=403)
    visitor.origin = OTHER_SITE
    await visitor.say("moved with the shop", "client-0003")
    assert (await admin.delete(f"/api/v1/channel-accounts/{account_id}")).status == 200
    await visitor.say("hello?", "client-0004", status=404)


async def test_cors_answers_only_the_widgets_own_websites(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    await add_widget(make_user)
    allowed = await client.options(
        "/webchat/shop/messages",
        headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
    )
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    # A file's address is deeper: its preflight too.
    deeper = await client.options(
        "/webchat/shop/attachments/7/0",
        headers={"Origin": SITE, "Access-Control-Request-Method": "GET"},
    )
    assert deeper.status == 204
    assert deeper.headers["Access-Control-Allow-Origin"] == SITE
    refused = await client.options(
        "/webchat/shop/messages",
        headers={"Origin": OTHER_SITE, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    started = await client.post("/webchat/shop/session", json={}, headers={"Origin": SITE})
    assert started.headers["Access-Control-Allow-Origin"] == SITE


async def test_the_prechat_form_answers_in_the_visitors_language_and_joins_their_history(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    from core.identity import Address
    from core.ingest import InboundEvent, ingest

    async with sessions() as session, session.begin():
        earlier = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<order@shop.example>",
                addresses=[Address(IdentityKind.EMAIL, "kim@example.com")],
                subject="My order",
                text="Where is my order?",
            ),
        )
    await add_widget(make_user, prechat="required", consent_text="I agree to be contacted")
    visitor = Widget(client)
    started = await visitor.start(languages=["de-DE", "de"])
    assert started["locale"] == "de"
    assert started["online"] is False  # nobody is available
    assert started["offline_reason"] == "nobody"

    body = await visitor.post(
        "prechat",
        400,
        json={"name": "Kim", "email": "not an address", "consent": False},
        headers={"Accept-Language": "de"},
    )
    fields = body["error"]["fields"]
    assert set(fields) == {"email", "consent"}
    assert fields["email"] != "this is not an email address"  # in German

    done = await visitor.post(
        "prechat", 200, json={"name": "Kim", "email": "KIM@example.com", "consent": True}
    )
    assert done["visitor"]["email"] == "kim@example.com"
    await visitor.say("Hallo, ist meine Bestellung unterwegs?", "client-0004")
    async with sessions() as session:
        owner = await session.scalar(
            select(Identity.contact_id).where(Identity.kind == IdentityKind.WEB)
        )
        contact = await session.get(Contact, earlier.contact_id)
    assert owner == earlier.contact_id  # the chat joins Kim's email history
    assert contact is not None
    assert contact.custom_fields["webchat_prechat"]["consent"] is True
    # What the visitor reads is still only their chat, not Kim's emails.
    assert [item["text"] for item in await visitor.messages()] == [
        "Hallo, ist meine Bestellung unterwegs?"
    ]


async def test_attachments_are_checked_for_size_and_type_and_served_to_their_visitor_only(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    await add_widget(make_user, max_attachment_bytes=2048, attachment_types=["image/png"])
    visitor = Widget(client)
    await visitor.start()

    def form(data: bytes, content_type: str, client_id: str) -> FormData:
        found = FormData()
        found.add_field("client_id", client_id)
        found.add_field("text", "see the picture")
        found.add_field("file", data, filename="box.png", content_type=content_type)
        return found

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    sent = await visitor.post("attachments", 201, data=form(png, "image/png", "client-0005"))
    assert sent["text"] == "see the picture"
    url = sent["attachments"][0]["url"]
    got = await client.get(url, headers=visitor.headers())
    assert got.status == 200
    assert await got.read() == png
    stranger = Widget(client)
    await stranger.start()
    assert (await client.get(url, headers=stranger.headers())).status == 404

    await visitor.post("attachments", 413, data=form(b"x" * 4096, "image/png", "client-0006"))
    await visitor.post("attachments", 400, data=form(b"%PDF", "application/pdf", "client-0007"))


async def test_typing_reaches_the_other_side_live(
    app: web.Application,
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
) -> None:
    admin = await add_widget(make_user)
    visitor = Widget(client)
    await visitor.start()
    await visitor.say("Hello", "client-0008")
    conversation = await conversation_of(sessions)
    async with client.ws_connect(
        f"/webchat/shop/live?token={visitor.token}", headers={"Origin": SITE}
    ) as live:
        typing = await admin.post(
            f"/api/v1/conversations/{conversation}/typing", json={"typing": True}
        )
        assert typing.status == 204, await typing.text()
        message = await asyncio.wait_for(live.receive_json(), 5)
        assert message == {"type": "typing", "typing": True, "author": "Anna Novak"}
        reply = await admin.post(
            f"/api/v1/conversations/{conversation}/reply", json={"text": "How can I help?"}
        )
        assert reply.status == 201
        message = await asyncio.wait_for(live.receive_json(), 5)
        assert message["type"] == "message"
        assert message["message"]["text"] == "How can I help?"
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect(
            f"/webchat/shop/live?token={visitor.token}", headers={"Origin": OTHER_SITE}
        )
    assert refused.value.status == 403


async def test_a_transcript_goes_only_to_the_email_the_visitor_gave(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    await add_widget(make_user)
    visitor = Widget(client)
    await visitor.start()
    await visitor.say("Hi", "client-0009")
    refused = await visitor.post("transcript", 400)
    assert "email" in refused["error"]["fields"]
    await visitor.post("prechat", 200, json={"email": "kim@example.com"})
    await visitor.post("transcript", 202)
    async with sessions() as session:
        item = await session.scalar(select(OutboxItem).where(OutboxItem.channel == "email"))
    assert item is not None
    assert item.recipient == "kim@example.com"
    assert "You: Hi" in item.payload["text"]


async def test_a_flood_of_messages_is_slowed_down(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    await add_widget(make_user)
    visitor = Widget(client)
    await visitor.start()
    statuses = []
    for n in range(25):
        response = await client.post(
            "/webchat/shop/messages",
            json={"client_id": f"flood-{n:04d}", "text": "spam"},
            headers=visitor.headers(),
        )
        statuses.append(response.status)
    assert statuses.count(201) == 20
    assert set(statuses[20:]) == {429}


async def test_outside_business_hours_the_widget_says_when_the_team_is_back(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    from datetime import UTC, datetime

    from core.audit import CLI
    from core.clock import ManualClock, using
    from routing.setup import create_queue

    async with sessions() as session, session.begin():
        queue = await create_queue(
            session,
            CLI,
            name="Shop",
            config={"business_hours": {"timezone": "UTC", "weekly": {"mon": ["09:00-17:00"]}}},
        )
    admin = await add_widget(make_user)
    (account,) = await (await admin.get("/api/v1/channel-accounts")).json()
    changed = await admin.patch(
        f"/api/v1/channel-accounts/{account['id']}", json={"queue_id": queue.id}
    )
    assert changed.status == 200, await changed.text()
    await available(sessions, admin)
    sunday = datetime(2030, 6, 2, 12, 0, tzinfo=UTC)
    with using(ManualClock(sunday)):
        started = await Widget(client).start()
    assert started["online"] is False
    assert started["offline_reason"] == "closed"
    assert started["opens_at"].startswith("2030-06-03T09:00")


async def test_the_admin_gets_the_snippet_and_the_widget_files_load_on_any_website(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    admin = await add_widget(make_user)
    accounts = await (await admin.get("/api/v1/channel-accounts")).json()
    snippet = accounts[0]["embed"]
    assert snippet.startswith('<script type="module" src="')
    assert "/static/widget/widget.js?account=shop" in snippet
    script = await client.get("/static/widget/widget.js", headers={"Origin": OTHER_SITE})
    assert script.status == 200
    assert script.headers["Access-Control-Allow-Origin"] == "*"
    assert "javascript" in script.content_type


async def test_a_widget_open_before_the_first_message_hears_the_answer_live(
    client: TestClient[Any, Any], make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await add_widget(make_user)
    visitor = Widget(client)
    await visitor.start()
    async with client.ws_connect(
        f"/webchat/shop/live?token={visitor.token}", headers={"Origin": SITE}
    ) as live:
        sent = await visitor.say("Anyone there?", "client-0010")
        echo = await asyncio.wait_for(live.receive_json(), 5)  # their own, for other tabs
        assert echo["message"]["id"] == sent["id"]
        other = Widget(client)
        await other.start()
        await other.say("Not for the first visitor", "client-0011")
        conversation = await conversation_of(sessions)
        reply = await admin.post(
            f"/api/v1/conversations/{conversation}/reply", json={"text": "Yes, Anna here."}
        )
        assert reply.status == 201
        heard = await asyncio.wait_for(live.receive_json(), 5)
        assert heard["message"]["text"] == "Yes, Anna here."


async def test_the_try_page_shows_the_widget_of_the_demo(
    client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    from web.demo import DemoServices, load_demo

    demo = DemoServices.in_memory()
    async with sessions() as session, session.begin():
        await load_demo(session, demo)
    page = await client.get("/webchat/website/try", headers={"Accept-Language": "ru"})
    assert page.status == 200
    html = await page.text()
    assert '<script type="module" src="/static/widget/widget.js?account=website">' in html
    assert "Попробуйте чат на сайте" in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    # The demo's widget may be shown on the demo server itself.
    started = await client.post(
        "/webchat/website/session", json={}, headers={"Origin": "http://127.0.0.1:8080"}
    )
    assert started.status == 200
    assert (await client.get("/webchat/nope/try")).status == 404

"""Web forms: the public pages and submissions, and forms administration."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from core import clock
from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.event_types import RESYNC
from core.events import Event, EventBus
from core.forms import FormCache, create_form, update_form
from core.models import (
    AuditEntry,
    Contact,
    Conversation,
    Identity,
    Interaction,
    Lead,
    RateLimitCount,
    Role,
    WebForm,
)
from routing.setup import create_queue
from tests.conftest import UserFactory
from web.app import create_app

Client = TestClient[Any, Any]


async def make_form(sessions: SessionFactory, slug: str = "contact", **settings: Any) -> WebForm:
    async with sessions() as session, session.begin():
        return await create_form(session, CLI, slug=slug, **settings)


async def count(sessions: SessionFactory, model: type) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def stored_nothing(sessions: SessionFactory) -> bool:
    counts = [await count(sessions, model) for model in (Interaction, Contact, Lead, Conversation)]
    return counts == [0, 0, 0, 0]


# Submissions


@pytest.mark.both_databases
async def test_json_submission_is_stored_with_custom_fields_in_the_forms_queue(
    client: Client, sessions: SessionFactory
) -> None:
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Sales")
    await make_form(sessions, queue_id=queue.id, title="Ask sales")
    response = await client.post(
        "/forms/contact",
        json={
            "name": "Anna Schmidt",
            "email": " Anna@Example.COM ",
            "phone": "+49 30 1234567",
            "message": "Do you ship to Austria?",
            "company": "Schmidt GmbH",
            "interests": ["pumps", "valves"],
        },
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["status"] == "received"
    async with sessions() as session:
        interaction = await session.get(Interaction, body["interaction_id"])
        conversation = await session.get(Conversation, body["conversation_id"])
        contact = await session.get(Contact, body["contact_id"])
        rows = (await session.execute(select(Identity.kind, Identity.address))).all()
    identities = {(kind, address) for kind, address in rows}
    assert interaction is not None
    assert conversation is not None
    assert contact is not None
    assert (interaction.channel, interaction.kind, interaction.direction) == (
        "webform",
        "form",
        "in",
    )
    assert interaction.text == "Do you ship to Austria?"
    custom = {"company": "Schmidt GmbH", "interests": "pumps, valves"}
    assert interaction.meta["fields"] == custom
    assert interaction.meta["form"]["slug"] == "contact"
    assert conversation.queue_id == queue.id
    assert conversation.subject == "Ask sales"
    assert contact.display_name == "Anna Schmidt"
    assert contact.custom_fields == custom
    assert identities == {("email", "anna@example.com"), ("phone", "+49301234567")}


async def test_browser_post_redirects_to_the_built_in_thanks_page(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    response = await client.post(
        "/forms/contact",
        data={"email": "ben@example.com", "message": "Hello"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/forms/contact/thanks"
    assert await count(sessions, Interaction) == 1
    thanks = await client.get("/forms/contact/thanks")
    assert thanks.status == 200
    assert "Thank you" in await thanks.text()


async def test_browser_post_redirects_to_the_forms_thank_you_url(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, thank_you_url="https://shop.example.com/thanks?from=form")
    response = await client.post(
        "/forms/contact",
        data={"email": "ben@example.com", "message": "Hello"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "https://shop.example.com/thanks?from=form"


async def test_multipart_submission_is_stored(client: Client, sessions: SessionFactory) -> None:
    await make_form(sessions)
    data = aiohttp.FormData(
        {"email": "cara@example.com", "message": "Call me", "order": "A-17"},
        default_to_multipart=True,
    )
    response = await client.post("/forms/contact", data=data, allow_redirects=False)
    assert response.status == 303
    async with sessions() as session:
        interaction = await session.scalar(select(Interaction))
    assert interaction is not None
    assert interaction.text == "Call me"
    assert interaction.meta["fields"] == {"order": "A-17"}


async def test_a_file_upload_is_refused_and_nothing_stored(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    data = aiohttp.FormData({"email": "cara@example.com", "message": "see attachment"})
    data.add_field("cv", b"%PDF-1.4", filename="cv.pdf", content_type="application/pdf")
    response = await client.post("/forms/contact", data=data)
    assert response.status == 400
    assert "cv" in (await response.json())["error"]["fields"]
    assert await stored_nothing(sessions)


async def test_missing_required_fields_are_named_one_by_one(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, required_fields=["name", "email", "message"])
    for post in (
        client.post("/forms/contact", json={"phone": "+4930123456", "message": "  "}),
        client.post("/forms/contact", data={"phone": "+4930123456"}),
    ):
        response = await post
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "invalid_input"
        assert set(error["fields"]) == {"name", "email", "message"}
        assert error["fields"]["name"] == "this field is required"
    assert await stored_nothing(sessions)


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"email": "not-an-email", "message": "hi"}, "email"),
        ({"email": "a@example.com", "phone": "12", "message": "hi"}, "phone"),
        (
            {"email": "a@example.com", "message": "hi", "submission_id": "has spaces"},
            "submission_id",
        ),
        ({"email": "a@example.com", "message": "hi", "note": "x" * 2001}, "note"),
        ({"email": "a@example.com", "message": "hi", "nested": {"a": 1}}, "nested"),
        ({"email": "a@example.com", "message": "nul \x00 byte"}, "message"),
    ],
)
async def test_invalid_fields_are_400_and_store_nothing(
    client: Client, sessions: SessionFactory, fields: dict[str, Any], bad_field: str
) -> None:
    await make_form(sessions, required_fields=["message"])
    response = await client.post("/forms/contact", json=fields)
    assert response.status == 400
    assert bad_field in (await response.json())["error"]["fields"]
    assert await stored_nothing(sessions)


async def test_an_email_or_a_phone_is_needed(client: Client, sessions: SessionFactory) -> None:
    await make_form(sessions, required_fields=["message"])
    response = await client.post("/forms/contact", json={"name": "Nobody", "message": "hi"})
    assert response.status == 400
    assert set((await response.json())["error"]["fields"]) == {"email", "phone"}
    by_phone = await client.post(
        "/forms/contact", json={"phone": "(202) 555-0143", "message": "hi"}
    )
    assert by_phone.status == 201
    async with sessions() as session:
        assert await session.scalar(select(Identity.address)) == "+12025550143"


async def test_too_many_custom_fields_is_400(client: Client, sessions: SessionFactory) -> None:
    await make_form(sessions)
    fields = {"email": "a@example.com", "message": "hi"}
    allowed = {**fields, **{f"extra{n}": "x" for n in range(50)}}
    too_many = {**fields, **{f"extra{n}": "x" for n in range(51)}}
    response = await client.post("/forms/contact", json=too_many)
    assert response.status == 400
    assert "too many fields" in (await response.json())["error"]["message"]
    assert await stored_nothing(sessions)
    assert (await client.post("/forms/contact", json=allowed)).status == 201


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b"{not json", 400),
        ("application/json", b'["a", "list"]', 400),
        ("application/json", b"[" * 100_000, 400),
        ("application/x-www-form-urlencoded; charset=no-such-charset", b"email=a%40b.cd", 400),
        ("multipart/form-data; boundary=x", b"--x\r\nbroken", 400),
        ("text/plain", b"email=a@example.com", 415),
        ("application/octet-stream", b"\x00\xff", 415),
    ],
)
async def test_unreadable_bodies_get_a_json_error(
    client: Client, sessions: SessionFactory, content_type: str, body: bytes, status: int
) -> None:
    await make_form(sessions)
    response = await client.post(
        "/forms/contact", data=body, headers={"Content-Type": content_type}
    )
    assert response.status == status
    assert set((await response.json())["error"]) == {"code", "message", "fields"}
    assert await stored_nothing(sessions)


async def test_unknown_and_inactive_forms_are_404(client: Client, sessions: SessionFactory) -> None:
    form = await make_form(sessions, slug="old")
    async with sessions() as session, session.begin():
        stored = await session.get(WebForm, form.id)
        assert stored is not None
        stored.active = False
    for path in (
        "/forms/old",
        "/forms/nope",
        "/forms/%00",
        "/forms/old/embed",
        "/forms/nope/thanks",
    ):
        page = await client.get(path)
        assert page.status == 404, path
        assert (await page.json())["error"]["code"] == "not_found"
    response = await client.post("/forms/old", json={"email": "a@example.com", "message": "hi"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    assert await stored_nothing(sessions)


# Double submits, spam and flooding


@pytest.mark.both_databases
async def test_a_double_submit_is_one_interaction_with_the_same_answer(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions)
    fields = {"email": "dora@example.com", "message": "Hi", "submission_id": "render-1"}
    first = await client.post("/forms/contact", json=fields)
    again = await client.post("/forms/contact", json=fields)
    assert (first.status, again.status) == (201, 200)
    assert await first.json() == await again.json()
    browser = [
        await client.post(
            "/forms/contact", data={**fields, "submission_id": "render-2"}, allow_redirects=False
        )
        for _ in range(2)
    ]
    assert [response.status for response in browser] == [303, 303]
    assert {response.headers["Location"] for response in browser} == {"/forms/contact/thanks"}
    assert await count(sessions, Interaction) == 2
    assert await count(sessions, Contact) == 1


@pytest.mark.both_databases
async def test_two_simultaneous_submits_are_one_interaction_and_both_succeed(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, create_lead=True)
    fields = {"email": "eve@example.com", "message": "Quote please", "submission_id": "same"}
    responses = await asyncio.gather(
        client.post("/forms/contact", json=fields), client.post("/forms/contact", json=fields)
    )
    assert sorted(response.status for response in responses) == [200, 201]
    bodies = [await response.json() for response in responses]
    assert bodies[0] == bodies[1]
    assert await count(sessions, Interaction) == 1
    assert await count(sessions, Contact) == 1
    assert await count(sessions, Lead) == 1


async def test_a_filled_honeypot_answers_success_and_stores_nothing(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, create_lead=True)
    spam = {"email": "bot@example.com", "message": "cheap pills", "website": "http://spam"}
    as_json = await client.post("/forms/contact", json=spam)
    assert as_json.status == 201
    assert (await as_json.json())["status"] == "received"
    as_browser = await client.post("/forms/contact", data=spam, allow_redirects=False)
    assert as_browser.status == 303
    assert as_browser.headers["Location"] == "/forms/contact/thanks"
    assert await stored_nothing(sessions)


# Mid-minute: PostgreSQL counts in fixed minutes, which a test must not straddle.
MID_MINUTE = datetime(2030, 6, 1, 12, 0, 30, tzinfo=UTC)


@pytest.mark.both_databases  # counted in the database on PostgreSQL, in memory on SQLite
async def test_more_posts_than_the_per_minute_limit_get_429(
    client: Client, sessions: SessionFactory, settings: Any
) -> None:
    await make_form(sessions)
    spam = {"email": "bot@example.com", "message": "again", "website": "x"}
    limit = settings.form_rate_limit_per_minute
    with clock.using(clock.ManualClock(MID_MINUTE)):
        for _ in range(limit):
            assert (await client.post("/forms/contact", json=spam)).status == 201
        response = await client.post(
            "/forms/contact", json={"email": "human@example.com", "message": "hello"}
        )
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert (await response.json())["error"]["code"] == "rate_limited"
    assert await stored_nothing(sessions)
    # Reading the form is not limited.
    assert (await client.get("/forms/contact")).status == 200


@pytest.mark.postgresql_only
async def test_server_processes_sharing_a_database_share_the_limit(
    settings: Any,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    await make_form(sessions)
    first, second = [
        await aiohttp_client(await aiohttp_server(create_app(settings, background_workers=False)))
        for _ in range(2)
    ]
    spam = {"email": "bot@example.com", "message": "again", "website": "x"}
    limit = settings.form_rate_limit_per_minute
    with clock.using(clock.ManualClock(MID_MINUTE)):
        answers = [
            (await (first if number % 2 else second).post("/forms/contact", json=spam)).status
            for number in range(limit + 2)
        ]
        with clock.using(clock.ManualClock(MID_MINUTE + timedelta(minutes=1))):
            next_minute = (await first.post("/forms/contact", json=spam)).status
            # A process counts a client's first few posts of a window itself (its share,
            # under half the limit): a client that stays below it leaves no row.
            async with sessions() as session:
                rows = await session.scalar(select(func.count()).select_from(RateLimitCount))
            assert rows == 1  # the first minute's
            for _ in range(limit // 2):
                await first.post("/forms/contact", json=spam)
        with clock.using(clock.ManualClock(MID_MINUTE + timedelta(minutes=2))):
            for _ in range(limit // 2 + 1):
                await second.post("/forms/contact", json=spam)
    assert answers == [201] * limit + [429, 429]
    assert next_minute == 201
    # A new window clears those that ended before the last one.
    async with sessions() as session:
        kept = await session.scalars(select(RateLimitCount.window_started_at))
        assert sorted(kept) == [
            MID_MINUTE + timedelta(seconds=30),
            MID_MINUTE + timedelta(seconds=90),
        ]


# Leads and marketing source


async def test_a_lead_form_records_where_the_customer_came_from(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, slug="quote", create_lead=True)
    response = await client.post(
        "/forms/quote",
        data={
            "email": "finn@example.com",
            "message": "Price for 40 pumps?",
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": "spring",
        },
        headers={"Referer": "https://blog.example.org/pumps"},
        allow_redirects=False,
    )
    assert response.status == 303
    async with sessions() as session:
        lead = await session.scalar(select(Lead))
        contact = await session.scalar(select(Contact))
    assert lead is not None
    assert contact is not None
    marketing = {
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "referrer": "https://blog.example.org/pumps",
    }
    assert lead.source == "form:quote"
    assert lead.stage == "new"
    assert lead.marketing == marketing
    assert lead.contact_id == contact.id
    assert contact.marketing_source == {"channel": "webform", "form": "quote", **marketing}
    # The first touch stays when the same person comes back from elsewhere.
    again = await client.post(
        "/forms/quote",
        json={
            "email": "finn@example.com",
            "message": "And 50?",
            "utm_source": "ads",
            "referrer": "https://search.example.net/",
        },
    )
    assert again.status == 201
    async with sessions() as session:
        leads = list(await session.scalars(select(Lead).order_by(Lead.id)))
        contact = await session.scalar(select(Contact))
    assert [lead.marketing for lead in leads][1] == {
        "utm_source": "ads",
        "referrer": "https://search.example.net/",
    }
    assert contact is not None
    assert contact.marketing_source["utm_source"] == "newsletter"


async def test_a_form_without_leads_creates_none(client: Client, sessions: SessionFactory) -> None:
    await make_form(sessions)
    response = await client.post(
        "/forms/contact", json={"email": "gus@example.com", "message": "hi", "utm_source": "x"}
    )
    assert response.status == 201
    assert await count(sessions, Lead) == 0


# The pages


async def test_the_form_page_is_plain_accessible_html_without_scripts(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, title="Write to <us> & co", required_fields=["name", "email"])
    response = await client.get(
        "/forms/contact?utm_source=ads&utm_campaign=spring",
        headers={"Referer": "https://shop.example.com/contact"},
    )
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "<h1>Write to &lt;us&gt; &amp; co</h1>" in page
    assert "<script" not in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    for name in ("name", "email", "phone", "message"):
        assert f'<label for="f-{name}">' in page
        assert f'id="f-{name}" name="{name}"' in page
    assert re.search(r'name="name" maxlength="\d+" required', page)
    assert re.search(r'name="email" maxlength="\d+" required', page)
    assert not re.search(r'name="phone" maxlength="\d+" required', page)
    assert '<div class="hp" aria-hidden="true">' in page
    assert 'name="website" tabindex="-1"' in page
    assert '<input type="hidden" name="utm_source" value="ads">' in page
    assert '<input type="hidden" name="referrer" value="https://shop.example.com/contact">' in page
    second = await (await client.get("/forms/contact")).text()
    ids = [re.search(r'name="submission_id" value="([^"]+)"', text) for text in (page, second)]
    assert ids[0]
    assert ids[1]
    assert ids[0].group(1) != ids[1].group(1)


async def test_what_the_page_renders_posts_back_as_one_submission(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, create_lead=True)
    page = await (await client.get("/forms/contact?utm_source=ads")).text()
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    fields = {**hidden, "email": "hal@example.com", "message": "hi", "website": ""}
    for _ in range(2):  # the person clicks twice
        response = await client.post("/forms/contact", data=fields, allow_redirects=False)
        assert response.status == 303
    async with sessions() as session:
        interactions = list(await session.scalars(select(Interaction)))
        lead = await session.scalar(select(Lead))
    assert len(interactions) == 1
    assert interactions[0].external_id == f"contact:{hidden['submission_id']}"
    assert lead is not None
    assert lead.marketing == {"utm_source": "ads"}


async def test_the_embed_snippet_points_at_the_absolute_form_address(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, title='Say "hi"')
    response = await client.get("/forms/contact/embed")
    assert response.status == 200
    page = await response.text()
    url = str(client.make_url("/forms/contact"))
    assert f"&lt;iframe src=&quot;{url}&quot;" in page
    assert "<textarea" in page
    assert "script-src" not in response.headers["Content-Security-Policy"]


async def test_the_thank_you_host_may_receive_the_redirect_under_the_pages_policy(
    client: Client, sessions: SessionFactory
) -> None:
    await make_form(sessions, thank_you_url="https://shop.example.com:8443/thanks")
    response = await client.get("/forms/contact")
    policy = response.headers["Content-Security-Policy"]
    assert "form-action 'self' https://shop.example.com:8443;" in policy


async def test_form_routes_are_in_the_openapi_document(client: Client) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    paths = document["paths"]
    assert "requestBody" in paths["/forms/{slug}"]["post"]
    for path in ("/forms/{slug}", "/forms/{slug}/embed", "/forms/{slug}/thanks"):
        assert "get" in paths[path]
    assert set(paths["/api/v1/forms/{id}"]) == {"patch", "delete"}


# Forms administration


async def test_an_admin_creates_a_form_and_it_is_audited(
    make_user: UserFactory, sessions: SessionFactory, client: Client
) -> None:
    admin = await make_user(Role.ADMIN)
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Support")
    response = await admin.post(
        "/api/v1/forms",
        json={
            "slug": "support",
            "title": "Get help",
            "queue_id": queue.id,
            "create_lead": False,
            "required_fields": ["email", "message"],
            "thank_you_url": "https://example.com/thanks",
        },
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["slug"] == "support"
    assert body["active"] is True
    assert body["url"] == str(admin.client.make_url("/forms/support"))
    assert body["embed_url"] == body["url"] + "/embed"
    async with sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "form.create"))
    assert entry is not None
    assert entry.actor_id == admin.operator.id
    assert (await client.get("/forms/support")).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "ok", "queue_id": 999}, "queue_id"),
        ({"slug": "ok", "thank_you_url": "javascript:alert(1)"}, "thank_you_url"),
        ({"slug": "ok", "thank_you_url": "https://a.example;script-src *"}, "thank_you_url"),
        ({"slug": "ok", "required_fields": ["company"]}, "required_fields.0"),
        ({"slug": "ok", "title": ""}, "title"),
        ({"slug": "ok", "color": "red"}, "color"),
    ],
)
async def test_invalid_form_settings_are_400(
    make_user: UserFactory, sessions: SessionFactory, body: dict[str, Any], field: str
) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post("/api/v1/forms", json=body)
    assert response.status == 400
    assert field in (await response.json())["error"]["fields"]
    assert await count(sessions, WebForm) == 0


async def test_a_taken_slug_is_409(make_user: UserFactory, sessions: SessionFactory) -> None:
    admin = await make_user(Role.ADMIN)
    await make_form(sessions, slug="contact")
    response = await admin.post("/api/v1/forms", json={"slug": "contact"})
    assert response.status == 409
    assert "slug" in (await response.json())["error"]["fields"]


async def test_an_admin_changes_deactivates_and_reactivates_a_form(
    make_user: UserFactory, sessions: SessionFactory, client: Client
) -> None:
    admin = await make_user(Role.ADMIN)
    form = await make_form(sessions, thank_you_url="https://example.com/t")
    # Taken as it is now (and kept by the server's form cache): each change below applies to
    # the very next post.
    first = await client.post("/forms/contact", json={"email": "a@example.com", "message": "Hi"})
    assert first.status == 201
    changed = await admin.patch(
        f"/api/v1/forms/{form.id}",
        json={"title": "New title", "required_fields": ["phone"], "thank_you_url": None},
    )
    assert changed.status == 200, await changed.text()
    body = await changed.json()
    assert (body["title"], body["required_fields"], body["thank_you_url"]) == (
        "New title",
        ["phone"],
        None,
    )
    assert body["create_lead"] is False  # untouched
    needs_phone = await client.post("/forms/contact", json={"email": "a@example.com"})
    assert (await needs_phone.json())["error"]["fields"] == {"phone": "this field is required"}

    gone = await admin.delete(f"/api/v1/forms/{form.id}")
    assert gone.status == 200
    assert (await gone.json())["active"] is False
    closed = await client.post("/forms/contact", json={"phone": "+4930123456"})
    assert closed.status == 404
    listed = await (await admin.get("/api/v1/forms")).json()
    assert [(item["slug"], item["active"]) for item in listed] == [("contact", False)]

    back = await admin.patch(f"/api/v1/forms/{form.id}", json={"active": True})
    assert (await back.json())["active"] is True
    assert (await client.post("/forms/contact", json={"phone": "+4930123456"})).status == 201
    async with sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_type == "web_form")
                .order_by(AuditEntry.id)
            )
        )
    assert actions == ["form.create", "form.update", "form.deactivate", "form.update"]


async def test_a_form_changed_where_the_server_cannot_hear_of_it_applies_within_the_ttl(
    sessions: SessionFactory,
) -> None:
    """The CLI beside a SQLite server changes a form without an event reaching the server."""
    form = await make_form(sessions)
    moment = [0.0]
    cache = FormCache(EventBus(), ttl_seconds=30, clock=lambda: moment[0])
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Contact us"
    async with sessions() as session, session.begin():
        await update_form(session, CLI, form.id, title="Write to us")  # heard by another bus
    moment[0] = 29.0
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Contact us"
    moment[0] = 30.0
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Write to us"


@pytest.mark.sqlite_only
async def test_a_form_changed_while_the_server_was_not_listening_applies_after_the_resync(
    sessions: SessionFactory,
) -> None:
    """A lost LISTEN connection may have missed `form.updated`: its `resync` empties the cache."""
    form = await make_form(sessions)
    bus = EventBus()
    cache = FormCache(bus, ttl_seconds=3600)
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Contact us"
    async with sessions() as session, session.begin():
        await update_form(session, CLI, form.id, title="Write to us")  # heard by another bus
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Contact us"
    bus.publish(Event(RESYNC, {}))
    async with sessions() as session:
        assert (await cache.get(session, "contact")).title == "Write to us"


async def test_form_updates_reject_nulls_and_unknown_ids(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    form = await make_form(sessions)
    for body, field in (({"title": None}, "title"), ({"active": None}, "active")):
        response = await admin.patch(f"/api/v1/forms/{form.id}", json=body)
        assert response.status == 400
        assert field in (await response.json())["error"]["fields"]
    assert (await admin.patch("/api/v1/forms/999", json={"title": "x"})).status == 404
    assert (await admin.delete("/api/v1/forms/999")).status == 404
    assert (await admin.delete("/api/v1/forms/abc")).status == 404


async def test_supervisors_list_forms_but_only_admins_change_them(
    make_user: UserFactory, sessions: SessionFactory, client: Client
) -> None:
    form = await make_form(sessions)
    supervisor = await make_user(Role.SUPERVISOR)
    operator = await make_user(Role.OPERATOR)
    listed = await supervisor.get("/api/v1/forms")
    assert listed.status == 200
    assert [item["slug"] for item in await listed.json()] == ["contact"]
    assert (await operator.get("/api/v1/forms")).status == 403
    for user in (supervisor, operator):
        assert (await user.post("/api/v1/forms", json={"slug": "x"})).status == 403
        patched = await user.patch(f"/api/v1/forms/{form.id}", json={"title": "x"})
        assert patched.status == 403
        assert (await user.delete(f"/api/v1/forms/{form.id}")).status == 403
    assert (await client.get("/api/v1/forms")).status == 401
    assert (await client.post("/api/v1/forms", json={"slug": "x"})).status == 401
    assert (await client.delete(f"/api/v1/forms/{form.id}")).status == 401
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "shop")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/forms", headers=bearer)).status == 403
    creating = await client.post("/api/v1/forms", json={"slug": "x"}, headers=bearer)
    assert creating.status == 403
    async with sessions() as session:
        stored = await session.get(WebForm, form.id)
    assert stored is not None
    assert stored.title == "Contact us"
    assert stored.active
    assert await count(sessions, WebForm) == 1


async def test_a_visitor_leaving_mid_post_stores_nothing_and_logs_no_error(
    app: web.Application, sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    await make_form(sessions, required_fields=["email"])
    # Served as `omnicrm serve` serves (aiohttp's test server cancels the handler instead).
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        with caplog.at_level(logging.INFO, logger="web"):
            _, writer = await asyncio.open_connection(host, port)
            writer.write(
                b"POST /forms/contact HTTP/1.1\r\nHost: crm\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n"
                b"\r\nemail=ann%40example.com&message=Hel"
            )
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()  # the visitor closed the tab: the rest of the body never comes
            await writer.wait_closed()
            for _ in range(100):
                if any(r.getMessage() == "client disconnected" for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    [record] = [r for r in caplog.records if r.getMessage() == "client disconnected"]
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await stored_nothing(sessions)

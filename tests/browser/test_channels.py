"""The console learns the channels from the server (GET /api/v1/channels): a channel added to
the application with one line is offered for the contacts it can reach, with its label; a
channel the server does not run (old data) shows its name and the generic icon and is never
offered; a contact no running channel can reach gets no channel to pick."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.registry import default_channels
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, OutboxItem
from core.settings import Settings
from tests.browser.conftest import Browsing, open_as
from tests.conftest import UserFactory
from tests.fake_channel import FakeSms
from web.app import create_app
from web.keys import INGEST_POLICY


@pytest.fixture
def fake() -> FakeSms:
    return FakeSms()


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, fake: FakeSms) -> web.Application:
    """The app as `omnicrm serve` runs it, with the test-only channel added: one line."""
    return create_app(settings, background_workers=True, channels=[*default_channels(), fake])


async def test_the_console_offers_the_channels_that_reach_the_contact_with_their_labels(
    browsing: Browsing,
    make_user: UserFactory,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    app: web.Application,
    fake: FakeSms,
) -> None:
    admin = await make_user("admin", email="maria@example.com", name="Maria Keller")
    operator = await make_user("operator", email="anna@example.com", name="Anna Novak")
    queue = await admin.post("/api/v1/queues", json={"name": "Support"})
    queue_id = (await queue.json())["id"]
    await admin.put(
        f"/api/v1/queues/{queue_id}/members", json={"operator_ids": [operator.operator.id]}
    )
    await admin.post(
        "/api/v1/forms", json={"slug": "contact", "title": "Contact us", "queue_id": queue_id}
    )
    posted = await client.post(
        "/forms/contact",
        json={
            "name": "Jonas Weber",
            "email": "jonas@nordwind.example",
            "phone": "+1 212 555 0187",
            "message": "Call me back?",
        },
    )
    assert posted.status == 201, await posted.text()
    form_conversation = (await posted.json())["conversation_id"]
    # A system that only knows the customer by its own id: nothing can answer them.
    api = await admin.post(
        "/api/v1/interactions",
        json={
            "external_id": "erp-1",
            "contact": {"external_id": "C-77", "name": "Erik Lund"},
            "text": "Order confirmed",
            "queue": "Support",
        },
    )
    api_conversation = (await api.json())["conversation_id"]
    async with sessions() as session, session.begin():
        # A message of a channel this server no longer runs.
        telex = await ingest(
            session,
            InboundEvent(
                channel="telex",
                external_id="t-1",
                addresses=[Address(IdentityKind.EMAIL, "old@example.com")],
                display_name="Olga Old",
                text="STOP",
                queue_id=queue_id,
            ),
            app[INGEST_POLICY],
        )
    for conversation_id in (form_conversation, api_conversation, telex.conversation_id):
        response = await admin.post(
            f"/api/v1/conversations/{conversation_id}/assign",
            json={"assignee_id": operator.operator.id},
        )
        assert response.status == 200, await response.text()

    page = await open_as(browsing, operator, f"/console/#c={form_conversation}")
    view = page.locator(f'.conversation-view[data-conversation-id="{form_conversation}"]')
    await expect(view.locator(".timeline")).to_contain_text("Call me back?")
    send_via = page.get_by_label("Send via")
    # The web form is answered by email (the default); the phone number is reached by Fake SMS.
    await expect(send_via.locator("option")).to_have_text(["Email (default)", "SMS", "Fake SMS"])
    await expect(send_via).to_have_value("email")
    await send_via.select_option(label="Fake SMS")
    await page.get_by_label("Reply to the customer").fill("We will call you at 3.")
    await page.keyboard.press("Control+Enter")
    reply = view.locator('.item-out[data-channel="fakesms"]')
    await expect(reply).to_contain_text("We will call you at 3.")
    await expect(reply.locator('svg[aria-label="Fake SMS"]')).to_be_visible()
    await expect(reply.locator(".delivery-status")).to_contain_text("sent")
    async with sessions() as session:
        item = await session.scalar(select(OutboxItem).where(OutboxItem.channel == "fakesms"))
    assert item is not None
    assert item.recipient == "+12125550187"
    # The outbox worker hands it to the channel's own sender.
    await expect(reply).to_be_visible()
    for _ in range(200):
        if fake.outbox.sent:
            break
        await asyncio.sleep(0.05)
    assert [(sent.recipient, sent.payload["text"]) for sent in fake.outbox.sent] == [
        ("+12125550187", "We will call you at 3.")
    ]

    # Old data: the channel's own name and the generic icon; it is not offered.
    await page.goto(f"/console/#c={telex.conversation_id}")
    old = page.locator(f'.conversation-view[data-conversation-id="{telex.conversation_id}"]')
    await expect(old.locator(".timeline")).to_contain_text("STOP")
    await expect(old.locator("header .meta")).to_contain_text("telex")
    await expect(old.locator('.item[data-channel="telex"] svg.icon-channel')).to_have_attribute(
        "aria-label", "telex"
    )
    inbox_item = page.locator(f'.inbox-item[data-conversation-id="{telex.conversation_id}"]')
    await expect(inbox_item.locator("svg.icon-channel").first).to_be_visible()
    await expect(page.get_by_label("Send via").locator("option")).to_have_text(["Email"])

    # Nobody can be answered on an external id: nothing to pick, and sending says why.
    await page.goto(f"/console/#c={api_conversation}")
    await expect(page.locator(".timeline")).to_contain_text("Order confirmed")
    await expect(page.get_by_label("Send via")).to_be_disabled()
    await expect(page.get_by_label("Send via")).to_contain_text("No channel reaches this contact")

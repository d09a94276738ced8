"""The demo is made through the product's own paths: customers' messages through their
channels (web forms through the web-form channel, email as real messages through the email
channel's importer, other systems through the API channel), answers through
`conversations.reply`, routing settings through routing's validating save functions. So what
the demo shows is what the product does, and it cannot hold what the product would refuse."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from channels.api import ApiChannel, InteractionIn
from channels.email.plugin import EmailChannel
from channels.registry import ChannelRegistry, default_channels
from channels.webform import WebFormChannel
from core import channels as core_channels
from core.db import SessionFactory
from core.ingest import IngestPolicy, IngestResult
from core.models import (
    AuditEntry,
    ChannelAccount,
    Direction,
    Interaction,
    Offer,
    OfferStatus,
    Operator,
    OutboxItem,
    Presence,
    Queue,
    RoutingSetting,
    WebForm,
    utcnow,
)
from core.storage import MemoryStore
from routing.config import parse_queue_config
from routing.leads import LeadRuleSet
from routing.service import RoutingOptions, run_pass
from tests.conftest import empty_database
from web.demo import DemoServices, load_demo

pytestmark = pytest.mark.both_databases  # tests/conftest.py


class CountingWebForms(WebFormChannel):
    def __init__(self) -> None:
        self.received: list[str] = []

    async def receive(
        self,
        session: AsyncSession,
        form: WebForm,
        fields: Mapping[str, object],
        *,
        policy: IngestPolicy,
        referer_header: str | None = None,
        language: str | None = None,
    ) -> IngestResult | None:
        self.received.append(str(fields.get("submission_id")))
        return await super().receive(
            session, form, fields, policy=policy, referer_header=referer_header, language=language
        )


class CountingApi(ApiChannel):
    def __init__(self) -> None:
        self.received: list[str] = []

    async def receive(
        self, session: AsyncSession, body: InteractionIn, *, policy: IngestPolicy
    ) -> IngestResult:
        self.received.append(body.external_id)
        return await super().receive(session, body, policy=policy)


def services(*channels: Any) -> DemoServices:
    return DemoServices(
        registry=ChannelRegistry(channels),
        store=MemoryStore(),
        policy=IngestPolicy(),
        cipher=DemoServices.in_memory().cipher,
    )


async def inbound(session: AsyncSession, channel: str) -> list[Interaction]:
    return list(
        await session.scalars(
            select(Interaction).where(
                Interaction.channel == channel, Interaction.direction == Direction.IN
            )
        )
    )


async def test_customers_messages_come_in_through_their_channels(
    sessions: SessionFactory,
) -> None:
    webforms, api = CountingWebForms(), CountingApi()
    demo = services(EmailChannel(), webforms, api)
    async with sessions() as session, session.begin():
        await load_demo(session, demo)
    async with sessions() as session:
        forms = await inbound(session, "webform")
        systems = await inbound(session, "api")
        emails = await inbound(session, "email")
        mailboxes = {
            box.name: box
            for box in await session.scalars(
                select(ChannelAccount).where(ChannelAccount.channel == "email")
            )
        }
    assert sorted(webforms.received) == sorted(
        item.external_id.split(":", 1)[1] for item in forms if item.external_id
    )
    assert len(forms) >= 6
    assert sorted(api.received) == sorted(item.external_id or "" for item in systems)
    assert len(systems) == 2
    # Real messages, parsed by the email channel: Message-IDs, digests, threading, HTML
    # sanitized with the remote tracker held back, the photos stored as attachments.
    assert len(emails) >= 12
    assert all(item.meta.get("content_digest") and item.meta.get("message_id") for item in emails)
    assert {item.meta["account_id"] for item in emails} == {
        mailboxes["support"].id,
        mailboxes["sales"].id,
    }
    assert not any(box.enabled for box in mailboxes.values())  # not connected to a server
    hannah = next(item for item in emails if item.subject == "Broken teapot in my parcel")
    assert hannah.html is not None
    assert 'data-omnicrm-src="https://tracker.example/open.gif"' in hannah.html
    assert ' src="https://tracker.example' not in hannah.html
    assert [entry["filename"] for entry in hannah.attachments] == ["parcel.png", "teapot.png"]
    for entry in hannah.attachments:
        assert (await demo.store.get(entry["key"])).startswith(b"\x89PNG")
    thanks = next(item for item in emails if item.text.startswith("That worked"))
    first = next(item for item in emails if item.subject == "Password reset link does not work")
    assert thanks.conversation_id == first.conversation_id  # threaded by In-Reply-To


async def test_routing_settings_are_saved_through_their_validation(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session, session.begin():
        await load_demo(session)
    async with sessions() as session:
        stored = await session.get(RoutingSetting, "lead_rules")
        queues = list(await session.scalars(select(Queue)))
        audited = set(await session.scalars(select(AuditEntry.action)))
    assert stored is not None
    # What the validating save stores: the rules as checked, defaults filled in.
    assert stored.value == LeadRuleSet.model_validate(stored.value).model_dump(mode="json")
    assert "routing.lead_rules" in audited
    for queue in queues:
        parse_queue_config(queue.config)


async def test_sms_answers_are_real_replies_where_an_sms_channel_runs(
    sessions: SessionFactory, engine: AsyncEngine
) -> None:
    """The seam: a server without an SMS channel keeps the demo's SMS answers as history; with
    one (the built-in Twilio channels) they are replies through the outbox, delivered back
    then."""
    without_sms = [
        c for c in default_channels() if c.name not in ("sms", "whatsapp", "twilio", "voice")
    ]
    async with sessions() as session, session.begin():
        await load_demo(session, services(*without_sms))
    async with sessions() as session:
        assert await session.scalar(select(OutboxItem).where(OutboxItem.channel == "sms")) is None
        history = await session.scalar(
            select(Interaction).where(
                Interaction.channel == "sms", Interaction.direction == Direction.OUT
            )
        )
    assert history is not None
    await empty_database(engine)
    async with sessions() as session, session.begin():
        await load_demo(session, services(*default_channels()))
    async with sessions() as session:
        items = list(await session.scalars(select(OutboxItem).where(OutboxItem.channel == "sms")))
    assert len(items) == 3  # Noah, Oliver, Leo
    assert {item.status for item in items} == {"sent"}
    assert {item.recipient for item in items} >= {"+12125550187"}
    # The demo put the process's channels back.
    assert "sms" in core_channels.catalog().names()


@pytest.mark.sqlite_only
async def test_demo_operators_with_no_console_open_do_not_strand_offers(
    sessions: SessionFactory,
) -> None:
    """The demo's available operators count as having just closed their console: once the
    grace passes, routing sets them away and offers nobody would see are never made."""
    async with sessions() as session, session.begin():
        await load_demo(session)
        loaded_at = utcnow()
    async with sessions() as session:
        available = list(
            await session.scalars(
                select(Operator.id).where(Operator.presence == Presence.AVAILABLE)
            )
        )
    assert available, "the demo shows someone at work"
    later = loaded_at + RoutingOptions().away_after_disconnect + timedelta(seconds=1)
    async with sessions() as session, session.begin():
        await run_pass(session, later, RoutingOptions())
    async with sessions() as session:
        presences = await session.scalars(
            select(Operator.presence).where(Operator.id.in_(available))
        )
        assert set(presences) == {Presence.AWAY}
        pending = await session.scalar(
            select(func.count()).select_from(Offer).where(Offer.status == OfferStatus.PENDING)
        )
    assert pending == 0

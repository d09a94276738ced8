"""One clock for every state change: what happens is stamped with the installed clock's time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core import clock
from core.audit import CLI
from core.clock import ManualClock, ShiftedClock, using
from core.conversations import add_note, reply, set_status
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import AuditEntry, Conversation, IdentityKind, Interaction, OutboxItem

pytestmark = pytest.mark.both_databases  # tests/conftest.py

FAR_AWAY = datetime(2041, 2, 3, 4, 5, 6, tzinfo=UTC)


async def test_ingest_replies_and_status_changes_happen_at_the_clocks_time(
    sessions: SessionFactory,
) -> None:
    manual = ManualClock(FAR_AWAY)
    with using(manual):
        async with sessions() as session, session.begin():
            arrived = await ingest(
                session,
                InboundEvent(
                    channel="email",
                    external_id="<m-1@example.com>",
                    addresses=[Address(IdentityKind.EMAIL, "kim@example.com")],
                    text="Where is my order?",
                ),
            )
        manual.advance(minutes=5)
        async with sessions() as session, session.begin():
            answer, queued = await reply(session, CLI, arrived.conversation_id, text="On its way")
            await add_note(session, CLI, arrived.conversation_id, text="checked the shop")
        manual.advance(minutes=5)
        async with sessions() as session, session.begin():
            await set_status(session, CLI, arrived.conversation_id, "resolved")

    async with sessions() as session:
        conversation = await session.get(Conversation, arrived.conversation_id)
        assert conversation is not None
        assert conversation.created_at == FAR_AWAY
        assert conversation.first_response_at == FAR_AWAY + timedelta(minutes=5)
        assert conversation.resolved_at == FAR_AWAY + timedelta(minutes=10)
        stamps = [
            (row.kind, row.direction, row.occurred_at)
            for row in await session.scalars(
                select(Interaction)
                .where(Interaction.conversation_id == conversation.id)
                .order_by(Interaction.id)
            )
        ]
        later = FAR_AWAY + timedelta(minutes=5)
        assert stamps == [
            ("message", "in", FAR_AWAY),
            ("message", "out", later),
            ("note", "internal", later),
        ]
        outbox = await session.get(OutboxItem, queued.id)
        assert outbox is not None
        assert outbox.created_at == FAR_AWAY + timedelta(minutes=5)
        audited = set(await session.scalars(select(AuditEntry.created_at)))
        assert audited
        assert audited <= {FAR_AWAY + timedelta(minutes=m) for m in (0, 5, 10)}
    assert answer.occurred_at == FAR_AWAY + timedelta(minutes=5)


def test_a_shifted_clock_keeps_time_moving_at_another_date() -> None:
    shifted = ShiftedClock(timedelta(days=3653))
    first = shifted.now()
    assert first - datetime.now(UTC) > timedelta(days=3652)
    assert shifted.now() >= first


def test_using_puts_the_previous_clock_back() -> None:
    before = clock.current()
    with using(ManualClock(FAR_AWAY)):
        assert clock.utcnow() == FAR_AWAY
    assert clock.current() is before


def test_a_manual_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2030, 1, 1))  # noqa: DTZ001 - the naive value is the point


async def test_answers_are_dated_by_the_clock(client: TestClient[Any, Any]) -> None:
    # The console counts offers down against this header, so it must be the records' clock.
    with using(ManualClock(FAR_AWAY)):
        for path in ("/healthz", "/api/v1/auth/me", "/no/such/page"):
            response = await client.get(path)
            assert parsedate_to_datetime(response.headers["Date"]) == FAR_AWAY.replace(
                microsecond=0
            ), path

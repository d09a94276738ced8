"""Weekly report emails: a supervisor subscribes with a mailbox, a weekday and an hour; when it
falls due the report of the week before goes into the outbox once, from that mailbox, in the
supervisor's language."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from core.clock import ManualClock, using
from core.db import SessionFactory
from core.models import (
    Contact,
    Conversation,
    Direction,
    Interaction,
    InteractionKind,
    Operator,
    OutboxItem,
    ReportSubscription,
    Role,
)
from core.reports.schedule import send_due
from tests.conftest import UserFactory
from tests.email_accounts import create_email_account

# Wednesday 11 March 2026, 10:00 UTC; Berlin is UTC+1.
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
# The next Monday 08:00 in Berlin.
DUE = datetime(2026, 3, 16, 7, 0, tzinfo=UTC)


async def history(sessions: SessionFactory) -> None:
    """Two emails in the week before the run (Mon 9 - Sun 15 March), one before it."""
    async with sessions() as session, session.begin():
        contact = Contact(display_name="Jonas Weber")
        session.add(contact)
        await session.flush()
        for day in (2, 10, 15):
            opened = datetime(2026, 3, day, 12, 0, tzinfo=UTC)
            conversation = Conversation(contact_id=contact.id, channel="email", created_at=opened)
            session.add(conversation)
            await session.flush()
            session.add(
                Interaction(
                    conversation_id=conversation.id,
                    contact_id=contact.id,
                    kind=InteractionKind.MESSAGE,
                    direction=Direction.IN,
                    channel="email",
                    occurred_at=opened,
                )
            )


async def outbox(sessions: SessionFactory) -> list[OutboxItem]:
    async with sessions() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def test_a_weekly_report_goes_out_once_from_the_chosen_mailbox(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    await create_email_account(sessions, "support")
    sales = await create_email_account(sessions, "sales")
    boss = await make_user(Role.SUPERVISOR, email="clara@example.com", name="Clara Boss")
    response = await boss.patch(
        "/api/v1/auth/me/preferences", json={"locale": "de", "time_zone": "Europe/Berlin"}
    )
    assert response.status == 200
    mailboxes = await (await boss.get("/api/v1/report-subscriptions/mailboxes")).json()
    assert [(box["name"], box["address"]) for box in mailboxes] == [
        ("sales", "sales@omnicrm.test"),
        ("support", "support@omnicrm.test"),
    ]
    with using(ManualClock(NOW)):
        response = await boss.post(
            "/api/v1/report-subscriptions",
            json={
                "report": "volume",
                "filters": {"channel": "email"},
                "channel_account_id": sales.id,
                "weekday": 0,
                "hour": 8,
            },
        )
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["time_zone"] == "Europe/Berlin"
    assert datetime.fromisoformat(created["next_run_at"]) == DUE
    assert created["filters"] == {"channel": "email"}
    await history(sessions)

    # Not due yet: nothing goes out.
    async with sessions() as session, session.begin():
        assert await send_due(session, DUE.replace(hour=6), public_url="https://crm.example") == 0
    assert await outbox(sessions) == []

    async with sessions() as session, session.begin():
        assert await send_due(session, DUE, public_url="https://crm.example") == 1
    [item] = await outbox(sessions)
    assert item.channel == "email"
    assert item.recipient == "clara@example.com"
    assert item.payload["account_id"] == sales.id
    assert item.payload["subject"] == (
        "Wochenbericht: Volumen je Kanal, 2026-03-09 \N{EN DASH} 2026-03-15"
    )
    text = item.payload["text"]
    # The week before the run, by day: the 10th and the 15th have one email each.
    assert "2026-03-10 | email | 1 | 1" in text
    assert "2026-03-15 | email | 1 | 1" in text
    assert "2026-03-02" not in text
    assert "https://crm.example/reports/#report=volume&start=2026-03-09&end=2026-03-15" in text
    assert "<table" in item.payload["html"]

    # Run again at the same moment (a second process, a retry): nothing is sent twice.
    async with sessions() as session, session.begin():
        assert await send_due(session, DUE, public_url=None) == 0
    assert len(await outbox(sessions)) == 1
    listed = await (await boss.get("/api/v1/report-subscriptions")).json()
    assert datetime.fromisoformat(listed[0]["next_run_at"]) == datetime(
        2026, 3, 23, 7, 0, tzinfo=UTC
    )
    assert datetime.fromisoformat(listed[0]["last_sent_at"]) == DUE

    deleted = await boss.delete(f"/api/v1/report-subscriptions/{created['id']}")
    assert deleted.status == 204
    assert await (await boss.get("/api/v1/report-subscriptions")).json() == []


async def test_a_supervisor_who_is_no_longer_one_gets_no_more_reports(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    mailbox = await create_email_account(sessions, "support")
    boss = await make_user(Role.SUPERVISOR)
    with using(ManualClock(NOW)):
        response = await boss.post(
            "/api/v1/report-subscriptions",
            json={"report": "funnel", "channel_account_id": mailbox.id},
        )
    assert response.status == 201, await response.text()
    async with sessions() as session, session.begin():
        await session.execute(
            update(Operator).where(Operator.id == boss.operator.id).values(role=Role.OPERATOR)
        )
    async with sessions() as session, session.begin():
        # Monday 08:00 UTC (no time zone in their preferences).
        assert await send_due(session, DUE.replace(hour=8), public_url=None) == 0
    async with sessions() as session:
        assert await session.scalar(select(ReportSubscription.id)) is None
    assert await outbox(sessions) == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"report": "nothing"}, 400, "report"),
        ({"report": "volume", "filters": {"source": "api"}}, 400, "filters.source"),
        ({"report": "volume", "filters": {"queue_id": "x"}}, 400, "filters.queue_id"),
        ({"report": "volume", "channel_account_id": 999}, 400, "channel_account_id"),
        ({"report": "volume", "weekday": 7}, 400, "weekday"),
        ({"report": "volume", "hour": 24}, 400, "hour"),
        ({"report": "volume", "time_zone": "Mars/Olympus"}, 400, "time_zone"),
    ],
)
async def test_bad_subscriptions_are_refused(
    sessions: SessionFactory,
    make_user: UserFactory,
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    mailbox = await create_email_account(sessions, "support")
    boss = await make_user(Role.SUPERVISOR)
    response = await boss.post(
        "/api/v1/report-subscriptions", json={"channel_account_id": mailbox.id, **body}
    )
    assert response.status == status, await response.text()
    assert field in (await response.json())["error"]["fields"]
    assert await (await boss.get("/api/v1/report-subscriptions")).json() == []


async def test_operators_cannot_subscribe(make_user: UserFactory) -> None:
    operator = await make_user(Role.OPERATOR)
    response = await operator.post(
        "/api/v1/report-subscriptions", json={"report": "volume", "channel_account_id": 1}
    )
    assert response.status == 403

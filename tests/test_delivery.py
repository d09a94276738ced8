"""Delivery status for every channel: receipts by rank, a retry schedule that rides out an
outage of hours, the log saying what was stored, live updates for whoever sees it."""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core import clock
from core.db import SessionFactory
from core.delivery import delivery_state, outranks, record_receipt
from core.events import Event, EventBus
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.logfields import FIELDS_ATTRIBUTE
from core.models import (
    Conversation,
    IdentityKind,
    OutboxItem,
    OutboxStatus,
    Queue,
    Receipt,
    Role,
    utcnow,
)
from core.outbox import (
    Delivery,
    OutboxWorker,
    RetrySchedule,
    Sender,
    TransientSendError,
    claim_due,
    enqueue,
    mark_sent,
)
from core.settings import Settings
from tests.conftest import UserFactory

pytestmark = pytest.mark.both_databases  # tests/conftest.py


class Outage(Sender):
    """A provider that fails every attempt until the clock reaches `back_at`."""

    def __init__(self, back_at: Any) -> None:
        self.back_at = back_at
        self.attempts: list[Any] = []

    async def do_send(self, delivery: Delivery) -> str:
        self.attempts.append(utcnow())
        if utcnow() < self.back_at:
            raise TransientSendError("503 Service Unavailable")
        return f"provider-{delivery.outbox_id}"


async def queued(sessions: SessionFactory, channel: str = "email") -> int:
    async with sessions() as session, session.begin():
        item = await enqueue(session, channel=channel, recipient="ann@example.com", payload={})
    return item.id


async def stored(sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    return item


async def ride_out(
    sessions: SessionFactory, worker: OutboxWorker, outbox_id: int, manual: clock.ManualClock
) -> OutboxItem:
    """Run the worker, moving the clock to each scheduled attempt, until the item settles."""
    for _ in range(1000):
        await worker.run_once()
        item = await stored(sessions, outbox_id)
        if item.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
            return item
        manual.set(max(manual.now(), item.next_attempt_at))
    raise AssertionError("the item never settled")


def schedule_of(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        base_seconds=settings.outbox_retry_base_seconds,
        cap_seconds=settings.outbox_retry_cap_seconds,
        max_attempts=settings.outbox_max_attempts,
        give_up_after_seconds=settings.outbox_give_up_after_seconds,
    )


async def test_the_default_schedule_rides_out_a_three_hour_outage(
    sessions: SessionFactory,
) -> None:
    """Eight attempts in 2.5 minutes gave up on any real outage; the defaults span hours."""
    schedule = schedule_of(Settings())
    assert schedule.shortest_span() >= 3 * 3600
    start = utcnow()
    manual = clock.ManualClock(start)
    with clock.using(manual):
        outbox_id = await queued(sessions)
        provider = Outage(back_at=start + timedelta(hours=3))
        worker = OutboxWorker(sessions, {"email": provider}, schedule=schedule)
        item = await ride_out(sessions, worker, outbox_id, manual)
    assert item.status == OutboxStatus.SENT
    assert len(provider.attempts) <= schedule.max_attempts
    waits = [b - a for a, b in zip(provider.attempts, provider.attempts[1:], strict=False)]
    assert max(waits) <= timedelta(seconds=schedule.cap_seconds)


async def test_it_gives_up_at_the_time_limit_with_a_last_attempt_at_it(
    sessions: SessionFactory,
) -> None:
    schedule = RetrySchedule(
        base_seconds=600, cap_seconds=3600, max_attempts=1000, give_up_after_seconds=4 * 3600
    )
    start = utcnow()
    manual = clock.ManualClock(start)
    with clock.using(manual):
        outbox_id = await queued(sessions)
        provider = Outage(back_at=start + timedelta(days=2))
        worker = OutboxWorker(sessions, {"email": provider}, schedule=schedule)
        item = await ride_out(sessions, worker, outbox_id, manual)
    assert item.status == OutboxStatus.FAILED
    assert provider.attempts[-1] == start + timedelta(hours=4)
    assert item.last_error == (
        f"gave up after {len(provider.attempts)} attempts: 503 Service Unavailable"
    )


async def test_the_logs_last_outcome_is_the_stored_status(
    sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    outbox_id = await queued(sessions)
    provider = Outage(back_at=utcnow() + timedelta(days=1))
    worker = OutboxWorker(sessions, {"email": provider}, max_attempts=2, retry_base_seconds=0.01)
    with caplog.at_level(logging.INFO, logger="core.outbox"):
        for _ in range(200):
            await worker.run_once()
            if (await stored(sessions, outbox_id)).status == OutboxStatus.FAILED:
                break
    outcomes = [
        getattr(record, FIELDS_ATTRIBUTE)["outcome"]
        for record in caplog.records
        if record.getMessage() == "outbox attempt"
    ]
    assert outcomes == ["retry", "failed"]  # the second attempt gave up: it says so
    assert (await stored(sessions, outbox_id)).status == OutboxStatus.FAILED


def test_receipts_apply_by_rank() -> None:
    assert outranks(Receipt.SENT, None)
    order = [Receipt.SENT, Receipt.DELIVERED, Receipt.READ]
    for lower, higher in itertools.pairwise(order):
        assert outranks(higher, lower)
        assert not outranks(lower, higher)  # an out-of-order receipt never moves it back
    assert outranks(Receipt.FAILED, Receipt.SENT)
    assert not outranks(Receipt.FAILED, Receipt.DELIVERED)
    assert not outranks(Receipt.DELIVERED, Receipt.FAILED)
    assert not outranks(Receipt.SENT, Receipt.SENT)  # a repeat stores once


@pytest.mark.parametrize(
    ("status", "receipt", "shown"),
    [
        ("queued", None, "queued"),
        ("sending", None, "sending"),
        ("sent", None, "sent"),
        ("sent", "sent", "sent"),
        ("sent", "delivered", "delivered"),
        ("sent", "read", "read"),
        ("failed", None, "failed"),
        ("failed", "failed", "failed"),
    ],
)
def test_what_a_person_sees(status: str, receipt: str | None, shown: str) -> None:
    assert delivery_state(status, receipt) == shown


async def test_a_reply_that_failed_after_its_attempts_shows_failed(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    supervisor = await make_user(Role.SUPERVISOR)
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<m1@example.com>",
                addresses=[Address(IdentityKind.EMAIL, "ann@example.com")],
                text="Hello",
            ),
        )
    response = await supervisor.post(
        f"/api/v1/conversations/{result.conversation_id}/reply", json={"text": "Hi Ann"}
    )
    assert response.status == 201
    provider = Outage(back_at=utcnow() + timedelta(days=1))
    worker = OutboxWorker(sessions, {"email": provider}, max_attempts=3, retry_base_seconds=0.01)
    for _ in range(300):
        await worker.run_once()
        listed = await (
            await supervisor.get(f"/api/v1/conversations/{result.conversation_id}/outbox")
        ).json()
        if listed["items"][0]["status"] == "failed":
            break
    [row] = listed["items"]
    assert row["delivery"] == "failed"
    assert row["last_error"] == "gave up after 3 attempts: 503 Service Unavailable"


async def test_receipts_reach_the_consoles_of_those_who_see_the_conversation(
    sessions: SessionFactory, bus: EventBus
) -> None:
    heard: list[Event] = []
    bus.add_listener(heard.append)
    async with sessions() as session, session.begin():
        queue = Queue(name="SMS")
        session.add(queue)
        await session.flush()
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<m2@example.com>",
                addresses=[Address(IdentityKind.EMAIL, "bo@example.com")],
                queue_id=queue.id,
            ),
        )
        item = await enqueue(
            session,
            channel="email",
            recipient="bo@example.com",
            payload={},
            conversation_id=result.conversation_id,
        )
        [claimed] = await claim_due(session, ["email"], 1, timedelta(seconds=60))
        await mark_sent(session, claimed, "provider-1")
    heard.clear()
    async with sessions() as session, session.begin():
        assert await record_receipt(
            session, channel="email", provider_id="provider-1", receipt=Receipt.DELIVERED
        )
        # The same receipt again, or one naming another channel, changes nothing.
        assert not await record_receipt(
            session, channel="email", provider_id="provider-1", receipt=Receipt.DELIVERED
        )
        assert not await record_receipt(
            session, channel="sms", provider_id="provider-1", receipt=Receipt.READ
        )
        conversation = await session.get(Conversation, result.conversation_id)
        assert conversation is not None
    [event] = [event for event in heard if event.type == "delivery.updated"]
    assert event.ids == {"outbox": item.id, "conversation": result.conversation_id}
    assert event.labels["queues"] == str(queue.id)
    async with sessions() as session:
        receipt = await session.scalar(select(OutboxItem.receipt))
    assert receipt == "delivered"

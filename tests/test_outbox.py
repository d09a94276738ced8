"""The outbox: committed before sending, retried with backoff, fenced, claimed once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from core.audit import CLI
from core.db import SessionFactory, make_engine
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Interaction, OutboxItem, OutboxStatus, Role, utcnow
from core.operators import create_operator
from core.outbox import (
    Delivery,
    OutboxWorker,
    PermanentSendError,
    Sender,
    TransientSendError,
    claim_due,
    enqueue,
    mark_failed,
    mark_retry,
    mark_sent,
)
from core.settings import Settings
from tests.conftest import PASSWORD
from web.api import CSRF_HEADER
from web.app import create_app

pytestmark = pytest.mark.both_databases  # tests/conftest.py

Outcome = Exception | None


class ProviderStandIn(Sender):
    """Stands in for a provider outside the process: answers attempts from a script
    (an exception to raise, or None to accept), then accepts everything."""

    def __init__(self, *script: Outcome) -> None:
        self.script = list(script)
        self.attempts: list[Delivery] = []
        self.accepted: list[Delivery] = []

    async def do_send(self, delivery: Delivery) -> str | None:
        self.attempts.append(delivery)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.accepted.append(delivery)
        return f"provider-{delivery.outbox_id}-{delivery.attempt}"


async def queue_message(sessions: SessionFactory, recipient: str = "ann@example.com") -> int:
    async with sessions() as session, session.begin():
        item = await enqueue(session, channel="email", recipient=recipient, payload={"text": "Hi"})
    return item.id


async def stored(sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    return item


async def work_until_settled(
    worker: OutboxWorker, sessions: SessionFactory, outbox_id: int
) -> OutboxItem:
    """Run worker passes until the item is sent or failed."""
    async with asyncio.timeout(10):
        while True:
            await worker.run_once()
            item = await stored(sessions, outbox_id)
            if item.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
                return item
            await asyncio.sleep(0.01)


def fast_worker(sessions: SessionFactory, sender: Sender, **options: Any) -> OutboxWorker:
    options.setdefault("retry_base_seconds", 0.01)
    return OutboxWorker(sessions, {"email": sender}, **options)


async def test_transient_failures_are_retried_until_sent(sessions: SessionFactory) -> None:
    sender = ProviderStandIn(
        TransientSendError("421 try again later"), TransientSendError("451 greylisted")
    )
    outbox_id = await queue_message(sessions)
    item = await work_until_settled(fast_worker(sessions, sender), sessions, outbox_id)
    assert item.status == OutboxStatus.SENT
    assert item.attempts == 3
    assert item.provider_id == f"provider-{outbox_id}-3"
    assert item.sent_at is not None
    assert [delivery.attempt for delivery in sender.attempts] == [1, 2, 3]
    assert len(sender.accepted) == 1


async def test_retry_waits_as_long_as_the_provider_asks(sessions: SessionFactory) -> None:
    sender = ProviderStandIn(TransientSendError("429 Too Many Requests", retry_after=30))
    outbox_id = await queue_message(sessions)
    worker = fast_worker(sessions, sender)
    assert await worker.run_once() == 1
    item = await stored(sessions, outbox_id)
    assert item.status == OutboxStatus.SENDING
    assert item.last_error == "429 Too Many Requests"
    assert item.next_attempt_at > utcnow() + timedelta(seconds=25)
    assert await worker.run_once() == 0
    assert len(sender.attempts) == 1


async def test_permanent_failure_is_recorded_and_not_retried(sessions: SessionFactory) -> None:
    sender = ProviderStandIn(PermanentSendError("550 5.1.1 mailbox unavailable"))
    outbox_id = await queue_message(sessions)
    worker = fast_worker(sessions, sender)
    item = await work_until_settled(worker, sessions, outbox_id)
    assert item.status == OutboxStatus.FAILED
    assert item.last_error == "550 5.1.1 mailbox unavailable"
    assert item.attempts == 1
    assert await worker.run_once() == 0
    assert len(sender.attempts) == 1


async def test_gives_up_after_max_attempts_with_the_reason(sessions: SessionFactory) -> None:
    sender = ProviderStandIn(*(TransientSendError("503 service unavailable") for _ in range(10)))
    outbox_id = await queue_message(sessions)
    worker = fast_worker(sessions, sender, max_attempts=3)
    item = await work_until_settled(worker, sessions, outbox_id)
    assert item.status == OutboxStatus.FAILED
    assert item.attempts == 3
    assert item.last_error == "gave up after 3 attempts: 503 service unavailable"
    assert await worker.run_once() == 0
    assert len(sender.attempts) == 3


async def test_unexpected_sender_errors_and_timeouts_count_as_transient(
    sessions: SessionFactory,
) -> None:
    class Unreliable(ProviderStandIn):
        timeout_seconds = 0.05

        async def do_send(self, delivery: Delivery) -> str | None:
            if delivery.attempt == 2:
                await asyncio.sleep(10)
            return await super().do_send(delivery)

    sender = Unreliable(RuntimeError("connection reset"))
    outbox_id = await queue_message(sessions)
    worker = fast_worker(sessions, sender)
    errors = []
    async with asyncio.timeout(10):
        while (item := await stored(sessions, outbox_id)).status != OutboxStatus.SENT:
            await worker.run_once()
            errors.append((await stored(sessions, outbox_id)).last_error)
            await asyncio.sleep(0.01)
    assert item.attempts == 3
    assert "connection reset" in errors
    assert "timed out after 0.05s" in errors


async def test_a_stale_attempt_cannot_overwrite_a_later_one(sessions: SessionFactory) -> None:
    outbox_id = await queue_message(sessions)
    async with sessions() as session, session.begin():
        (first,) = await claim_due(session, ["email"], 10, timedelta(0))
    # The first attempt's lease ran out at once, so another worker claims the item again.
    async with sessions() as session, session.begin():
        (second,) = await claim_due(session, ["email"], 10, timedelta(minutes=5))
    assert (first.attempt, second.attempt) == (1, 2)
    async with sessions() as session, session.begin():
        assert not await mark_sent(session, first, "stale-id")
        assert not await mark_failed(session, first, "stale failure")
        assert not await mark_retry(session, first, "stale retry", max_attempts=8)
    item = await stored(sessions, outbox_id)
    assert (item.status, item.provider_id, item.last_error) == (OutboxStatus.SENDING, None, None)
    async with sessions() as session, session.begin():
        assert await mark_sent(session, second, "real-id")
        # Sent is final: nothing moves it back or sideways.
        assert not await mark_failed(session, second, "too late")
        assert not await mark_retry(session, second, "too late", max_attempts=8)
    item = await stored(sessions, outbox_id)
    assert (item.status, item.provider_id, item.last_error) == (OutboxStatus.SENT, "real-id", None)


async def test_worker_killed_mid_send_is_taken_over_after_the_lease(
    sessions: SessionFactory,
) -> None:
    class HangsOnFirstAttempt(ProviderStandIn):
        def __init__(self) -> None:
            super().__init__()
            self.hanging = asyncio.Event()

        async def do_send(self, delivery: Delivery) -> str | None:
            if delivery.attempt == 1:
                self.attempts.append(delivery)
                self.hanging.set()
                await asyncio.Event().wait()
            return await super().do_send(delivery)

    sender = HangsOnFirstAttempt()
    outbox_id = await queue_message(sessions)
    doomed = fast_worker(sessions, sender, lease_seconds=1.0)
    task = asyncio.create_task(doomed.run())
    await asyncio.wait_for(sender.hanging.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    dead_attempt = sender.attempts[0]
    assert (await stored(sessions, outbox_id)).status == OutboxStatus.SENDING

    successor = fast_worker(sessions, sender, lease_seconds=1.0)
    assert await successor.run_once() == 0, "the lease still holds"
    item = await work_until_settled(successor, sessions, outbox_id)
    assert item.status == OutboxStatus.SENT
    assert item.attempts == 2
    assert item.provider_id == f"provider-{outbox_id}-2"
    assert [delivery.attempt for delivery in sender.accepted] == [2]

    # The dead attempt reporting late changes nothing.
    async with sessions() as session, session.begin():
        assert not await mark_sent(session, dead_attempt, "late-id")
        assert not await mark_retry(session, dead_attempt, "late error", max_attempts=8)
    after = await stored(sessions, outbox_id)
    assert (after.status, after.provider_id, after.attempts, after.sent_at) == (
        OutboxStatus.SENT,
        item.provider_id,
        2,
        item.sent_at,
    )


# FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has a single writer and no such race.
@pytest.mark.postgresql_only
async def test_concurrent_claims_skip_locked_rows(sessions: SessionFactory) -> None:
    ids = {await queue_message(sessions, f"c{n}@example.com") for n in range(10)}
    lease = timedelta(minutes=1)
    async with sessions() as first, first.begin():
        held = await claim_due(first, ["email"], 4, lease)
        # The first claim is not committed yet; a second one must skip its rows, not wait.
        async with sessions() as second, second.begin():
            rest = await asyncio.wait_for(claim_due(second, ["email"], 10, lease), 5)
    assert len(held) == 4
    assert len(rest) == 6
    assert {d.outbox_id for d in held} | {d.outbox_id for d in rest} == ids


async def test_two_workers_send_every_item_exactly_once(
    sessions: SessionFactory, database_url: str
) -> None:
    ids = {await queue_message(sessions, f"c{n}@example.com") for n in range(40)}
    sender = ProviderStandIn()
    # A second engine stands for a second server process on the same database.
    other_engine = make_engine(database_url)
    other_sessions = async_sessionmaker(other_engine, expire_on_commit=False)
    workers = [
        OutboxWorker(factory, {"email": sender}, poll_seconds=0.01, batch_size=5)
        for factory in (sessions, other_sessions)
    ]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        async with asyncio.timeout(30):
            while True:
                async with sessions() as session:
                    statuses = list(await session.scalars(select(OutboxItem.status)))
                if statuses.count(OutboxStatus.SENT) == len(ids):
                    break
                await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await other_engine.dispose()
    sent = [delivery.outbox_id for delivery in sender.accepted]
    assert sorted(sent) == sorted(ids)
    async with sessions() as session:
        attempts = set(await session.scalars(select(OutboxItem.attempts)))
    assert attempts == {1}


class CommitWitness(ProviderStandIn):
    """Checks through its own connection that what it is asked to send is committed."""

    def __init__(self, sessions: SessionFactory, *script: Outcome) -> None:
        super().__init__(*script)
        self.sessions = sessions
        self.committed_before_send: list[bool] = []

    async def do_send(self, delivery: Delivery) -> str | None:
        async with self.sessions() as session:
            item = await session.get(OutboxItem, delivery.outbox_id)
            interaction = await session.get(Interaction, delivery.payload["interaction_id"])
        self.committed_before_send.append(item is not None and interaction is not None)
        return await super().do_send(delivery)


async def reply_through_api(
    settings: Settings,
    sessions: SessionFactory,
    sender: Sender,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> tuple[TestClient[Any, Any], int, dict[str, Any]]:
    """Sign in to an app with `sender` for email and reply to a web-form conversation."""
    async with sessions() as session, session.begin():
        await create_operator(
            session,
            CLI,
            email="sup@example.com",
            name="Sup",
            role=Role.SUPERVISOR,
            password=PASSWORD,
        )
        result = await ingest(
            session,
            InboundEvent(
                channel="webform",
                external_id="form-1",
                addresses=[Address(IdentityKind.EMAIL, "ann@example.com")],
                subject="Question",
                text="Do you ship to Norway?",
            ),
        )
    server = await aiohttp_server(create_app(settings, senders={"email": sender}))
    client = await aiohttp_client(server)
    login = await client.post(
        "/api/v1/auth/login", json={"email": "sup@example.com", "password": PASSWORD}
    )
    assert login.status == 200
    client.session.headers[CSRF_HEADER] = (await login.json())["csrf_token"]
    response = await client.post(
        f"/api/v1/conversations/{result.conversation_id}/reply", json={"text": "We do."}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["outbox"]["status"] == "queued"
    return client, result.conversation_id, body


async def outbox_when_settled(
    client: TestClient[Any, Any], conversation_id: int
) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            response = await client.get(f"/api/v1/conversations/{conversation_id}/outbox")
            assert response.status == 200
            items: list[dict[str, Any]] = (await response.json())["items"]
            if all(item["status"] in ("sent", "failed") for item in items):
                return items
            await asyncio.sleep(0.05)


async def test_reply_is_committed_then_sent_by_the_channel(
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    sender = CommitWitness(sessions)
    client, conversation_id, body = await reply_through_api(
        settings, sessions, sender, aiohttp_server, aiohttp_client
    )
    (item,) = await outbox_when_settled(client, conversation_id)
    assert item["id"] == body["outbox"]["id"]
    assert item["status"] == "sent"
    assert item["provider_id"] == f"provider-{item['id']}-1"
    assert item["sent_at"] is not None
    assert sender.committed_before_send == [True]
    (delivery,) = sender.accepted
    assert delivery.recipient == "ann@example.com"
    assert delivery.payload["text"] == "We do."
    assert delivery.payload["subject"] == "Re: Question"
    # The form submission id means nothing to email, so there is nothing to thread onto.
    assert delivery.payload["in_reply_to"] is None


async def test_failed_send_shows_its_reason_in_the_api(
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    sender = ProviderStandIn(PermanentSendError("550 5.1.1 ann@example.com: no such user"))
    client, conversation_id, _ = await reply_through_api(
        settings, sessions, sender, aiohttp_server, aiohttp_client
    )
    (item,) = await outbox_when_settled(client, conversation_id)
    assert item["status"] == "failed"
    assert item["last_error"] == "550 5.1.1 ann@example.com: no such user"
    assert item["sent_at"] is None

"""Events reach other processes through PostgreSQL's NOTIFY: one notification a transaction.

A round trip per event was a large share of an ingest's cost; a transaction's events now go
as one JSON list just before it commits (more lists only past the payload limit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import asyncpg
import pytest

from core.db import SessionFactory, asyncpg_dsn
from core.event_types import CONTACT_CREATED, INTERACTION_CREATED, RESYNC
from core.events import (
    MAX_PAYLOAD,
    NOTIFY_CHANNEL,
    PROCESS_ID,
    Event,
    EventBus,
    emit,
    listen_postgresql,
)

pytestmark = pytest.mark.postgresql_only


@asynccontextmanager
async def notifications(database_url: str) -> AsyncIterator[list[str]]:
    """The payloads sent on omnicrm's channel while the block runs (and just after)."""
    received: list[str] = []
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    await connection.add_listener(NOTIFY_CHANNEL, lambda *args: received.append(args[3]))
    try:
        yield received
        await connection.execute("SELECT 1")  # notifications sent before this have arrived
    finally:
        await connection.close()


async def test_a_transactions_events_go_in_one_notification_in_order(
    database_url: str, sessions: SessionFactory
) -> None:
    async with notifications(database_url) as received:
        async with sessions() as session, session.begin():
            for number in range(1, 4):
                await emit(session, Event(INTERACTION_CREATED, {"interaction": number}))
        await asyncio.sleep(0.1)
    assert len(received) == 1
    sent = json.loads(received[0])
    assert [event["ids"]["interaction"] for event in sent] == [1, 2, 3]
    assert {event["origin"] for event in sent} == {PROCESS_ID}


async def test_a_large_transaction_is_split_below_the_payload_limit_and_loses_nothing(
    database_url: str, sessions: SessionFactory
) -> None:
    async with notifications(database_url) as received:
        async with sessions() as session, session.begin():
            for number in range(500):
                await emit(
                    session,
                    Event(INTERACTION_CREATED, {"interaction": number}, {"queue": "x" * 40}),
                )
        await asyncio.sleep(0.2)
    assert len(received) > 1
    assert all(len(payload.encode()) <= MAX_PAYLOAD for payload in received)
    numbers = [event["ids"]["interaction"] for p in received for event in json.loads(p)]
    assert numbers == list(range(500))


async def test_a_rolled_back_transaction_notifies_nobody(
    database_url: str, sessions: SessionFactory
) -> None:
    async with notifications(database_url) as received:
        async with sessions() as session:
            async with session.begin():
                await emit(session, Event(CONTACT_CREATED, {"contact": 1}))
                await session.rollback()
            async with session.begin():  # the next transaction of the session sends none
                pass
        await asyncio.sleep(0.1)
    assert received == []


async def test_the_listener_relays_other_processes_lists_and_single_events_and_skips_junk(
    database_url: str,
) -> None:
    bus = EventBus()
    stop = asyncio.Event()
    async with bus.subscribe() as queue:
        listener = asyncio.create_task(listen_postgresql(asyncpg_dsn(database_url), bus, stop))
        try:
            assert (await asyncio.wait_for(queue.get(), 10)).type == RESYNC  # connected
            other = [
                Event(CONTACT_CREATED, {"contact": 7}, origin="another-process"),
                Event(INTERACTION_CREATED, {"interaction": 8}, origin="another-process"),
            ]
            own = Event(CONTACT_CREATED, {"contact": 9})  # delivered locally already
            # A server of the version before sends one event, not a list (rolling upgrade).
            single = Event(CONTACT_CREATED, {"contact": 10}, origin="an-older-server")
            connection = await asyncpg.connect(asyncpg_dsn(database_url))
            try:
                for payload in (
                    "[" + ",".join(event.to_json() for event in [*other, own]) + "]",
                    "not json",
                    '[{"type": "contact.created"}]',
                    single.to_json(),
                ):
                    await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
            finally:
                await connection.close()
            relayed = [await asyncio.wait_for(queue.get(), 10) for _ in range(3)]
        finally:
            stop.set()
            with suppress(asyncio.CancelledError):
                await asyncio.wait_for(listener, 10)
    assert relayed == [*other, single]
    assert queue.empty()

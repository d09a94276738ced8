"""Two `omnicrm serve` processes routing one PostgreSQL database at once (issue 4, item 9).

Both servers run their routing engines. Work arrives through both, operators accept their
offers through both at the same moment and resolve work through either; when routing is
quiet, the database must show nobody above capacity, no conversation with two assignees or
two accepted offers, and no work waiting while an operator has room for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text

from core import auth
from core.audit import CLI
from core.clock import ManualClock
from core.conversations import assign
from core.db import SessionFactory
from core.models import (
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Presence,
    Role,
    utcnow,
)
from core.operators import create_operator
from core.queues import set_members
from routing.service import RoutingOptions
from routing.setup import create_queue
from tests.routing_checks import (
    accepted_offer_violations,
    capacity_violations,
    offer_violations,
    settled_violations,
)
from tests.routing_world import World, operator_actor
from tests.servers import RunningServer, omnicrm_server
from web.api import CSRF_HEADER

PASSWORD = "routing in two processes"
OPERATORS = 4
CAPACITY = 2
ARRIVALS = 24
# Work left at the end: less than the operators' room, so none of it may be left waiting.
LEFT = 5
QUIET_SECONDS = 1.5

# Several server processes share a database only on PostgreSQL.
pytestmark = pytest.mark.postgresql_only


@dataclass
class Console:
    """One operator signed in on both servers."""

    operator_id: int
    browsers: list[tuple[RunningServer, aiohttp.ClientSession, str]]

    async def call(self, server: int, method: str, path: str, **kwargs: Any) -> int:
        running, browser, csrf_token = self.browsers[server % len(self.browsers)]
        async with browser.request(
            method, f"{running.url}{path}", headers={CSRF_HEADER: csrf_token}, **kwargs
        ) as response:
            await response.read()
            return response.status


@asynccontextmanager
async def signed_in(
    servers: Sequence[RunningServer], email: str, operator_id: int
) -> AsyncIterator[Console]:
    async with AsyncExitStack() as stack:
        browsers = []
        for running in servers:
            browser = await stack.enter_async_context(
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            )
            login = await browser.post(
                f"{running.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert login.status == 200, await login.text()
            browsers.append((running, browser, (await login.json())["csrf_token"]))
        yield Console(operator_id, browsers)


async def test_two_servers_route_at_once_without_breaking_the_invariants(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    emails = [f"operator{number}@example.com" for number in range(OPERATORS)]
    async with sessions() as session, session.begin():
        operator_ids = []
        for number, email in enumerate(emails):
            operator = await create_operator(
                session,
                CLI,
                email=email,
                name=f"Operator {number}",
                role=Role.OPERATOR,
                password=PASSWORD,
                capacity={"messaging": CAPACITY},
            )
            operator_ids.append(operator.id)
        for name, config in [("Direct", {}), ("Offers", {"offer_timeout_seconds": 60})]:
            queue = await create_queue(session, CLI, name=name, config=config)
            await set_members(session, CLI, queue.id, operator_ids)
        _, token = await auth.create_token(session, CLI, "load")

    async with AsyncExitStack() as stack:
        servers = await asyncio.gather(
            *(
                stack.enter_async_context(
                    omnicrm_server(database_url, log_path=tmp_path / f"{name}.log")
                )
                for name in ("a", "b")
            )
        )
        consoles = [
            await stack.enter_async_context(signed_in(servers, email, operator_id))
            for email, operator_id in zip(emails, operator_ids, strict=True)
        ]
        for number, console in enumerate(consoles):
            status = await console.call(
                number, "PUT", "/api/v1/operators/me/presence", json={"presence": "available"}
            )
            assert status == 200
        integration = await stack.enter_async_context(aiohttp.ClientSession())

        async def arrive(number: int) -> None:
            response = await integration.post(
                f"{servers[number % 2].url}/api/v1/interactions",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "external_id": f"burst-{number}",
                    "contact": {"email": f"customer{number}@example.com"},
                    "text": "Hello, I need help",
                    "queue": "Offers" if number % 3 else "Direct",
                },
            )
            assert response.status == 201, await response.text()

        races: list[list[int]] = []
        resolved = itertools.count(1)
        done = asyncio.Event()

        async def work(console: Console) -> None:
            """Accept every offer through both servers at once; resolve work until only
            LEFT conversations remain, through either server."""
            turn = itertools.count()
            while not done.is_set():
                async with sessions() as session:
                    offers = list(
                        await session.scalars(
                            select(Offer.id).where(
                                Offer.operator_id == console.operator_id,
                                Offer.status == OfferStatus.PENDING,
                            )
                        )
                    )
                    held = list(
                        await session.scalars(
                            select(Conversation.id).where(
                                Conversation.assignee_id == console.operator_id,
                                Conversation.status == ConversationStatus.OPEN,
                            )
                        )
                    )
                for offer_id in offers:
                    path = f"/api/v1/offers/{offer_id}/accept"
                    races.append(
                        sorted(
                            await asyncio.gather(
                                console.call(0, "POST", path), console.call(1, "POST", path)
                            )
                        )
                    )
                if held and next(resolved) <= ARRIVALS - LEFT:
                    status = await console.call(
                        next(turn),
                        "POST",
                        f"/api/v1/conversations/{held[0]}/status",
                        json={"status": "resolved"},
                    )
                    assert status == 200
                await asyncio.sleep(0.05)

        workers = [asyncio.create_task(work(console)) for console in consoles]
        await asyncio.gather(*(arrive(number) for number in range(ARRIVALS)))
        try:
            seen = await asyncio.wait_for(quiet(sessions), 40)
        finally:
            done.set()
            await asyncio.gather(*workers)

    # Nobody above capacity, no conversation offered twice or offered while assigned, at any
    # moment looked at while both servers were busy.
    assert seen == []
    assert races, "no offer was accepted"
    # Each offer accepted through both servers at once: one wins, the other is refused.
    assert [race for race in races if race[0] != 200 or race[1] not in (404, 409)] == []
    async with sessions() as session:
        assert await capacity_violations(session) == []
        assert await offer_violations(session) == []
        assert await accepted_offer_violations(session) == []
        assert (
            await settled_violations(session, utcnow(), RoutingOptions().requeue_after_offline)
            == []
        )
        left = list(
            await session.scalars(
                select(Conversation.assignee_id).where(
                    Conversation.status == ConversationStatus.OPEN
                )
            )
        )
    # The operators have room for all the work left: it is all theirs.
    assert len(left) == LEFT
    assert None not in left
    for name in ("a", "b"):
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text()


async def quiet(sessions: SessionFactory) -> list[str]:
    """Wait until no offer is pending, enough work is resolved and nothing changed for a
    while; return the violations of the always-invariants seen on the way."""
    seen: list[str] = []
    last: object = None
    since = asyncio.get_running_loop().time()
    while True:
        async with sessions() as session:
            # One snapshot for all the queries, so a change between two of them counts once.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            seen += await capacity_violations(session)
            seen += await offer_violations(session)
            conversations = sorted(
                await session.execute(
                    select(Conversation.id, Conversation.assignee_id, Conversation.status)
                )
            )
            offers = sorted(await session.execute(select(Offer.id, Offer.status)))
        settled = len(conversations) == ARRIVALS and all(
            status != OfferStatus.PENDING for _, status in offers
        )
        resolved = sum(1 for *_, status in conversations if status == ConversationStatus.RESOLVED)
        now = asyncio.get_running_loop().time()
        if (conversations, offers) != last or not settled or resolved < ARRIVALS - LEFT:
            last, since = (conversations, offers), now
        elif now - since >= QUIET_SECONDS:
            return seen
        await asyncio.sleep(0.1)


async def test_work_an_operator_takes_during_a_pass_is_not_offered_to_anyone_else(
    sessions: SessionFactory,
) -> None:
    world = World(sessions, ManualClock(utcnow()))
    ann = await world.operator("Ann", presence=Presence.AWAY)
    bob = await world.operator("Bob", presence=Presence.BUSY)
    chat = await world.queue("Chat", [ann, bob], offer_timeout_seconds=60)
    work = await world.arrive(queue_id=chat)
    await world.route()
    await world.presence(ann, Presence.AVAILABLE)

    # Bob takes the waiting work for himself; while his transaction is open, a routing pass
    # (another process's) runs. It must not offer Ann what Bob is taking: it waits for Bob's
    # transaction (the routing lock), or a pass that read the work as waiting before would
    # offer it to Ann after Bob has it.
    async with sessions() as taker:
        await assign(taker, operator_actor(bob), work.conversation_id, bob)
        await taker.flush()
        routing = asyncio.create_task(world.route())
        await waiting_for_a_lock(sessions, routing)
        await taker.commit()
    await routing

    assert (await world.conversation(work.conversation_id)).assignee_id == bob
    async with sessions() as session:
        assert await offer_violations(session) == []


async def waiting_for_a_lock(sessions: SessionFactory, task: asyncio.Task[Any]) -> None:
    """Until `task` is done or a transaction on this database waits for a lock (the routing
    lock, or without it the conversation's row the other transaction holds)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while not task.done():
            async with sessions() as session:
                if await session.scalar(waiting):
                    return
            await asyncio.sleep(0.01)

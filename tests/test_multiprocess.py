"""Two `omnicrm serve` processes on one PostgreSQL database see each other's events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core import auth
from core.audit import CLI
from core.db import SessionFactory
from core.models import Role
from core.operators import create_operator
from core.queues import set_members
from routing.setup import create_queue
from tests.servers import omnicrm_server

PASSWORD = "two processes, one db"

# Several server processes share a database only on PostgreSQL (LISTEN/NOTIFY).
pytestmark = pytest.mark.postgresql_only


async def next_event(socket: aiohttp.ClientWebSocketResponse, wanted: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(socket.receive_json(), 10)
        if message["type"] == wanted:
            return message  # type: ignore[no-any-return]


async def test_an_interaction_ingested_by_one_server_reaches_the_other_live(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        watcher = await create_operator(
            session,
            CLI,
            email="watch@example.com",
            name="Watcher",
            role=Role.OPERATOR,
            password=PASSWORD,
        )
        # The watcher works the queue the interaction goes to: sockets forward only what
        # their operator may see, decided from labels that cross processes with the event.
        queue = await create_queue(session, CLI, name="Support")
        await set_members(session, CLI, queue.id, [watcher.id])
        _, token = await auth.create_token(session, CLI, "crm-sync")
    async with (
        omnicrm_server(database_url, log_path=tmp_path / "a.log") as server_a,
        omnicrm_server(database_url, log_path=tmp_path / "b.log") as server_b,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser_b,
        aiohttp.ClientSession() as integration,
    ):
        login = await browser_b.post(
            f"{server_b.url}/api/v1/auth/login",
            json={"email": "watch@example.com", "password": PASSWORD},
        )
        assert login.status == 200
        async with browser_b.ws_connect(f"{server_b.url}/ws", origin=server_b.url) as socket:
            assert (await socket.receive_json())["type"] == "hello"
            response = await integration.post(
                f"{server_a.url}/api/v1/interactions",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "external_id": "ext-1",
                    "contact": {"email": "far@example.com"},
                    "text": "written to server A",
                    "queue": "Support",
                },
            )
            assert response.status == 201, await response.text()
            created = await response.json()
            event = await next_event(socket, "interaction.created")
            assert event["ids"]["interaction"] == created["interaction_id"]
            assert event["labels"] == {
                "channel": "api",
                "direction": "in",
                "queues": str(queue.id),
                "operators": "",
            }


async def test_a_server_does_not_echo_its_own_events_twice(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        await create_operator(
            session,
            CLI,
            email="echo@example.com",
            name="Echo",
            # A supervisor's socket hears of every conversation, queued or not.
            role=Role.SUPERVISOR,
            password=PASSWORD,
        )
        _, token = await auth.create_token(session, CLI, "echo-sync")
    async with (
        omnicrm_server(database_url, log_path=tmp_path / "a.log") as server,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        await browser.post(
            f"{server.url}/api/v1/auth/login",
            json={"email": "echo@example.com", "password": PASSWORD},
        )
        async with browser.ws_connect(f"{server.url}/ws", origin=server.url) as socket:
            await socket.receive_json()
            await browser.post(
                f"{server.url}/api/v1/interactions",
                headers={"Authorization": f"Bearer {token}"},
                json={"external_id": "e-1", "contact": {"email": "e@example.com"}, "text": "x"},
            )
            await next_event(socket, "interaction.created")
            with pytest.raises(TimeoutError):
                await next_event_within(socket, "interaction.created", 1.0)


async def next_event_within(
    socket: aiohttp.ClientWebSocketResponse, wanted: str, seconds: float
) -> dict[str, Any]:
    return await asyncio.wait_for(next_event(socket, wanted), seconds)


async def test_websocket_refuses_a_foreign_origin(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with sessions() as session, session.begin():
        await create_operator(
            session, CLI, email="o@example.com", name="O", role=Role.OPERATOR, password=PASSWORD
        )
    async with (
        omnicrm_server(database_url, log_path=tmp_path / "a.log") as server,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
    ):
        await browser.post(
            f"{server.url}/api/v1/auth/login", json={"email": "o@example.com", "password": PASSWORD}
        )
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(f"{server.url}/ws", origin="https://evil.example")
        assert refused.value.status == 403


async def test_sigterm_stops_the_server_cleanly(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    async with omnicrm_server(database_url, log_path=log) as server:
        server.process.terminate()
        code = await asyncio.wait_for(server.process.wait(), 15)
    assert code == 0
    assert "Traceback" not in log.read_text()

"""`omnicrm serve --workers N`: N web processes on one port and a worker doing the background
work (web/serve.py), under a supervisor that replaces a process that dies."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from core.audit import CLI
from core.auth import create_token
from core.clock import ManualClock
from core.db import SessionFactory
from core.models import utcnow
from tests.routing_world import World
from tests.servers import RunningServer, omnicrm_server
from web.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("keep_logging")]


def children(pid: int) -> dict[int, str]:
    """The processes `pid` started, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
        if parent == pid and command:  # a process that ended has no command line left
            found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def processes_of(server: RunningServer, count: int) -> dict[int, str]:
    for _ in range(100):
        found = children(server.process.pid)
        if len(found) == count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} processes expected: {children(server.process.pid)}")


@pytest.mark.postgresql_only
async def test_web_processes_answer_while_the_worker_routes_and_a_dead_one_is_replaced(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    world = World(sessions, ManualClock(utcnow()))
    ann = await world.operator("Ann")
    await world.queue("Support", [ann])
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "crm")
    log = tmp_path / "server.log"
    async with omnicrm_server(database_url, {"OMNICRM_WORKERS": "2"}, log_path=log) as server:
        found = await processes_of(server, 3)
        webs = [pid for pid, command in found.items() if "--role web" in command]
        assert len(webs) == 2
        assert [command for command in found.values() if command.endswith(" worker")]

        async def post(number: int) -> int:
            # A connection of its own each time, so the kernel spreads them over the processes.
            async with aiohttp.ClientSession() as http:
                response = await http.post(
                    f"{server.url}/api/v1/interactions",
                    headers={"Authorization": f"Bearer {token}"},
                    json={
                        "external_id": f"w-{number}",
                        "contact": {"email": f"w{number}@example.com"},
                        "text": "Hello",
                        "queue": "Support",
                    },
                )
                assert response.status == 201, await response.text()
                return int((await response.json())["conversation_id"])

        conversations = [await post(number) for number in range(4)]
        for conversation_id in conversations:  # the worker routes what the web processes took
            for _ in range(100):
                if (await world.conversation(conversation_id)).assignee_id == ann:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"conversation {conversation_id} was not routed")
        # ...and no web process ran a routing pass.
        for _ in range(6):
            async with aiohttp.ClientSession() as http:
                metrics = await (await http.get(f"{server.url}/metrics")).text()
            assert 'omnicrm_routing_decisions_total{kind="assign"}' not in metrics

        os.kill(webs[0], signal.SIGKILL)
        replaced = await processes_of(server, 3)
        assert webs[0] not in replaced
        assert len([command for command in replaced.values() if "--role web" in command]) == 2
        assert await post(99)

        server.process.terminate()
        assert await asyncio.wait_for(server.process.wait(), 40) == 0
        assert children(server.process.pid) == {}
    assert not any(alive(pid) for pid in replaced)
    assert "Traceback" not in log.read_text()


@pytest.mark.postgresql_only
async def test_web_processes_alone_when_the_worker_runs_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    environment = {"OMNICRM_WORKERS": "2"}
    async with omnicrm_server(database_url, environment, arguments=["--no-worker"]) as server:
        found = await processes_of(server, 2)
        assert all(command.endswith("serve --role web") for command in found.values())


def test_sqlite_serves_from_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNICRM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    assert main(["serve", "--workers", "2"]) == 2
    assert capsys.readouterr().err == (
        "omnicrm: workers = 2 needs PostgreSQL: SQLite serves from one process\n"
    )


def test_a_worker_beside_sqlite_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNICRM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    assert main(["worker"]) == 2
    assert capsys.readouterr().err == (
        "omnicrm: omnicrm worker needs PostgreSQL: on SQLite `omnicrm serve` does the "
        "background work in its one process\n"
    )


def test_web_processes_without_a_worker_beside_sqlite_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNICRM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    assert main(["serve", "--no-worker"]) == 2
    assert capsys.readouterr().err == (
        "omnicrm: --no-worker needs PostgreSQL: on SQLite the one process does the background "
        "work\n"
    )

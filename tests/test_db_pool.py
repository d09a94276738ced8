"""PostgreSQL's pool: a connection is pinged only after sitting idle, one that died while idle
is replaced before anyone gets it, and the pool keeps the connections the setting asks for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import core.db
from core.db import asyncpg_dsn, make_engine
from core.settings import Settings
from tests.conftest import _admin_execute
from web.app import create_app
from web.keys import ENGINE

pytestmark = pytest.mark.postgresql_only


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_that_died_while_idle_is_replaced_unnoticed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        # The database restarted, or a proxy closed the idle connection.
        await _admin_execute(f"SELECT pg_terminate_backend({first})")
        monkeypatch.setattr(core.db, "IDLE_PING_SECONDS", 0.0)  # it has been idle long enough
        second = await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert second != first


async def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    pings = []
    real_ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        for _ in range(5):  # a busy server: every checkout right after the last
            await _backend_pid(engine)
        busy = len(pings)
        monkeypatch.setattr(core.db, "IDLE_PING_SECONDS", 0.0)
        await _backend_pid(engine)
    finally:
        await engine.dispose()
    assert busy == 0
    assert len(pings) == 1


async def test_a_burst_within_the_pool_opens_no_connection_twice(database_url: str) -> None:
    """The pool keeps `database_pool_size` connections open: a second burst as large as the
    first is served by the same backends (a pool that closed them would reconnect, a TLS
    negotiation and a sign-in each, under exactly the load that can least afford it)."""
    size = Settings(database_url=database_url, database_pool_size=6).database_pool_size
    engine = make_engine(database_url, pool_size=size)

    async def burst() -> set[int]:
        async with AsyncExitStack() as stack:
            connections = [await stack.enter_async_context(engine.connect()) for _ in range(size)]
            pids = [await c.scalar(text("SELECT pg_backend_pid()")) for c in connections]
        return {int(pid) for pid in pids}

    try:
        first = await burst()
        second = await burst()
        assert engine.pool.size() == size  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    assert len(first) == size
    assert second == first


async def test_the_server_opens_the_pool_the_setting_asks_for(
    settings: Settings, engine: AsyncEngine, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    small = settings.model_copy(update={"database_pool_size": 3})
    app = create_app(small, background_workers=False)
    await aiohttp_server(app)
    assert app[ENGINE].pool.size() == 3  # type: ignore[attr-defined]


async def test_a_query_estimated_as_costly_is_not_compiled_first(database_url: str) -> None:
    """PostgreSQL would JIT-compile a query estimated past `jit_above_cost` (25 to 30 ms for a
    routing pass's read of a large backlog, which then ran in 5): omnicrm's connections have
    JIT off, in every transaction, a rolled back one's successor too."""
    costly = (
        "EXPLAIN SELECT sum(a * b) FROM generate_series(1, 100000) a, generate_series(1, 1000) b"
    )
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        for outcome in ("rollback", "commit", "rollback"):
            async with engine.connect() as connection:
                plan = "\n".join((await connection.execute(text(costly))).scalars())
                assert "JIT" not in plan
                assert await connection.scalar(text("SHOW jit")) == "off"
                await getattr(connection, outcome)()
    finally:
        await engine.dispose()
    # A connection of the server's defaults would compile it: the check above can fail.
    plain = await asyncpg.connect(asyncpg_dsn(database_url), timeout=5)
    try:
        assert "JIT" in "\n".join(row[0] for row in await plain.fetch(costly))
    finally:
        await plain.close()

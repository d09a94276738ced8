"""PostgreSQL's pool: a connection is pinged only after sitting idle, and one that died while
idle is replaced before anyone gets it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

import core.db
from core.db import make_engine
from tests.conftest import _admin_execute

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

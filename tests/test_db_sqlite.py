"""SQLite through aiosqlite at one thread hop per statement (core/db_sqlite.py): what
SQLAlchemy reads of a cursor (rows, rowcount, lastrowid, errors) as aiosqlite's own cursor
gives it, for one call into the connection's thread instead of four."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core import db_sqlite
from core.db import make_engine

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hops.db'}")
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
        )
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls made into the connection's thread, by function name."""
    made: list[str] = []
    real = db_sqlite.OneHopConnection._execute

    async def counted(self: db_sqlite.OneHopConnection, fn: Any, *args: Any) -> Any:
        made.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(db_sqlite.OneHopConnection, "_execute", counted)
    return made


async def test_a_statement_costs_one_call_into_the_thread(
    sqlite_engine: AsyncEngine, hops: list[str]
) -> None:
    async with sqlite_engine.connect() as connection:
        hops.clear()
        rows = (await connection.execute(text("SELECT 1 UNION ALL SELECT 2"))).all()
    assert [tuple(row) for row in rows] == [(1,), (2,)]
    # BEGIN IMMEDIATE (core/db.py), the statement and the connection's release: aiosqlite's
    # own cursor made four calls per statement (cursor, execute, fetchall, close).
    assert hops == ["_execute", "_execute", "rollback"]


async def test_writes_report_their_rows_ids_and_counts(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.begin() as connection:
        returned = await connection.execute(
            text("INSERT INTO item (name) VALUES ('a') RETURNING id, name")
        )
        assert [tuple(row) for row in returned] == [(1, "a")]
        inserted = await connection.execute(text("INSERT INTO item (name) VALUES ('b')"))
        assert inserted.lastrowid == 2
        many = await connection.execute(
            text("INSERT INTO item (name) VALUES (:name)"), [{"name": "c"}, {"name": "d"}]
        )
        assert many.rowcount == 2
        updated = await connection.execute(text("UPDATE item SET name = name || '!'"))
        assert updated.rowcount == 4
    async with sqlite_engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM item ORDER BY id"))).scalars()
        assert list(names) == ["a!", "b!", "c!", "d!"]


async def test_an_error_is_sqlalchemys_and_the_transaction_rolls_back(
    sqlite_engine: AsyncEngine,
) -> None:
    async def twice() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("INSERT INTO item (name) VALUES ('same')"))
            await connection.execute(text("INSERT INTO item (name) VALUES ('same')"))

    with pytest.raises(IntegrityError):
        await twice()
    async with sqlite_engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM item")) == 0

"""SQLite through aiosqlite at one thread hop per statement.

aiosqlite runs the `sqlite3` connection in a thread of its own and hands each call over to it.
SQLAlchemy's adapter makes four calls per statement (open a cursor, execute, fetch the rows,
close the cursor), so every statement waits four times for the thread and four times for
the event loop to take the answer back, and on SQLite's one pooled connection (core/db.py)
every other request waits behind those hops. Here a cursor does all four in one call: it
executes, fetches every row and closes in the connection's thread, and then answers
`fetchall`, `description`, `rowcount` and `lastrowid` from what it brought back.

Every row is fetched at once, as SQLAlchemy's adapter does anyway for its ordinary cursors; a
server-side cursor (`stream()`, which omnicrm does not use on SQLite) would get its rows all at
once too. Everything else (commit, rollback, close, functions) is aiosqlite's own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Self, TypeVar

import aiosqlite

T = TypeVar("T")


class _Executed(NamedTuple):
    rows: list[Any]
    description: Any
    rowcount: int
    lastrowid: int | None


def _execute(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Executed:
    """In the connection's thread: the statement executed, its rows fetched, cursor closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return _Executed(rows, cursor.description, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class OneHopCursor:
    """What SQLAlchemy's aiosqlite adapter uses of a cursor, one thread hop per execute."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Self:
        self._take(await self._connection.run(_execute, sql, parameters or (), False))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Self:
        self._take(await self._connection.run(_execute, sql, list(parameters), True))
        return self

    def _take(self, executed: _Executed) -> None:
        self._rows = deque(executed.rows)
        self.description = executed.description
        self.rowcount = executed.rowcount
        self.lastrowid = executed.lastrowid

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(size or self.arraysize, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors cost one thread hop per statement."""

    def cursor(self) -> OneHopCursor:  # type: ignore[override]  # no hop to make one
        return OneHopCursor(self)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(sqlite3_connection, *args)` in the connection's thread: one hop."""
        result: T = await self._execute(function, self._conn, *args)  # type: ignore[no-untyped-call]
        return result


def connect(database: str, **kwargs: Any) -> OneHopConnection:
    """A connection to open with `await`, as `aiosqlite.connect(database, **kwargs)`."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = OneHopConnection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for aiosqlite's own: a connection left open must not keep the
    # interpreter from exiting.
    connection._thread.daemon = True
    return connection

"""The ceilings for bench/ingest.py: bare aiohttp handlers that parse a form and answer 303.

- **Empty** (no `--database`): what any aiohttp form endpoint must do (read and parse the
  body, answer with a redirect) and nothing omnicrm does (validation, identity, storage).
- **Durable write** (`--database postgresql://…` or a SQLite file): the same, plus the one
  thing no durable ingest can skip: the submission committed before the answer, as a single
  `INSERT … ON CONFLICT DO NOTHING` into a one-table database with a unique key on the
  submission id (a repeated post is stored once, as omnicrm's idempotency key does).
  PostgreSQL through an asyncpg pool (at most omnicrm's pool_size + max_overflow per process);
  SQLite through one aiosqlite connection with omnicrm's pragmas (core/db.py: WAL,
  synchronous=NORMAL, the same busy timeout), each INSERT its own committed transaction.

Start several on one port (they listen with SO_REUSEPORT, as `omnicrm serve`'s web processes
do) to compare with omnicrm's several web processes; the table is made beforehand with
`create_table` (from the driver, once: several processes creating it at once would race).

    python bench/bare_server.py PORT [--database postgresql://…|PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

TABLE = "submission"
POSTGRESQL_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (submission_id text PRIMARY KEY, email text NOT NULL, "
    "message text NOT NULL, received_at timestamptz NOT NULL)"
)
SQLITE_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (submission_id TEXT PRIMARY KEY, email TEXT NOT NULL, "
    "message TEXT NOT NULL, received_at TEXT NOT NULL)"
)
POSTGRESQL_INSERT = (
    f"INSERT INTO {TABLE} (submission_id, email, message, received_at) "  # noqa: S608 - constant
    "VALUES ($1, $2, $3, $4) ON CONFLICT (submission_id) DO NOTHING"
)
SQLITE_INSERT = (
    f"INSERT INTO {TABLE} (submission_id, email, message, received_at) "  # noqa: S608 - constant
    "VALUES (?, ?, ?, ?) ON CONFLICT (submission_id) DO NOTHING"
)
# As core/db.py sets them on omnicrm's SQLite connection.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
)
# omnicrm's PostgreSQL pool per process (core/db.py): pool_size 20 kept, 10 more for bursts.
POOL_MIN, POOL_MAX = 20, 30

# Stores one submission: (submission_id, email, message).
Store = Callable[[str, str, str], Awaitable[None]]
STORE: web.AppKey[Store] = web.AppKey("store")


def is_postgresql(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


async def accept_form(request: web.Request) -> web.Response:
    fields = await request.post()
    if "email" not in fields:
        return web.json_response({"error": "email missing"}, status=400)
    store = request.app.get(STORE)
    if store is not None:
        await store(
            str(fields.get("submission_id", "")),
            str(fields["email"]),
            str(fields.get("message", "")),
        )
    raise web.HTTPSeeOther("/thanks")


def make_app(database: str | None) -> web.Application:
    app = web.Application()
    app.router.add_post("/forms/{slug}", accept_form)
    if database is not None:
        app.cleanup_ctx.append(
            _postgresql_store(database) if is_postgresql(database) else _sqlite_store(database)
        )
    return app


def _postgresql_store(dsn: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store_context(app: web.Application) -> AsyncIterator[None]:
        import asyncpg

        pool = await asyncpg.create_pool(dsn, min_size=POOL_MIN, max_size=POOL_MAX)

        async def store(submission_id: str, email: str, message: str) -> None:
            # Outside a transaction block one statement is its own transaction: committed
            # (synchronous_commit as the server has it, on by default) when execute returns.
            await pool.execute(POSTGRESQL_INSERT, submission_id, email, message, _now())

        app[STORE] = store
        yield
        await pool.close()

    return store_context


def _sqlite_store(path: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def store_context(app: web.Application) -> AsyncIterator[None]:
        import aiosqlite

        # isolation_level=None: autocommit, so the INSERT commits as it runs, one hop to
        # aiosqlite's thread per submission.
        connection = await aiosqlite.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            await connection.execute_fetchall(pragma)

        async def store(submission_id: str, email: str, message: str) -> None:
            params = (submission_id, email, message, _now().isoformat())
            await connection.execute_fetchall(SQLITE_INSERT, params)

        app[STORE] = store
        yield
        await connection.close()

    return store_context


def _now() -> datetime:
    return datetime.now(UTC)


async def create_table(database: str) -> None:
    """The durable handler's table, made once before its processes start."""
    if is_postgresql(database):
        import asyncpg

        connection = await asyncpg.connect(database)
        try:
            await connection.execute(POSTGRESQL_SCHEMA)
        finally:
            await connection.close()
        return
    import aiosqlite

    async with aiosqlite.connect(database, isolation_level=None) as connection:
        for statement in (*SQLITE_PRAGMAS, SQLITE_SCHEMA):
            await connection.execute_fetchall(statement)


async def count_rows(database: str) -> int:
    """Submissions the durable handler stored."""
    query = f"SELECT count(*) FROM {TABLE}"  # noqa: S608 - a constant
    if is_postgresql(database):
        import asyncpg

        connection = await asyncpg.connect(database)
        try:
            return int(await connection.fetchval(query))
        finally:
            await connection.close()
    import aiosqlite

    async with aiosqlite.connect(database) as connection:
        rows: Any = await connection.execute_fetchall(query)
        return int(rows[0][0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument(
        "--database", help="postgresql://… or a SQLite file: the durable-write handler"
    )
    args = parser.parse_args(argv)
    web.run_app(
        make_app(args.database),
        host="127.0.0.1",
        port=args.port,
        reuse_port=True,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()

"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core import db_sqlite

SessionFactory = async_sessionmaker[AsyncSession]

# libpq's sslmode values; asyncpg's `ssl` argument takes the same names with the same meaning.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq's certificate options, which asyncpg reads from the environment instead of the URL.
_SSL_FILES = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslpassword": "PGSSLPASSWORD",
}


def is_postgresql(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def postgresql_url(database_url: str) -> URL:
    """The PostgreSQL URL with its TLS mode as libpq's `?sslmode=`; ValueError (one line) if
    it cannot be honoured faithfully.

    `sslmode=` (libpq's spelling, as in most hosting providers' URLs) and `ssl=` (asyncpg's)
    are accepted with the same values (SSL_MODES). The result keeps `sslmode`, which asyncpg
    reads in a DSN too (the event listener and the mail pollers' locks connect with one);
    `make_engine` hands it to asyncpg as `ssl`. Certificate files are not URL options for
    asyncpg: it reads them from PGSSLROOTCERT, PGSSLCERT, PGSSLKEY and friends.
    """
    url = make_url(database_url)
    query = dict(url.query)
    given = [query[key] for key in ("sslmode", "ssl") if key in query]
    # A repeated key comes as a tuple of its values.
    modes = {value for item in given for value in ((item,) if isinstance(item, str) else item)}
    if len(modes) > 1:
        raise ValueError("give the TLS mode once: sslmode= or ssl=, not both with other values")
    for key, variable in _SSL_FILES.items():
        if key in query:
            raise ValueError(
                f"{key}= is not taken in the URL by asyncpg; set ssl=verify-full (or another "
                f"mode) in the URL and the file in the {variable} environment variable"
            )
    if not modes:
        return url
    mode = modes.pop()
    if mode not in SSL_MODES:
        raise ValueError(
            f"sslmode/ssl={mode!r} is not a TLS mode; use ssl= with one of {', '.join(SSL_MODES)}"
        )
    return url.difference_update_query(["ssl"]).update_query_dict({"sslmode": mode})


# Connections a process keeps open to PostgreSQL (the `database_pool_size` setting); half as
# many again may open for a burst, and close when returned.
DEFAULT_POOL_SIZE = 20


def asyncpg_dsn(url: str | URL) -> str:
    """The DSN `asyncpg.connect` itself takes for a PostgreSQL URL of omnicrm's (the
    `postgresql+asyncpg` driver name dropped; `sslmode`, as `postgresql_url` keeps it, is
    read by asyncpg too): for the connections made outside the engine (the event listener,
    the pollers' locks)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(
    database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE, **kwargs: Any
) -> AsyncEngine:
    """Create an engine; SQLite gets WAL, a busy timeout and one serialized writer;
    PostgreSQL's TLS mode is read as `postgresql_url` describes (ValueError if unusable), and a
    pool of `pool_size` connections kept open: a connection opened per burst and closed when
    returned costs a TLS negotiation and an authentication each time (bench/ingest.py)."""
    if database_url.startswith("sqlite"):
        # One connection per process: SQLite has a single writer anyway, and queueing on the
        # pool in asyncio is cheaper and fairer than SQLITE_BUSY retries between connections.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 60)
        kwargs.setdefault("async_creator", _one_hop_creator(database_url))
        engine = create_async_engine(database_url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("max_overflow", pool_size // 2)
    engine = create_async_engine(postgresql_url(database_url), **kwargs)
    _ping_when_idle(engine)
    _without_jit(engine)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _ssl_mode(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        # SQLAlchemy passes the URL's query as keywords; asyncpg calls sslmode `ssl`.
        if "sslmode" in params:
            params["ssl"] = params.pop("sslmode")

    return engine


# A pooled connection unused this long is pinged before it is handed out.
IDLE_PING_SECONDS = 10.0
_RETURNED_AT = "omnicrm.returned_at"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection only when it sat unused for IDLE_PING_SECONDS: one that
    died meanwhile (a database restart, a proxy's idle timeout) is replaced before a request
    gets it, while a busy server's connections, used moments ago, cost no round trip. (The
    pool's own pre-ping pinged at every checkout: a round trip or three per request.) A
    connection that breaks in use is still found by the error, and the pool renewed."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < IDLE_PING_SECONDS:
            return  # new, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if not engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            # The pool drops it and hands out a new connection instead.
            raise exc.DisconnectionError("a pooled connection died while idle")


def _without_jit(engine: AsyncEngine) -> None:
    """Turn PostgreSQL's JIT compilation off for omnicrm's connections. JIT pays off for long
    analytical queries; omnicrm's are short, but a planner's estimate past `jit_above_cost`
    (a routing pass's read of the waiting backlog, once the statistics see the backlog as
    large) had each execution spend 25 to 30 ms compiling a query that then ran in 5. Set per
    connection, once, outside any transaction (a SET rolled back with it would be undone)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_jit(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute("SET jit = off")
        cursor.close()
        dbapi_connection.autocommit = autocommit


def _one_hop_creator(database_url: str) -> Callable[[], Awaitable[Any]]:
    """Connections as SQLAlchemy's aiosqlite dialect opens them (the URL's file and options),
    at one thread hop per statement (core/db_sqlite.py)."""
    url = make_url(database_url)
    args, options = url.get_dialect()().create_connect_args(url)

    async def create() -> Any:
        return await db_sqlite.connect(*args, **options)

    return create


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front, so a second process gets a clean wait on busy_timeout
        # instead of a deadlock error when a read transaction later tries to write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits when the block ends and rolls back on error."""
    async with factory() as session, session.begin():
        yield session

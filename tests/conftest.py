"""Fixtures: database tests run on SQLite, and also on a real PostgreSQL where the database
can change their outcome (`pytest_generate_tests`).

PostgreSQL is reached at OMNICRM_TEST_POSTGRES_URL (default: the local server as postgres);
the suite creates its own database and drops it at the end. Without a reachable server, or
when it refuses the login (wrong user or password, no such database), the PostgreSQL half is
skipped with the reason, except under CI=true, where that is a failure.

OMNICRM_TEST_CLOCK_SHIFT_DAYS=N runs the whole suite with omnicrm's clock N days away from the
machine's (`make test-shifted`), so a test that only passes near the date it was written in
shows up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import hypothesis
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from channels.registry import ChannelRegistry, default_channels
from core import clock, passwords
from core.audit import CLI
from core.credentials import CredentialCipher
from core.db import SessionFactory, asyncpg_dsn, make_engine
from core.events import EventBus, session_info
from core.migrate import upgrade_sync
from core.models import Base, Operator, Role
from core.operators import create_operator
from core.pipelines import seed_default
from core.settings import Settings
from web.api import CSRF_HEADER
from web.app import create_app

log = logging.getLogger(__name__)

# `dovecot` and `smtp_server`; the routing engine's `world` and `routing`.
pytest_plugins = ["tests.mailservers", "tests.routing_engine"]

# Apps and server processes of the suite suggest with the lexical engine, so none of them
# loads the embedding model (seconds and hundreds of MB each); the tests of the semantic
# engine ask for it by name (tests/test_suggestions_semantic.py).
os.environ.setdefault("OMNICRM_SUGGESTION_ENGINE", "lexical")

# Hypothesis fails an example that took over 200 ms: a timed assertion, which a loaded machine
# (a full suite on two cores) fails for nothing. Its other checks stay.
hypothesis.settings.register_profile("omnicrm", deadline=None)
hypothesis.settings.load_profile("omnicrm")

POSTGRES_ADMIN_URL = os.environ.get(
    "OMNICRM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session", autouse=True)
def built_in_channels() -> None:
    """Core's functions know the channels an app runs; tests that call them without an app
    run the built-in ones (an app installs its own when it is created)."""
    ChannelRegistry(default_channels()).install()


@pytest.fixture(scope="session", autouse=True)
def shifted_clock() -> Iterator[None]:
    """With OMNICRM_TEST_CLOCK_SHIFT_DAYS set, the suite runs at another date."""
    days = os.environ.get("OMNICRM_TEST_CLOCK_SHIFT_DAYS")
    if not days:
        yield
        return
    with clock.using(clock.ShiftedClock(timedelta(days=float(days)))):
        yield


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """The suite hashes with argon2's cheapest parameters (production's cost about a second
    per test user on a busy machine); tests/run_cli.py does the same for server processes."""
    with passwords.using(passwords.CHEAP):
        yield


async def _admin_execute(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _postgresql_database() -> Iterator[str]:
    import asyncpg

    name = f"omnicrm_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    except (OSError, ConnectionError) as exc:
        unavailable(f"PostgreSQL not reachable at {_safe(POSTGRES_ADMIN_URL)}: {exc}")
    except (
        asyncpg.InvalidAuthorizationSpecificationError,  # wrong user or password, pg_hba
        asyncpg.InvalidCatalogNameError,  # no such database
    ) as exc:
        unavailable(
            f"PostgreSQL at {_safe(POSTGRES_ADMIN_URL)} refused the login: {exc} "
            "(set OMNICRM_TEST_POSTGRES_URL)"
        )
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_sync(url)
        yield url
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs what this machine lacks (PostgreSQL, Dovecot, wrk, the shared
    data), saying what; under CI=true, where .ci/run installs everything, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


DATABASES = {
    "sqlite_only": ["sqlite"],
    "both_databases": ["sqlite", "postgresql"],
    "postgresql_only": ["postgresql"],
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Which databases a test runs on: SQLite, where the database cannot change its outcome
    (who may call a route, what a body must hold, what a page shows); both, for a test or
    module marked `both_databases` (SQL that differs between them: ordering and paging,
    search, JSON, dates, locking, constraints, migrations); PostgreSQL alone, marked
    `postgresql_only` (what SQLite cannot do: several server processes, LISTEN/NOTIFY). A
    test's own mark wins over its module's (`sqlite_only` in a module marked both)."""
    if "database_url" not in metafunc.fixturenames:
        return
    chosen = next(
        (mark.name for mark in metafunc.definition.iter_markers() if mark.name in DATABASES),
        "sqlite_only",
    )
    metafunc.parametrize("database_url", DATABASES[chosen], indirect=True, scope="session")


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of the backend the test runs on (`pytest_generate_tests`), shared
    by the session and emptied per test."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "omnicrm.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_sync(url)
        yield url
    else:
        yield from _postgresql_database()


async def empty_database(engine: AsyncEngine) -> None:
    """Every table emptied, children first, and (PostgreSQL) every sequence back at 1.

    PostgreSQL: DELETE in one round trip, not TRUNCATE, which gives each of the ~50 tables a
    new file (0.25-0.35 s a test against 0.01 s)."""
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            script = "".join(f'DELETE FROM "{name}";' for name in tables) + (
                "SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S';"
            )
            raw = await connection.get_raw_connection()
            # asyncpg's execute without arguments takes several statements at once.
            await raw.driver_connection.execute(script)  # type: ignore[union-attr]
        else:
            for name in tables:
                await connection.execute(text(f'DELETE FROM "{name}"'))
        # What migrations put in every database.
        await seed_default(connection)


@pytest.fixture
async def scratch_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test's backend, of its own (the shared one is at head): for
    tests that migrate from an older revision."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"omnicrm_scratch_{secrets.token_hex(4)}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def is_postgresql(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database.

    On SQLite nothing of this test has opened the database yet, so its write lock is free
    unless something of an earlier test still writes: then who holds the file open is written
    down first (`leftover_writers`), and said if emptying it fails with "database is locked"."""
    leftovers = leftover_writers(database_url)
    if leftovers is not None:
        log.warning("SQLite's write lock is held before the test starts: %s", leftovers)
    engine = make_engine(database_url)
    try:
        await empty_database(engine)
    except OperationalError as exc:
        await engine.dispose()
        if leftovers is None or "database is locked" not in str(exc.orig):
            raise
        pytest.fail(f"the database stayed locked; before the test: {leftovers}")
    yield engine
    await engine.dispose()


def leftover_writers(database_url: str) -> str | None:
    """None if the SQLite database's write lock is free now (or the database is not SQLite);
    else what may hold it: other processes with the file open, and connections of this
    process inside a transaction (with the threads alive here)."""
    if not database_url.startswith("sqlite"):
        return None
    path = Path(make_url(database_url).database or "")
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return None
    except sqlite3.OperationalError:
        pass
    finally:
        probe.close()
    # Identity, not isinstance: some modules' lazy objects warn when asked their class.
    writing = [
        found
        for found in gc.get_objects()
        if type(found) is sqlite3.Connection and _in_transaction(found)
    ]
    threads = sorted(thread.name for thread in threading.enumerate())
    return (
        f"processes with the file open: {_processes_with(path) or 'none but this one'}; "
        f"connections of this process in a transaction: {len(writing)}; threads: {threads}"
    )


def _in_transaction(connection: sqlite3.Connection) -> bool:
    try:
        return connection.in_transaction
    except sqlite3.ProgrammingError:  # closed
        return False


def _processes_with(path: Path) -> list[str]:
    """Other processes holding `path` (or its -wal/-shm) open, as 'pid command line'."""
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        pid = int(fd_dir.parent.name)
        if pid == os.getpid():
            continue
        try:
            if not any(os.readlink(fd) in names for fd in fd_dir.iterdir()):
                continue
            command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append(f"{pid} {command.strip()[:200]}")
    return found


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def sessions(engine: AsyncEngine, bus: EventBus) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, info=session_info(bus))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        log_json=False,
        outbox_poll_seconds=0.05,
        attachments_dir=str(tmp_path / "attachments"),
    )


@pytest.fixture
def cipher(settings: Settings) -> CredentialCipher:
    """The credentials cipher of `settings`, the app's: what it stores passwords with."""
    return CredentialCipher.from_settings(settings)


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> web.Application:
    # Depends on `engine` so the database is empty before the app opens its own. Its outbox
    # worker and mail pollers are off: tests that deliver or poll run their own and watch them.
    return create_app(settings, background_workers=False)


@pytest.fixture
async def server(
    app: web.Application, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> TestServer:
    return await aiohttp_server(app)


@pytest.fixture
async def client(
    server: TestServer, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> TestClient[Any, Any]:
    """An anonymous client."""
    return await aiohttp_client(server)


@dataclass
class User:
    """A signed-in operator with a client of its own; unsafe calls carry the CSRF header."""

    operator: Operator
    client: TestClient[Any, Any]
    csrf_token: str

    def _headers(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault(CSRF_HEADER, self.csrf_token)
        return {**kwargs, "headers": headers}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.client.post(path, **self._headers(kwargs))

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.client.patch(path, **self._headers(kwargs))

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.client.put(path, **self._headers(kwargs))

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.client.delete(path, **self._headers(kwargs))


UserFactory = Callable[..., Awaitable[User]]


async def new_user(
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    role: Role | str = Role.OPERATOR,
    email: str | None = None,
    name: str | None = None,
) -> User:
    """Create an operator and sign them in to `server` with a client of their own."""
    role = Role(role)
    email = email or f"{role}-{secrets.token_hex(3)}@example.com"
    async with sessions() as session, session.begin():
        operator = await create_operator(
            session, CLI, email=email, name=name or f"Test {role}", role=role, password=PASSWORD
        )
    client = await aiohttp_client(server)
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    body = await response.json()
    return User(operator, client, body["csrf_token"])


@pytest.fixture
def make_user(
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> UserFactory:
    """make_user(role, email=None, name=None): create an operator and sign them in."""

    async def factory(
        role: Role | str = Role.OPERATOR, email: str | None = None, name: str | None = None
    ) -> User:
        return await new_user(server, sessions, aiohttp_client, role, email, name)

    return factory


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """Restore the logging set-up after a test that ran the CLI in-process (it configures it)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    alembic_level = logging.getLogger("alembic").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic_level)

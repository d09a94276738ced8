"""PostgreSQL URLs with libpq's `sslmode` (as hosting providers give them) work: the mode is
handed to asyncpg as its `ssl` argument; what cannot be honoured is one clear line."""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.db import SSL_MODES, asyncpg_dsn, make_engine, postgresql_url
from web.cli import main

BASE = "postgresql+asyncpg://crm:secret@db.example.com:5432/crm"

pytestmark = pytest.mark.usefixtures("keep_logging")  # the CLI configures logging


@pytest.mark.parametrize("mode", SSL_MODES)
@pytest.mark.parametrize("key", ["sslmode", "ssl"])
def test_each_libpq_mode_is_kept_as_sslmode(key: str, mode: str) -> None:
    url = postgresql_url(f"{BASE}?{key}={mode}&application_name=crm")
    assert dict(url.query) == {"sslmode": mode, "application_name": "crm"}


def test_a_url_without_a_tls_mode_is_unchanged() -> None:
    assert postgresql_url(BASE).render_as_string(hide_password=False) == BASE


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("sslmode=required", "'required' is not a TLS mode; use ssl= with one of disable"),
        ("ssl=true", "'true' is not a TLS mode; use ssl="),
        ("sslmode=require&ssl=disable", "sslmode= or ssl=, not both"),
        ("sslmode=require&sslmode=disable", "sslmode= or ssl=, not both"),
        ("sslmode=verify-full&sslrootcert=/etc/ca.pem", "PGSSLROOTCERT"),
        ("sslcert=/etc/client.pem", "PGSSLCERT"),
    ],
)
def test_what_cannot_be_honoured_is_one_line_naming_ssl(query: str, says: str) -> None:
    with pytest.raises(ValueError, match="ssl=") as error:
        postgresql_url(f"{BASE}?{query}")
    assert says in str(error.value)
    assert "\n" not in str(error.value)


@pytest.fixture
def postgresql_database(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("TLS modes are PostgreSQL's")
    return database_url


def with_query(database_url: str, query: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}{query}"


async def select_one(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT 1")) or 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("query", ["sslmode=disable", "sslmode=prefer", "ssl=allow"])
async def test_modes_the_local_server_allows_connect(postgresql_database: str, query: str) -> None:
    # The local server has no TLS: these modes may (or must) connect without it.
    assert await select_one(with_query(postgresql_database, query)) == 1


async def test_require_against_a_server_without_tls_is_refused_by_the_driver(
    postgresql_database: str,
) -> None:
    with pytest.raises(Exception, match="SSL") as error:
        await select_one(with_query(postgresql_database, "sslmode=require"))
    assert not isinstance(error.value, TypeError)


def run_cli(*argv: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run the omnicrm command in-process; its exit code and what it wrote to stderr."""
    stderr = io.StringIO()
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OMNICRM_"):
                patch.delenv(name)
        patch.setenv("OMNICRM_DATABASE_URL", database_url)
        patch.setattr("sys.stderr", stderr)
        patch.setattr("sys.stdout", io.StringIO())
        code = main(list(argv))
    return code, stderr.getvalue()


def test_the_cli_migrates_with_sslmode_disable(
    postgresql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = run_cli(
        "migrate",
        database_url=with_query(postgresql_database, "sslmode=disable"),
        monkeypatch=monkeypatch,
    )
    assert (code, err) == (0, "")


def test_the_cli_says_in_one_line_what_is_wrong_with_the_tls_mode(
    postgresql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = run_cli(
        "migrate",
        database_url=with_query(postgresql_database, "sslmode=on"),
        monkeypatch=monkeypatch,
    )
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("omnicrm: invalid settings: database_url:")
    assert "use ssl= with one of disable, allow, prefer, require, verify-ca, verify-full" in line


def test_the_cli_reports_a_refused_tls_upgrade_as_unreachable(
    postgresql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = run_cli(
        "migrate",
        database_url=with_query(postgresql_database, "sslmode=require"),
        monkeypatch=monkeypatch,
    )
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("omnicrm: cannot reach the database at ")
    assert "SSL" in line


def test_the_event_listener_and_poller_locks_read_the_engines_url() -> None:
    # They connect with a plain asyncpg DSN, which knows sslmode but not ssl.
    engine = make_engine(f"{BASE}?ssl=verify-full")
    try:
        dsn = asyncpg_dsn(engine.url)
        assert make_url(dsn).query == {"sslmode": "verify-full"}
    finally:
        asyncio.run(engine.dispose())

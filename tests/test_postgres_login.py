"""The PostgreSQL half of the suite skips, with the reason, when the server is up but refuses
the login (wrong user or password, no such database); under CI=true that is a failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import POSTGRES_ADMIN_URL
from tests.servers import ROOT

TARGET = f"{__name__.replace('.', '/')}.py::test_a_database_of_each_backend_answers"


@pytest.mark.both_databases
async def test_a_database_of_each_backend_answers(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT 1")) == 1


def _postgresql_listens() -> bool:
    url = make_url(POSTGRES_ADMIN_URL)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2).close()
    except OSError:
        return False
    return True


def run_suite_with(admin_url: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env["OMNICRM_TEST_POSTGRES_URL"] = admin_url
    if ci:
        env["CI"] = "true"
    # Only the PostgreSQL half: the SQLite one has nothing to say here.
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "-k", "postgresql", TARGET],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


REFUSED = [
    pytest.param(
        make_url(POSTGRES_ADMIN_URL).set(username="omnicrm_no_such_role", password=None),
        "omnicrm_no_such_role",
        id="unknown-user",
    ),
    pytest.param(
        make_url(POSTGRES_ADMIN_URL).set(database="omnicrm_no_such_database"),
        "omnicrm_no_such_database",
        id="missing-database",
    ),
]


@pytest.mark.skipif(not _postgresql_listens(), reason="needs a PostgreSQL server to refuse us")
@pytest.mark.parametrize(("url", "named"), REFUSED)
def test_a_refused_login_skips_the_postgresql_half_with_the_reason(url: object, named: str) -> None:
    admin_url = make_url(str(url)).render_as_string(hide_password=False)
    result = run_suite_with(admin_url, ci=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 skipped, 1 deselected" in output
    assert "refused the login" in output
    assert named in output


@pytest.mark.skipif(not _postgresql_listens(), reason="needs a PostgreSQL server to refuse us")
def test_under_ci_a_refused_login_fails_the_run() -> None:
    admin_url = (
        make_url(POSTGRES_ADMIN_URL)
        .set(username="omnicrm_no_such_role", password=None)
        .render_as_string(hide_password=False)
    )
    result = run_suite_with(admin_url, ci=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "CI=true requires it" in output

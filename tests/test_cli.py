"""The `omnicrm` command, run in-process: each command's output and its one-line errors."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core import passwords
from core.audit import CLI, Actor
from core.auth import token_actor
from core.db import make_engine, make_session_factory
from core.migrate import upgrade, upgrade_sync
from core.models import (
    Account,
    Contact,
    Conversation,
    Interaction,
    Lead,
    LegalEntity,
    Operator,
    OutboxItem,
    Queue,
    Role,
    WebForm,
)
from routing.setup import create_queue
from web.cli import main

T = TypeVar("T")
GOOD_PASSWORD = "a long enough secret"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The error, which must be exactly one line."""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


Run = Callable[..., Result]


async def authenticate(session: AsyncSession, email: str, password: str) -> Operator | None:
    """The operator `email` and `password` sign in as, if they match."""
    operator = await session.scalar(select(Operator).where(Operator.email == email))
    if operator is None or not (await passwords.verify(operator.password_hash, password)).ok:
        return None
    return operator


# The CLI configures the root logger for its process; the test run gets its own back.
pytestmark = pytest.mark.usefixtures("keep_logging")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Run:
    """run(*argv, stdin=None, database_url=...) -> Result, with a clean OMNICRM_* environment
    (attachments, e.g. the demo's, go to the test's own directory)."""
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OMNICRM_ATTACHMENTS_DIR", str(tmp_path / "attachments"))

    def invoke(*argv: str, database_url: str, stdin: str = "", **env: str) -> Result:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            patch.setenv("OMNICRM_DATABASE_URL", database_url)
            for name, value in env.items():
                patch.setenv(name, value)
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file as the first command leaves a new one (every command migrates first),
    migrated once for the session: migrating from nothing takes most of a second."""
    path = tmp_path_factory.mktemp("cli-template") / "cli.db"
    upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(migrated_sqlite_file: Path, tmp_path: Path) -> str:
    """A SQLite file of the test's own, at the schema's head and holding only what migrations
    put there (`test_a_command_migrates_a_new_database_first` starts from nothing)."""
    path = tmp_path / "cli.db"
    shutil.copyfile(migrated_sqlite_file, path)
    return f"sqlite+aiosqlite:///{path}"


def query(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a transaction on the database the CLI wrote to."""

    async def go() -> T:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def count(url: str, model: type[object]) -> int:
    async def work(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return query(url, work)


def test_invalid_settings_exit_2_with_one_line(run: Run, tmp_path: Path) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    result = run("migrate", database_url=sqlite_url, OMNICRM_PORT="abc")
    assert result.code == 2
    assert "port" in result.error_line
    bad_url = run("demo", database_url="mysql://localhost/crm")
    assert bad_url.code == 2
    assert "database_url" in bad_url.error_line
    for url in ("postgresql+asyncpg://u:pw@db:notaport/crm", "sqlite+aiosqlite://"):
        malformed = run("token", "create", "--name", "x", database_url=url)
        assert malformed.code == 2
        assert "database_url" in malformed.error_line
        assert "pw" not in malformed.err
    missing_config = run("demo", "--config", "/no/such/omnicrm.toml", database_url=sqlite_url)
    assert missing_config.code == 2
    assert "config file not found" in missing_config.error_line
    assert not Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).exists()


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        ((), "COMMAND"),
        (("operator",), "ACTION"),
        (("operator", "add", "--email", "a@example.com"), "--name"),
        (("operator", "add", "--email", "a@example.com", "--name", "A", "--role", "root"), "root"),
        (("token", "create"), "--name"),
        (("token", "create", "--name", "x", "--role", "god"), "god"),
        (("form", "add"), "--slug"),
        (("form", "add", "--slug", "x", "--require", "age"), "age"),
        (("frobnicate",), "frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    run: Run, sqlite_url: str, argv: tuple[str, ...], mentions: str
) -> None:
    result = run(*argv, database_url=sqlite_url)
    assert result.code == 2
    assert mentions in result.error_line
    assert "Traceback" not in result.err


def test_a_command_migrates_a_new_database_first(run: Run, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    result = run("queue", "add", "--name", "Support", database_url=url)
    assert result.code == 0, result.err

    async def queues(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(Queue.name)))

    assert query(url, queues) == ["Support"]


def test_help_exits_0(run: Run, sqlite_url: str) -> None:
    result = run("operator", "add", "--help", database_url=sqlite_url)
    assert result.code == 0
    assert "--password-stdin" in result.out


def test_operator_add_reads_the_password_from_stdin(run: Run, sqlite_url: str) -> None:
    result = run(
        "operator",
        "add",
        "--email",
        "Lena@Example.com",
        "--name",
        "Lena Fischer",
        "--role",
        "supervisor",
        "--password-stdin",
        database_url=sqlite_url,
        stdin=GOOD_PASSWORD + "\n",
    )
    assert result.code == 0, result.err
    assert "lena@example.com (supervisor)" in result.out
    assert result.err == ""

    async def signed_in(session: AsyncSession) -> tuple[str, str] | None:
        operator = await authenticate(session, "lena@example.com", GOOD_PASSWORD)
        return None if operator is None else (operator.name, operator.role)

    assert query(sqlite_url, signed_in) == ("Lena Fischer", "supervisor")


@pytest.mark.parametrize(
    ("stdin", "message"), [("short\n", "at least 10 characters"), ("", "no password on stdin")]
)
def test_operator_add_refuses_a_short_or_missing_password(
    run: Run, sqlite_url: str, stdin: str, message: str
) -> None:
    result = run(
        "operator",
        "add",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--role",
        "admin",
        "--password-stdin",
        database_url=sqlite_url,
        stdin=stdin,
    )
    assert result.code == 2
    assert message in result.error_line
    assert result.out == ""
    if Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).exists():
        assert count(sqlite_url, Operator) == 0


def test_duplicate_operator_is_refused(run: Run, sqlite_url: str) -> None:
    argv = ("operator", "add", "--email", "a@example.com", "--name", "A", "--role", "operator")
    assert run(*argv, database_url=sqlite_url).code == 0
    again = run(*argv, database_url=sqlite_url)
    assert again.code == 1
    assert "exists already" in again.error_line
    assert count(sqlite_url, Operator) == 1
    invalid = run(
        "operator",
        "add",
        "--email",
        "nope",
        "--name",
        "A",
        "--role",
        "admin",
        database_url=sqlite_url,
    )
    assert invalid.code == 2
    assert "email" in invalid.error_line


def test_token_create_prints_a_working_token_once(run: Run, sqlite_url: str) -> None:
    result = run("token", "create", "--name", "erp-sync", database_url=sqlite_url)
    assert result.code == 0, result.err
    plain = result.out.splitlines()[-1]
    assert plain.startswith("omni_")
    assert "shown only this once" in result.out

    async def actor_of(session: AsyncSession) -> Actor | None:
        return await token_actor(session, plain)

    assert query(sqlite_url, actor_of) == Actor("token:erp-sync", Role.INTEGRATION)
    admin = run("token", "create", "--name", "ops", "--role", "admin", database_url=sqlite_url)
    assert query(sqlite_url, lambda s: token_actor(s, admin.out.splitlines()[-1])) == Actor(
        "token:ops", Role.ADMIN
    )
    twice = run("token", "create", "--name", "erp-sync", database_url=sqlite_url)
    assert twice.code == 1
    assert "exists already" in twice.error_line
    assert plain not in twice.out + twice.err


def test_form_add_with_queue_and_options(run: Run, sqlite_url: str) -> None:
    asyncio.run(upgrade(sqlite_url))
    query(sqlite_url, lambda session: create_queue(session, CLI, name="Sales"))
    result = run(
        "form",
        "add",
        "--slug",
        "quote",
        "--queue",
        "Sales",
        "--lead",
        "--title",
        "Request a quote",
        "--require",
        "name",
        "email",
        "--require",
        "phone",
        "--thank-you-url",
        "https://example.com/thanks",
        database_url=sqlite_url,
    )
    assert result.code == 0, result.err
    assert "/forms/quote" in result.out

    async def stored(session: AsyncSession) -> tuple[object, ...]:
        form = await session.scalar(select(WebForm))
        queue = await session.scalar(select(Queue.id).where(Queue.name == "Sales"))
        assert form is not None
        return (
            form.slug,
            form.title,
            form.queue_id == queue,
            form.create_lead,
            form.required_fields,
            form.thank_you_url,
        )

    assert query(sqlite_url, stored) == (
        "quote",
        "Request a quote",
        True,
        True,
        ["name", "email", "phone"],
        "https://example.com/thanks",
    )
    plain = run("form", "add", "--slug", "contact", database_url=sqlite_url)
    assert plain.code == 0
    assert "/forms/contact" in plain.out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("--slug", "support", "--queue", "Nope"), 1, "no queue named 'Nope'"),
        (("--slug", "Not A Slug"), 2, "slug"),
        (("--slug", "s", "--thank-you-url", "javascript:alert(1)"), 2, "thank-you URL"),
    ],
)
def test_form_add_errors(
    run: Run, sqlite_url: str, argv: tuple[str, ...], code: int, message: str
) -> None:
    result = run("form", "add", *argv, database_url=sqlite_url)
    assert result.code == code
    assert message in result.error_line
    assert count(sqlite_url, WebForm) == 0


def passwords_in(output: str) -> dict[str, str]:
    """email -> password from the demo's table."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and "@" in parts[1]:
            found[parts[1]] = parts[2]
    return found


def test_demo_loads_a_story_once(run: Run, sqlite_url: str) -> None:
    result = run("demo", database_url=sqlite_url)
    assert result.code == 0, result.err
    assert result.err == ""
    logins = passwords_in(result.out)
    assert set(logins) == {
        "admin@example.com",
        "supervisor@example.com",
        "anna@example.com",
        "luis@example.com",
    }
    assert len(set(logins.values())) == 4

    async def roles_that_sign_in(session: AsyncSession) -> set[str]:
        roles = set()
        for email, password in logins.items():
            operator = await authenticate(session, email, password)
            assert operator is not None, email
            roles.add(operator.role)
        return roles

    assert query(sqlite_url, roles_that_sign_in) == {"admin", "supervisor", "operator"}

    async def story(session: AsyncSession) -> dict[str, object]:
        channels = set(await session.scalars(select(Interaction.channel).distinct()))
        kinds = set(await session.scalars(select(Interaction.kind).distinct()))
        statuses = set(await session.scalars(select(Conversation.status).distinct()))
        stages = set(await session.scalars(select(Lead.stage).distinct()))
        vip = await session.scalar(
            select(Contact.display_name).where(Contact.priority_tier == "vip")
        )
        marketing = [
            source
            for source in await session.scalars(select(Contact.marketing_source))
            if "utm_source" in source
        ]
        refs = set(await session.scalars(select(LegalEntity.erp_ref)))
        accounts = await session.scalar(select(func.count()).select_from(Account))
        assigned = await session.scalar(
            select(func.count()).where(Conversation.assignee_id.is_not(None))
        )
        forms = {
            form.slug: (form.create_lead, form.queue_id is not None)
            for form in await session.scalars(select(WebForm))
        }
        queues = set(await session.scalars(select(Queue.name)))
        unsent = await session.scalar(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.status != "sent")
        )
        return {
            "contacts": await session.scalar(select(func.count()).select_from(Contact)),
            "channels": channels,
            "kinds": kinds,
            "statuses": statuses,
            "stages": len(stages),
            "vip": vip,
            "with utm": len(marketing) >= 2,
            "refs": refs,
            "accounts": accounts,
            "assigned": bool(assigned),
            "forms": forms,
            "queues": queues,
            "unsent replies": unsent,
        }

    assert query(sqlite_url, story) == {
        "contacts": 30,
        "channels": {"webform", "email", "sms", "whatsapp", "api", "voice"},
        "kinds": {"message", "form", "note", "event", "call"},
        "statuses": {"open", "pending", "snoozed", "resolved"},
        "stages": 7,
        "vip": "Jonas Weber",
        "with utm": True,
        "refs": {"C-10042", "C-20017"},
        "accounts": 1,
        "assigned": True,
        "forms": {"contact": (False, True), "quote": (True, True)},
        "queues": {"Support", "Sales"},
        "unsent replies": 0,
    }

    again = run("demo", database_url=sqlite_url)
    assert again.code == 1
    assert "loaded already" in again.error_line
    assert count(sqlite_url, Contact) == 30
    assert count(sqlite_url, Operator) == 4


def test_demo_if_empty_loads_a_fresh_database_and_skips_a_used_one(
    run: Run, sqlite_url: str, tmp_path: Path
) -> None:
    fresh = run("demo", "--if-empty", database_url=sqlite_url)
    assert fresh.code == 0
    assert len(passwords_in(fresh.out)) == 4
    assert run("demo", "--if-empty", database_url=sqlite_url).code == 0

    used = f"sqlite+aiosqlite:///{tmp_path / 'used.db'}"
    add = ("operator", "add", "--email", "me@example.com", "--name", "Me", "--role", "admin")
    assert run(*add, database_url=used).code == 0
    skipped = run("demo", "--if-empty", database_url=used)
    assert skipped.code == 0
    assert "not loaded" in skipped.out
    assert passwords_in(skipped.out) == {}
    assert count(used, Queue) == 0
    assert count(used, Contact) == 0


def test_unreachable_database_is_one_line_without_the_password(run: Run) -> None:
    url = "postgresql+asyncpg://bob:hunter2-secret@127.0.0.1:1/crm"
    result = run("token", "create", "--name", "x", database_url=url)
    assert result.code == 1
    line = result.error_line
    assert "cannot reach the database at postgresql+asyncpg://bob:***@127.0.0.1:1/crm" in line
    assert "hunter2" not in result.err + result.out


def test_missing_sqlite_directory_is_one_line(run: Run, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    result = run("demo", database_url=url)
    assert result.code == 1
    assert "does not exist" in result.error_line


def test_commands_on_the_shared_database(run: Run, database_url: str, engine: AsyncEngine) -> None:
    """Both backends, on the suite's database (emptied by the `engine` fixture)."""
    demo = run("demo", database_url=database_url)
    assert demo.code == 0, demo.err
    assert len(passwords_in(demo.out)) == 4
    assert run("demo", database_url=database_url).code == 1
    skipped = run("demo", "--if-empty", database_url=database_url)
    assert (skipped.code, "not loaded" in skipped.out) == (0, True)

    token = run("token", "create", "--name", "cli-test", database_url=database_url)
    assert token.code == 0
    plain = token.out.splitlines()[-1]
    assert query(database_url, lambda s: token_actor(s, plain)) == Actor(
        "token:cli-test", Role.INTEGRATION
    )
    form = run("form", "add", "--slug", "callback", "--queue", "Support", database_url=database_url)
    assert form.code == 0, form.err
    added = run(
        "operator",
        "add",
        "--email",
        "new@example.com",
        "--name",
        "New Hire",
        "--role",
        "operator",
        "--password-stdin",
        database_url=database_url,
        stdin=GOOD_PASSWORD + "\n",
    )
    assert added.code == 0, added.err
    assert count(database_url, Operator) == 5

"""`omnicrm operator list|set|passwd|deactivate`, `token list|revoke`, `form list|remove`,
`queue list|add|set`: each outcome, and each error as one line; `--help` imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.forms import KNOWN_FIELDS
from core.models import ApiToken, AuditEntry, Operator, Queue, QueueMember, Role, WebForm
from core.operators import DEFAULT_CAPACITY, OPERATOR_ROLES
from core.pagination import MAX_ID
from tests import test_cli as cli_tests
from tests.test_cli import GOOD_PASSWORD, Run, authenticate, query
from web.cli import _command_word
from web.cli_common import (
    FORM_FIELD_NAMES,
    MAX_RECORD_ID,
    OPERATOR_ROLE_NAMES,
    TOKEN_ROLE_NAMES,
)

pytestmark = pytest.mark.usefixtures("keep_logging")

# tests/test_cli.py's fixtures: `run` runs the command in-process, `sqlite_url` is a new file
# at the schema's head.
run = cli_tests.run
sqlite_url = cli_tests.sqlite_url
migrated_sqlite_file = cli_tests.migrated_sqlite_file


def test_the_parsers_choices_are_cores() -> None:
    assert tuple(str(role) for role in OPERATOR_ROLES) == OPERATOR_ROLE_NAMES
    assert set(TOKEN_ROLE_NAMES) == {str(role) for role in Role}
    assert FORM_FIELD_NAMES == KNOWN_FIELDS
    assert MAX_RECORD_ID == MAX_ID


def test_help_imports_neither_the_database_nor_the_channels() -> None:
    code = (
        "import sys, web.cli; web.cli.build_parser(); "
        "heavy = [m for m in ('sqlalchemy', 'aiohttp', 'channels.registry', 'core.models', "
        "'pydantic') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def add_operator(run: Run, url: str, email: str, *extra: str) -> None:
    result = run(
        "operator", "add", "--email", email, "--name", email.split("@")[0].title(),
        "--role", "operator", *extra, database_url=url,
    )  # fmt: skip
    assert result.code == 0, result.err


def operator(url: str, email: str) -> Operator:
    async def work(session: AsyncSession) -> Operator:
        found = await session.scalar(select(Operator).where(Operator.email == email))
        assert found is not None
        return found

    return query(url, work)


def test_operator_add_gets_the_default_capacity_or_the_one_given(run: Run, sqlite_url: str) -> None:
    add_operator(run, sqlite_url, "anna@example.com")
    assert operator(sqlite_url, "anna@example.com").capacity == dict(DEFAULT_CAPACITY)
    assert run("queue", "add", "--name", "Support", database_url=sqlite_url).code == 0
    add_operator(
        run, sqlite_url, "tom@example.com",
        "--capacity", "email=20", "--skill", "billing=80", "--language", "de=100",
        "--queue", "Support",
    )  # fmt: skip
    tom = operator(sqlite_url, "tom@example.com")
    assert (tom.capacity, tom.skills, tom.languages) == (
        {"email": 20},
        {"billing": 80},
        {"de": 100},
    )
    listing = run("operator", "list", database_url=sqlite_url)
    assert listing.code == 0
    tom_line = next(line for line in listing.out.splitlines() if "tom@example.com" in line)
    assert "email=20" in tom_line
    assert "Support" in tom_line
    assert "billing=80,lang:de=100" in tom_line


def test_operator_add_refuses_an_unknown_capacity_kind(run: Run, sqlite_url: str) -> None:
    result = run(
        "operator", "add", "--email", "x@example.com", "--name", "X", "--role", "operator",
        "--capacity", "sms=3", database_url=sqlite_url,
    )  # fmt: skip
    assert result.code == 2
    assert "capacity.sms: not a capacity kind" in result.error_line


def test_operator_set_changes_only_what_is_given_and_is_audited(run: Run, sqlite_url: str) -> None:
    add_operator(run, sqlite_url, "anna@example.com", "--skill", "billing=50")
    run("queue", "add", "--name", "Support", database_url=sqlite_url)
    run("queue", "add", "--name", "Sales", database_url=sqlite_url)
    result = run(
        "operator", "set", "anna@example.com", "--role", "supervisor", "--name", "Anna Novak",
        "--capacity", "messaging=3", "--queue", "Support", "--queue", "Sales",
        database_url=sqlite_url,
    )  # fmt: skip
    assert (result.code, result.out.strip()) == (0, "operator anna@example.com changed")
    anna = operator(sqlite_url, "anna@example.com")
    assert (anna.role, anna.name, anna.capacity, anna.skills) == (
        "supervisor", "Anna Novak", {"messaging": 3}, {"billing": 50},
    )  # fmt: skip

    async def memberships(session: AsyncSession) -> list[str]:
        rows = await session.scalars(
            select(Queue.name).join(QueueMember).where(QueueMember.operator_id == anna.id)
        )
        return sorted(rows)

    assert query(sqlite_url, memberships) == ["Sales", "Support"]
    run("operator", "set", str(anna.id), "--no-queues", "--no-skills", database_url=sqlite_url)
    assert query(sqlite_url, memberships) == []
    assert operator(sqlite_url, "anna@example.com").skills == {}

    async def actions(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))

    assert query(sqlite_url, actions).count("operator.queues") == 2


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("operator", "set", "nobody@example.com", "--name", "X"), 1, "no operator"),
        (("operator", "set", "anna@example.com", "--skill", "billing"), 2, "NAME=NUMBER"),
        (("operator", "set", "anna@example.com", "--queue", "Nowhere"), 1, "no queue"),
        (("operator", "set", "anna@example.com", "--capacity", "fax=1"), 2, "capacity.fax"),
        (("operator", "deactivate", "nobody@example.com"), 1, "no operator"),
        (("token", "revoke", "99"), 1, "no API token 99"),
        (("token", "revoke", "x"), 2, "not a record id"),
        (("form", "remove", "nope"), 1, "no form 'nope'"),
        (("queue", "set", "Nowhere", "--description", "x"), 1, "no queue named 'Nowhere'"),
        (("queue", "add", "--name", "Q", "--routing", "{"), 2, "--routing is not JSON"),
        (("queue", "add", "--name", "Q", "--routing", "[]"), 2, "a JSON object"),
        (
            ("queue", "add", "--name", "Q", "--routing", '{"sla": {"resolution_minutes": 0}}'),
            2,
            "config.sla.resolution_minutes",
        ),
        (("queue", "add", "--name", "Q", "--member", "ghost@example.com"), 1, "no operator"),
    ],
)
def test_admin_command_errors_are_one_line(
    run: Run, sqlite_url: str, argv: tuple[str, ...], code: int, message: str
) -> None:
    add_operator(run, sqlite_url, "anna@example.com")
    result = run(*argv, database_url=sqlite_url)
    assert result.code == code, result.err
    assert message in result.error_line
    assert "Traceback" not in result.err


def test_operator_passwd_and_deactivate(run: Run, sqlite_url: str) -> None:
    add_operator(run, sqlite_url, "anna@example.com")
    result = run(
        "operator", "passwd", "anna@example.com", "--password-stdin",
        database_url=sqlite_url, stdin=GOOD_PASSWORD + "\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "password of anna@example.com set" in result.out
    assert query(sqlite_url, lambda s: authenticate(s, "anna@example.com", GOOD_PASSWORD))
    short = run("operator", "passwd", "anna@example.com", database_url=sqlite_url, stdin="short\n")
    assert short.code == 2
    assert "at least 10 characters" in short.error_line

    # Deactivated, then back with `set --activate`.
    result = run("operator", "deactivate", "anna@example.com", database_url=sqlite_url)
    assert result.code == 0
    assert "deactivated" in result.out
    assert operator(sqlite_url, "anna@example.com").active is False
    again = run("operator", "set", "anna@example.com", "--activate", database_url=sqlite_url)
    assert again.code == 0
    assert operator(sqlite_url, "anna@example.com").active is True


def test_token_list_and_revoke(run: Run, sqlite_url: str) -> None:
    created = run("token", "create", "--name", "shop", database_url=sqlite_url)
    assert created.code == 0
    secret = created.out.splitlines()[-1]
    listing = run("token", "list", database_url=sqlite_url)
    assert listing.code == 0
    assert "shop" in listing.out
    assert secret not in listing.out

    async def token_id(session: AsyncSession) -> int:
        return int(await session.scalar(select(ApiToken.id)) or 0)

    ident = str(query(sqlite_url, token_id))
    revoked = run("token", "revoke", ident, database_url=sqlite_url)
    assert (revoked.code, revoked.out.strip()) == (0, "API token 'shop' revoked")
    twice = run("token", "revoke", ident, database_url=sqlite_url)
    assert "was revoked already" in twice.out
    line = next(
        x for x in run("token", "list", database_url=sqlite_url).out.splitlines() if "shop" in x
    )
    assert line.split()[-1] != "-"


def test_form_list_and_remove(run: Run, sqlite_url: str) -> None:
    run("queue", "add", "--name", "Support", database_url=sqlite_url)
    run("form", "add", "--slug", "contact", "--queue", "Support", database_url=sqlite_url)
    listing = run("form", "list", database_url=sqlite_url)
    assert listing.code == 0
    line = next(x for x in listing.out.splitlines() if "contact" in x)
    assert "Support" in line
    assert " yes " in f" {line} "
    removed = run("form", "remove", "contact", database_url=sqlite_url)
    assert removed.code == 0
    assert "/forms/contact takes no more submissions" in removed.out

    async def active(session: AsyncSession) -> bool:
        return bool(await session.scalar(select(WebForm.active)))

    assert query(sqlite_url, active) is False


def test_queue_add_set_and_list(run: Run, sqlite_url: str) -> None:
    add_operator(run, sqlite_url, "anna@example.com")
    added = run(
        "queue", "add", "--name", "Support", "--description", "first line",
        "--routing", '{"offer_timeout_seconds": 30}', "--member", "anna@example.com",
        database_url=sqlite_url,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "queue 'Support' added" in added.out
    changed = run(
        "queue", "set", "Support", "--name", "Help", "--routing", '{"max_wait_seconds": 600}',
        database_url=sqlite_url,
    )  # fmt: skip
    assert (changed.code, changed.out.strip()) == (0, "queue 'Help' changed")
    listing = run("queue", "list", database_url=sqlite_url)
    line = next(x for x in listing.out.splitlines() if x.split()[1:2] == ["Help"])
    assert "anna@example.com" in line
    assert '{"max_wait_seconds": 600}' in line

    async def details(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))

    assert {"queue.create", "queue.update", "queue.members"} <= set(query(sqlite_url, details))


@pytest.mark.parametrize(
    ("words", "command"),
    [
        ([], None),
        (["--help"], None),
        (["channel", "list"], "channel"),
        (["--config", "channel", "operator", "list"], "operator"),
        (["--config=x.toml", "channel", "list"], "channel"),
    ],
)
def test_the_command_word_decides_whether_the_channels_are_loaded(
    words: list[str], command: str | None
) -> None:
    assert _command_word(words) == command

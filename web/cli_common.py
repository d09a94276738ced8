"""What the `omnicrm` commands share (web/cli.py and the modules of its command groups): the
error that is one line, how a command is declared, and a database brought up to date first.

Light on purpose: building the parser (and so `omnicrm --help`) imports nothing heavier than
argparse; commands import the database, models and core functions when they run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from core.db import SessionFactory
    from core.settings import Settings

Command = Callable[[argparse.Namespace, "Settings"], Coroutine[Any, Any, int]]

# The choices the parser offers, spelt here so that --help need not import the models;
# tests/test_cli_admin.py checks they match core's (Role, OPERATOR_ROLES, KNOWN_FIELDS).
OPERATOR_ROLE_NAMES = ("operator", "supervisor", "admin")
TOKEN_ROLE_NAMES = ("operator", "supervisor", "admin", "integration")
FORM_FIELD_NAMES = ("name", "email", "phone", "message")
MAX_RECORD_ID = 2**63 - 1  # core.pagination.MAX_ID


def record_id(raw: str) -> int:
    """An argparse type: a record's id (digits, within an id column)."""
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RECORD_ID:
        raise argparse.ArgumentTypeError(f"not a record id: {raw!r}")
    return int(raw)


class CliError(Exception):
    """A problem to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_command(
    commands: Any, name: str, help_text: str, handler: Command
) -> argparse.ArgumentParser:
    """A subcommand that runs `handler(args, settings)`."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    # Accepted after the command too: `omnicrm serve --config omnicrm.toml`.
    parser.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    parser.set_defaults(handler=handler)
    return parser


async def upgrade_database(settings: Settings) -> None:
    from core.credentials import CredentialCipher
    from core.migrate import upgrade

    # Migrations that encrypt stored credentials need the installation's key.
    await upgrade(settings.database_url, credentials=CredentialCipher.from_settings(settings))


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[SessionFactory]:
    """Sessions on an up-to-date schema, so any command works on a fresh database."""
    from core.db import make_engine, make_session_factory

    await upgrade_database(settings)
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


class ProgressBar:
    """Progress on stderr: a bar redrawn in place on a terminal, else a plain count now and
    then (every `every` records, and at the end)."""

    def __init__(
        self, label: str, noun: str, stream: TextIO, *, tty: bool | None = None, every: int = 1000
    ) -> None:
        self.label = label
        self.noun = noun
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.every = every
        self._drawn_at = 0.0
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        if self.tty:
            now = time.monotonic()
            if done < total and now - self._drawn_at < 0.1:
                return
            self._drawn_at = now
            width = 30
            filled = width * done // total if total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {self.noun}")
            self._drawn = True
        elif done == total or done % self.every == 0:
            self.stream.write(f"{self.label}: {done}/{total} {self.noun}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()

"""What the `omnicrm` commands share (web/cli.py and the modules of its command groups): the
error that is one line, how a command is declared, and a database brought up to date first.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from core.credentials import CredentialCipher
from core.db import SessionFactory, make_engine, make_session_factory
from core.migrate import upgrade
from core.settings import Settings

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


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
    # Migrations that encrypt stored credentials need the installation's key.
    await upgrade(settings.database_url, credentials=CredentialCipher.from_settings(settings))


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[SessionFactory]:
    """Sessions on an up-to-date schema, so any command works on a fresh database."""
    await upgrade_database(settings)
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()

"""The `omnicrm` command: serve, migrate and administer an installation.

Every failure is one clear line on stderr and a non-zero exit code, never a traceback:
2 for bad settings or arguments, 1 for anything else that went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy.engine import make_url

from core.errors import DomainError
from core.migrate import upgrade
from core.settings import INSECURE_DEV_SECRET, Settings, SettingsError, load_settings
from web.app import create_app
from web.logs import configure_logging

log = logging.getLogger("omnicrm")

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


class CliError(Exception):
    """A problem to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnicrm", description="omnicrm contact-center CRM")
    parser.add_argument("--config", help="TOML config file (default: $OMNICRM_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web server and background workers")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(handler=cmd_migrate)
    return parser


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    await upgrade(settings.database_url)
    print(f"database is up to date ({_safe_url(settings.database_url)})")
    return 0


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # The schema is brought up to date first, so a fresh checkout or an upgrade just works.
    await upgrade(settings.database_url)
    if settings.secret_key == INSECURE_DEV_SECRET:
        log.warning("OMNICRM_SECRET_KEY is not set; using a development key (not for production)")
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise CliError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        log.info("omnicrm listening", extra={"url": f"http://{settings.host}:{settings.port}"})
        print(f"omnicrm is serving on http://{settings.host}:{settings.port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {
        key: value for key in ("host", "port") if (value := getattr(args, key, None)) is not None
    }
    try:
        settings = load_settings(args.config or getattr(args, "sub_config", None), **overrides)
    except SettingsError as exc:
        print(f"omnicrm: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    handler: Command = args.handler
    try:
        return asyncio.run(handler(args, settings))
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"omnicrm: {exc}", file=sys.stderr)
        return exc.code
    except DomainError as exc:
        print(f"omnicrm: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"omnicrm: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `omnicrm` command: serve, migrate and administer an installation.

Every failure is one clear line on stderr and a non-zero exit code, never a traceback:
2 for bad settings or arguments, 1 for anything else that went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from web import cli_admin
from web.cli_common import (
    FORM_FIELD_NAMES,
    OPERATOR_ROLE_NAMES,
    TOKEN_ROLE_NAMES,
    CliError,
    Command,
    add_command,
    database,
    record_id,
    upgrade_database,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from channels.base import Channel
    from channels.registry import ChannelRegistry
    from core.errors import DomainError
    from core.settings import Settings
    from erp_bridge.base import ErpKind

log = logging.getLogger("omnicrm")

# The names this module used before the shared helpers moved to web/cli_common.py.
_command = add_command
_database = database
_upgrade = upgrade_database
_record_id = record_id


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line instead of the usage text and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser(
    registry: ChannelRegistry | None = None, erp_kinds: Mapping[str, ErpKind] | None = None
) -> argparse.ArgumentParser:
    """The command line. `channel add|set` get flags from the settings of `registry`'s
    channels, `erp set` from those of `erp_kinds`; without them the `channel` and `erp`
    groups are only named (for --help: building them imports every channel and ERP)."""
    parser = _Parser(prog="omnicrm", description="omnicrm contact-center CRM")
    parser.set_defaults(registry=registry)
    parser.add_argument("--config", help="TOML config file (default: $OMNICRM_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the web server and background workers", cmd_serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="web processes (default: one per CPU core on PostgreSQL, one on SQLite); with "
        "more than one, the background work runs in a process of its own",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="web processes only: the background work runs in `omnicrm worker` elsewhere",
    )
    # The part a process started by `serve --workers N` plays (web/serve.py).
    serve.add_argument("--role", choices=("web",), help=argparse.SUPPRESS)
    _command(
        commands,
        "worker",
        "run only the background work (routing, delivery, polling, timers); no web server",
        cmd_worker,
    )

    _command(commands, "migrate", "create or upgrade the database schema", cmd_migrate)

    demo_command = _command(commands, "demo", "load demo data (once)", cmd_demo)
    demo_command.add_argument(
        "--if-empty",
        action="store_true",
        help="load only into a database without operators; otherwise skip quietly",
    )

    operator = commands.add_parser("operator", help="manage operators")
    operator_commands = operator.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_operator = _command(operator_commands, "add", "add an operator", cmd_operator_add)
    add_operator.add_argument("--email", required=True)
    add_operator.add_argument("--name", required=True)
    add_operator.add_argument("--role", required=True, choices=OPERATOR_ROLE_NAMES)
    add_operator.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (one line); without it no password is set",
    )
    cli_admin.add_operator_arguments(add_operator)
    cli_admin.add_operator_commands(operator_commands)

    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _command(token_commands, "create", "create an API token", cmd_token_create)
    create.add_argument("--name", required=True)
    create.add_argument("--role", default="integration", choices=TOKEN_ROLE_NAMES)
    cli_admin.add_token_commands(token_commands)

    form = commands.add_parser("form", help="manage web forms")
    form_commands = form.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_form = _command(form_commands, "add", "add a web form", cmd_form_add)
    add_form.add_argument("--slug", required=True, help="the form's address: /forms/SLUG")
    add_form.add_argument("--queue", help="name of the queue its submissions go to")
    add_form.add_argument("--lead", action="store_true", help="each submission opens a lead")
    add_form.add_argument("--title", default="Contact us")
    add_form.add_argument(
        "--require",
        nargs="+",
        action="extend",
        choices=FORM_FIELD_NAMES,
        metavar="FIELD",
        help=f"required fields, from {', '.join(FORM_FIELD_NAMES)} (default: email message)",
    )
    add_form.add_argument("--thank-you-url", help="where to send the customer after submitting")
    cli_admin.add_form_commands(form_commands)

    cli_admin.add_queue_commands(commands)

    if registry is None:
        commands.add_parser("channel", help="manage channel accounts (email, ...)", add_help=False)
    else:
        from web.cli_channels import add_channel_commands

        add_channel_commands(commands, registry)

    if erp_kinds is None:
        commands.add_parser(
            "erp", help="the ERP omnicrm reads orders and stock from", add_help=False
        )
    else:
        from web.cli_erp import add_erp_commands

        add_erp_commands(commands, erp_kinds)

    from web.cli_suggestions import add_suggestion_commands

    add_suggestion_commands(commands)

    secrets = commands.add_parser("secrets", help="manage the encryption of stored credentials")
    secrets_commands = secrets.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        secrets_commands,
        "rotate",
        "re-encrypt every stored credential with the current credentials key",
        cmd_secrets_rotate,
    )
    contact = commands.add_parser("contact", help="privacy requests: export or erase a contact")
    contact_commands = contact.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = _command(
        contact_commands,
        "export",
        "write everything held on a contact to a zip archive",
        cmd_contact_export,
    )
    export.add_argument("id", type=_record_id, help="the contact's id")
    export.add_argument(
        "--output", help="the archive to write (default: contact-ID-export.zip here)"
    )
    erase = _command(
        contact_commands,
        "erase",
        "erase a contact's personal data and attachments, irreversibly",
        cmd_contact_erase,
    )
    erase.add_argument("id", type=_record_id, help="the contact's id")
    erase.add_argument("--yes", action="store_true", help="confirm: nothing can bring it back")
    return parser


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    await _upgrade(settings)
    print(f"database is up to date ({_safe_url(settings.database_url)})")
    return 0


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from core.settings import INSECURE_DEV_SECRET
    from web import serve

    if args.role is not None:  # one of the processes a supervisor started (web/serve.py)
        return await serve.run_role(settings, args.role)
    web_count = serve.web_processes(settings)
    if args.no_worker and not settings.is_postgresql:
        raise CliError(
            "--no-worker needs PostgreSQL: on SQLite the one process does the background work",
            code=2,
        )
    # The schema is brought up to date first, so a fresh checkout or an upgrade just works.
    await _upgrade(settings)
    if settings.secret_key == INSECURE_DEV_SECRET:
        log.warning("OMNICRM_SECRET_KEY is not set; using a development key (not for production)")
    if web_count == 1 and not args.no_worker:
        return await serve.run_role(settings, "all")
    command = serve.child_command(args.config)
    return await serve.supervise(settings, command, web_count, worker=not args.no_worker)


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from web import serve

    if not settings.is_postgresql:
        raise CliError(
            "omnicrm worker needs PostgreSQL: on SQLite `omnicrm serve` does the background "
            "work in its one process",
            code=2,
        )
    return await serve.run_role(settings, "worker")


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from web import demo

    async with _database(settings) as sessions, sessions() as session, session.begin():
        if args.if_empty and not await demo.is_empty(session):
            print("the database has operators already: demo data not loaded")
            return 0
        result = await demo.load_demo(session, demo.DemoServices.for_settings(settings))
    url = f"http://{settings.host}:{settings.port}"
    print(
        f"Demo data loaded: {len(result.logins)} operators, {result.contacts} contacts, "
        f"{result.conversations} conversations, {result.leads} leads."
    )
    print(
        f"Once the server runs, operators open {url}/console/ and supervisors {url}/monitor/"
        " (both sign in at /login). The passwords are shown only now:"
    )
    rows = [("role", "email", "password")]
    rows += [(login.role, login.email, login.password) for login in result.logins]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for role, email, password in rows:
        print(f"  {role.ljust(widths[0])}  {email.ljust(widths[1])}  {password}")
    return 0


async def cmd_operator_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.models import Role
    from core.operators import create_operator, set_queues

    password = _read_password() if args.password_stdin else None
    async with _database(settings) as sessions, sessions() as session, session.begin():
        queue_ids = await cli_admin.queue_ids_named(session, args.queue or [])
        operator = await create_operator(
            session,
            CLI,
            email=args.email,
            name=args.name,
            role=Role(args.role),
            password=password,
            **cli_admin.operator_fields(args),
        )
        if queue_ids:
            await set_queues(session, CLI, operator.id, queue_ids)
    print(f"operator {operator.email} ({operator.role}) added with id {operator.id}")
    if password is None:
        print("no password is set: `omnicrm operator passwd EMAIL` sets one")
    return 0


def _read_password(
    prompt: str = "password: ",
    missing: str = "no password on stdin (give one line, or leave out --password-stdin)",
) -> str:
    from core.errors import InvalidInput

    if sys.stdin.isatty():
        password = getpass.getpass(prompt)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise InvalidInput(missing)
    return password


async def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.auth import create_token
    from core.models import Role

    async with _database(settings) as sessions, sessions() as session, session.begin():
        token, plain = await create_token(session, CLI, args.name, Role(args.role))
    print(f"API token {token.name!r} (role {token.role}) created; it is shown only this once:")
    print(plain)
    return 0


async def cmd_form_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.forms import create_form
    from core.queues import queue_by_name

    async with _database(settings) as sessions, sessions() as session, session.begin():
        queue = await queue_by_name(session, args.queue) if args.queue else None
        form = await create_form(
            session,
            CLI,
            slug=args.slug,
            title=args.title,
            queue_id=queue.id if queue else None,
            create_lead=args.lead,
            required_fields=args.require or ("email", "message"),
            thank_you_url=args.thank_you_url,
        )
    print(f"form {form.slug!r} added: /forms/{form.slug} (snippet: /forms/{form.slug}/embed)")
    return 0


async def cmd_secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """Re-encrypt under the current key what a previous key (or nobody) encrypted; all or
    nothing, in one transaction."""
    from core.audit import CLI
    from core.channel_accounts import rotate_credentials
    from core.credentials import CredentialCipher, CredentialError
    from erp_bridge.config import rotate_credentials as rotate_erp_credentials

    cipher = CredentialCipher.from_settings(settings)
    registry: ChannelRegistry = args.registry

    def secret_fields(name: str) -> frozenset[str] | None:
        channel = registry.get(name)
        return channel.secret_fields if channel is not None else None

    async with _database(settings) as sessions, sessions() as session, session.begin():
        rotation = await rotate_credentials(session, CLI, cipher, secret_fields)
        if not rotation.unreadable:
            await rotate_erp_credentials(session, CLI, cipher, rotation)
        if rotation.unreadable:
            for what in rotation.unreadable:
                print(f"omnicrm: cannot decrypt {what}", file=sys.stderr)
            raise CredentialError(
                f"nothing was re-encrypted: {len(rotation.unreadable)} stored credential(s) "
                "cannot be decrypted with credentials_key or credentials_previous_keys. If "
                "credentials_key was changed, or secret_key while credentials_key is unset (the "
                "credentials key is then derived from it), add the old value to "
                "credentials_previous_keys and run this again; otherwise set those secrets again "
                "(`omnicrm channel set ... --<secret>-stdin`, "
                "`omnicrm erp set ... --<secret>-stdin`)"
            )
    print(
        f"re-encrypted {rotation.rotated} stored credential(s) with the current key "
        f"({rotation.already_current} already were); previous keys can now be removed "
        "from credentials_previous_keys"
    )
    return 0


async def cmd_contact_export(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.privacy_export import export_contact, record_export
    from core.storage import FilesystemStore

    output = Path(args.output or f"contact-{args.id}-export.zip")
    partial = await asyncio.to_thread(_export_target, output)
    try:
        async with _database(settings) as sessions:
            out = await asyncio.to_thread(partial.open, "wb")
            try:
                async with sessions() as session, _contact_given():
                    summary = await export_contact(
                        session, FilesystemStore(settings.attachments_dir), args.id, out
                    )
            finally:
                await asyncio.to_thread(out.close)
            async with sessions() as session, session.begin():
                await record_export(session, CLI, summary)
        await asyncio.to_thread(partial.replace, output)
    finally:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
    print(
        f"contact {summary.contact_id} exported to {output}: {summary.conversations} "
        f"conversations, {summary.interactions} interactions, {summary.attachments} "
        f"attachments, {summary.quarantined_messages} quarantined messages"
    )
    if summary.missing_attachments:
        print(f"{summary.missing_attachments} attachments were missing from the store")
    return 0


@asynccontextmanager
async def _contact_given() -> AsyncIterator[None]:
    """An id that names no contact, or a merged one, is a bad argument: exit 2."""
    from core.errors import Conflict, NotFound

    try:
        yield
    except (NotFound, Conflict) as exc:
        raise CliError(exc.message, code=2) from None


def _export_target(output: Path) -> Path:
    """Where the archive is written first: beside `output`, renamed when complete, so a
    failed export leaves no half file; an existing file is never overwritten."""
    if output.exists():
        raise CliError(f"{output} exists already; choose another --output", code=2)
    if not output.parent.is_dir():
        raise CliError(f"directory {output.parent} does not exist", code=2)
    return output.with_name(f".{output.name}.partial")


async def cmd_contact_erase(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.privacy import erase
    from core.storage import FilesystemStore

    if not args.yes:
        raise CliError(f"erasing contact {args.id} cannot be undone: add --yes to confirm", code=2)
    async with _database(settings) as sessions, _contact_given():
        report = await erase(sessions, FilesystemStore(settings.attachments_dir), CLI, args.id)
    erasure, purge = report.erasure, report.purge
    merged = f" (with merged records {', '.join(map(str, erasure.merged_ids))})"
    counts = erasure.counts
    print(
        f"contact {erasure.contact_id}{merged if erasure.merged_ids else ''} erased: "
        f"{counts['identities']} identities deleted, {counts['conversations']} conversations "
        f"and {counts['interactions']} interactions anonymised, {counts['outbox_cancelled']} "
        f"unsent replies cancelled, {counts['quarantined_messages']} quarantined messages "
        f"deleted; {purge.deleted} attachment files deleted, {purge.kept} kept (another "
        "contact's interaction holds the same file)"
    )
    if purge.failed:
        print(f"{purge.failed} attachment files could not be deleted (see the log)")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _check_sqlite_file(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (parsed.database or ":memory:") == ":memory:":
        raise CliError("an in-memory SQLite database ends with the command; give a file path")


def _check_sqlite_directory(url: str) -> None:
    """SQLite creates its file but not the directories: say so before a driver error does."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database or ""
    if (
        parsed.get_backend_name() != "sqlite"
        or path in ("", ":memory:")
        or path.startswith("file:")
    ):
        return
    directory = Path(path).parent
    if not directory.is_dir():
        raise CliError(
            f"cannot reach the database at {_safe_url(url)}: directory {directory} does not exist"
        )


def _with_fields(exc: DomainError) -> str:
    """The message with the field each problem is about, e.g. "email: not a valid address"."""
    details = "; ".join(f"{name}: {text}" for name, text in exc.fields.items())
    if not details:
        return exc.message
    if set(exc.fields.values()) == {exc.message}:
        return details
    return f"{exc.message} ({details})"


def _first_line(exc: BaseException) -> str:
    from sqlalchemy.exc import DBAPIError

    # A driver's message may span lines (with SQL and hints); the first one says what failed.
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def _registry(channels: Sequence[Channel] | None) -> ChannelRegistry:
    """The channels this process runs, installed: core validates replies and counts capacity
    by them."""
    from channels.registry import ChannelRegistry, default_channels

    registry = ChannelRegistry(default_channels() if channels is None else channels)
    registry.install()
    return registry


def _erp_kinds() -> Mapping[str, ErpKind]:
    """The kinds of ERP this omnicrm has (erp_bridge/registry.py)."""
    from erp_bridge.registry import kinds

    return kinds()


def _command_word(words: Sequence[str]) -> str | None:
    """The command `words` name (`--config F` may come first), or None."""
    rest = iter(words)
    for word in rest:
        if word == "--config":
            next(rest, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None, channels: Sequence[Channel] | None = None) -> int:
    """Run one command; `channels` are the channels it knows (the built-in ones unless
    given: tests add their own)."""
    words = list(sys.argv[1:] if argv is None else argv)
    # The channels are built (imported) only when the command needs them: `--help` and a
    # usage error answer at once.
    word = _command_word(words)
    registry = _registry(channels) if word == "channel" else None
    try:
        erp_kinds = _erp_kinds() if word == "erp" else None
    except Exception as exc:  # a kind's module that does not import: one line, not a traceback
        print(f"omnicrm: the ERP bridge cannot load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    parser = build_parser(registry, erp_kinds)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else 2
    from alembic.util import CommandError
    from sqlalchemy.exc import (
        ArgumentError,
        InterfaceError,
        OperationalError,
        SQLAlchemyError,
    )

    from channels.accounts import declared_accounts
    from core.credentials import CredentialError
    from core.errors import DomainError, InvalidInput
    from core.settings import SettingsError, load_settings
    from web.logs import configure_logging

    if registry is None:
        registry = _registry(channels)
    args.registry = registry
    overrides = {
        key: value
        for key in ("host", "port", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        settings = load_settings(args.config or getattr(args, "sub_config", None), **overrides)
        # The config file's channel accounts, checked by their channels now, not at start-up.
        declared_accounts(settings.channel_accounts, registry)
    except SettingsError as exc:
        print(f"omnicrm: {exc}", file=sys.stderr)
        return 2
    try:
        database = _safe_url(settings.database_url)
        _check_sqlite_file(settings.database_url)
    except (ValueError, ArgumentError, CliError) as exc:
        print(f"omnicrm: invalid settings: database_url: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_json)
    handler: Command = args.handler
    try:
        _check_sqlite_directory(settings.database_url)
        return asyncio.run(handler(args, settings))
    except KeyboardInterrupt:
        return 130
    except (CliError, CredentialError) as exc:
        print(f"omnicrm: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    except InvalidInput as exc:
        print(f"omnicrm: {_with_fields(exc)}", file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"omnicrm: {exc.message}", file=sys.stderr)
        return 1
    except (OperationalError, InterfaceError, OSError) as exc:
        print(
            f"omnicrm: cannot reach the database at {database}: {_first_line(exc)}", file=sys.stderr
        )
        return 1
    except (SQLAlchemyError, CommandError) as exc:
        print(f"omnicrm: database error at {database}: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        print(
            f"omnicrm: unexpected error: {type(exc).__name__}: {_first_line(exc)} "
            "(OMNICRM_LOG_LEVEL=DEBUG logs the details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

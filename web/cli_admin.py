"""`omnicrm operator list|set|passwd|deactivate`, `token list|revoke`, `form list|remove` and
`queue list|add|set`: the team and its tools from the command line.

Every change goes through the same core functions as the API (so it is validated and audited
the same way, with the actor `cli`). Module-level imports stay light: `omnicrm --help` builds
this parser without importing the database layer; each command imports what it uses.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from web.cli_common import OPERATOR_ROLE_NAMES, CliError, add_command, database, record_id

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.models import Operator, Queue, WebForm
    from core.settings import Settings


# --- the arguments ---------------------------------------------------------------------------


def _pair(raw: str) -> tuple[str, int]:
    """`NAME=NUMBER`, e.g. `de=80` or `messaging=5`."""
    name, sep, value = raw.partition("=")
    if not sep or not name.strip() or not value.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, not {raw!r}")
    return name.strip(), int(value)


def add_operator_arguments(parser: argparse.ArgumentParser, *, change: bool = False) -> None:
    """Skills, languages, capacity and queues, for `operator add` and `operator set`."""
    what = "replaces all of them" if change else "once per item"
    parser.add_argument(
        "--skill", type=_pair, action="append", metavar="NAME=LEVEL", help=f"0-100; {what}"
    )
    parser.add_argument(
        "--language", type=_pair, action="append", metavar="CODE=LEVEL", help=f"0-100; {what}"
    )
    parser.add_argument(
        "--capacity",
        type=_pair,
        action="append",
        metavar="KIND=N",
        help="concurrent work per kind (voice, messaging, email); "
        + (what if change else "default voice=1 messaging=5 email=10"),
    )
    parser.add_argument(
        "--queue", action="append", metavar="NAME", help=f"a queue they work; {what}"
    )
    if change:
        parser.add_argument("--no-skills", action="store_true", help="remove every skill")
        parser.add_argument("--no-queues", action="store_true", help="work no queue")


def add_operator_commands(commands: Any) -> None:
    listing = add_command(commands, "list", "list operators", cmd_operator_list)
    listing.add_argument("--active", action="store_true", help="only active operators")

    change = add_command(
        commands, "set", "change an operator (only what is given)", cmd_operator_set
    )
    change.add_argument("operator", help="the operator's email or id")
    change.add_argument("--name")
    change.add_argument("--role", choices=OPERATOR_ROLE_NAMES)
    change.add_argument("--activate", action="store_true", help="let them sign in again")
    add_operator_arguments(change, change=True)

    passwd = add_command(
        commands, "passwd", "set an operator's password (signs them out)", cmd_operator_passwd
    )
    passwd.add_argument("operator", help="the operator's email or id")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read it from stdin (else you are asked)"
    )

    deactivate = add_command(
        commands,
        "deactivate",
        "stop an operator signing in (signs them out; their history stays)",
        cmd_operator_deactivate,
    )
    deactivate.add_argument("operator", help="the operator's email or id")


def add_token_commands(commands: Any) -> None:
    add_command(commands, "list", "list API tokens (never the secret)", cmd_token_list)
    revoke = add_command(commands, "revoke", "revoke an API token", cmd_token_revoke)
    revoke.add_argument("id", type=record_id, help="the token's id (see `token list`)")


def add_form_commands(commands: Any) -> None:
    add_command(commands, "list", "list web forms", cmd_form_list)
    remove = add_command(
        commands,
        "remove",
        "deactivate a web form: it stops taking submissions, its history stays",
        cmd_form_remove,
    )
    remove.add_argument("slug", help="the form's slug")


def add_queue_commands(commands: Any) -> None:
    queue = commands.add_parser("queue", help="manage queues and their routing configuration")
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(actions, "list", "list queues with their members", cmd_queue_list)
    add = add_command(actions, "add", "add a queue", cmd_queue_add)
    add.add_argument("--name", required=True)
    _queue_arguments(add)
    change = add_command(actions, "set", "change a queue (only what is given)", cmd_queue_set)
    change.add_argument("queue", help="the queue's name")
    change.add_argument("--name", dest="new_name", help="a new name")
    _queue_arguments(change)


def _queue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--description")
    parser.add_argument(
        "--routing",
        dest="routing_config",
        metavar="JSON",
        help="the routing configuration as a JSON object (docs/routing.md); @FILE reads a file",
    )
    parser.add_argument(
        "--member", action="append", metavar="EMAIL", help="an operator who works it (replaces)"
    )


# --- helpers ---------------------------------------------------------------------------------


def operator_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The skills, languages and capacity the flags give (None: not given)."""
    return {
        "skills": dict(args.skill) if args.skill else None,
        "languages": dict(args.language) if args.language else None,
        "capacity": dict(args.capacity) if args.capacity else None,
    }


async def queue_ids_named(session: AsyncSession, names: list[str]) -> list[int]:
    from core.queues import queue_by_name

    return [(await queue_by_name(session, name)).id for name in names]


async def _operator(session: AsyncSession, ref: str) -> Operator:
    from sqlalchemy import select

    from core.errors import InvalidInput
    from core.identity import normalize_email
    from core.models import Operator

    if ref.isdigit():
        found = await session.get(Operator, int(ref))
    else:
        try:
            email = normalize_email(ref)
        except InvalidInput:
            email = ref
        found = await session.scalar(select(Operator).where(Operator.email == email))
    if found is None:
        raise CliError(f"no operator {ref!r} (give an email or an id)", code=1)
    return found


def _levels(levels: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(levels.items())) or "-"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _config(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    if raw.startswith("@"):
        try:
            with open(raw[1:], encoding="utf-8") as file:
                raw = file.read()
        except OSError as exc:
            raise CliError(f"cannot read {raw[1:]}: {exc.strerror}", code=2) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(f"--routing is not JSON: {exc.msg} at line {exc.lineno}", code=2) from None
    if not isinstance(value, dict):
        raise CliError("--routing must be a JSON object", code=2)
    return value


# --- operators -------------------------------------------------------------------------------


async def cmd_operator_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.operators import list_operators
    from core.queues import list_queues

    async with database(settings) as sessions, sessions() as session:
        found = await list_operators(session, active=True if args.active else None)
        queues = await list_queues(session)
    names: dict[int, list[str]] = {}
    for queue, members in queues:
        for operator_id in members:
            names.setdefault(operator_id, []).append(queue.name)
    rows = [("id", "email", "name", "role", "active", "capacity", "skills", "queues")]
    rows += [
        (
            str(o.id),
            o.email,
            o.name,
            str(o.role),
            "yes" if o.active else "no",
            _levels(o.capacity),
            _levels({**o.skills, **{f"lang:{k}": v for k, v in o.languages.items()}}),
            ",".join(names.get(o.id, [])) or "-",
        )
        for o in found
    ]
    _table(rows)
    return 0


async def cmd_operator_set(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.models import Role
    from core.operators import set_queues, update_operator

    fields = operator_fields(args)
    if args.no_skills:
        fields["skills"] = {}
    async with database(settings) as sessions, sessions() as session, session.begin():
        operator = await _operator(session, args.operator)
        await update_operator(
            session,
            CLI,
            operator.id,
            name=args.name,
            role=Role(args.role) if args.role else None,
            active=True if args.activate else None,
            **fields,
        )
        if args.queue or args.no_queues:
            ids = await queue_ids_named(session, args.queue or [])
            await set_queues(session, CLI, operator.id, ids)
        email = operator.email
    print(f"operator {email} changed")
    return 0


async def cmd_operator_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.auth import MIN_PASSWORD
    from core.operators import set_password
    from web.cli import _read_password

    password = _read_password(missing="no password on stdin (give one line)")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"the password must be at least {MIN_PASSWORD} characters", code=2)
    async with database(settings) as sessions:
        async with sessions() as session:
            operator_id = (await _operator(session, args.operator)).id
        async with sessions() as session, session.begin():
            operator = await set_password(session, CLI, operator_id, password)
            email = operator.email
    print(f"password of {email} set; their sessions have ended")
    return 0


async def cmd_operator_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.operators import update_operator

    async with database(settings) as sessions, sessions() as session, session.begin():
        operator = await _operator(session, args.operator)
        await update_operator(session, CLI, operator.id, active=False)
        email = operator.email
    print(f"operator {email} deactivated (`operator set {email} --activate` undoes it)")
    return 0


# --- tokens ----------------------------------------------------------------------------------


async def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.auth import list_tokens

    async with database(settings) as sessions, sessions() as session:
        tokens = await list_tokens(session)
    rows = [("id", "name", "role", "created", "revoked")]
    rows += [
        (
            str(token.id),
            token.name,
            str(token.role),
            token.created_at.strftime("%Y-%m-%d %H:%M"),
            token.revoked_at.strftime("%Y-%m-%d %H:%M") if token.revoked_at else "-",
        )
        for token in tokens
    ]
    _table(rows)
    return 0


async def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.auth import revoke_token
    from core.models import ApiToken

    async with database(settings) as sessions, sessions() as session, session.begin():
        token = await session.get(ApiToken, args.id)
        if token is None:
            raise CliError(f"no API token {args.id} (see `omnicrm token list`)")
        revoked = await revoke_token(session, CLI, args.id)
        name = token.name
    print(f"API token {name!r} " + ("revoked" if revoked else "was revoked already"))
    return 0


# --- forms -----------------------------------------------------------------------------------


async def cmd_form_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.forms import list_forms
    from core.queues import list_queues

    async with database(settings) as sessions, sessions() as session:
        forms: list[WebForm] = await list_forms(session)
        queues = {queue.id: queue.name for queue, _ in await list_queues(session)}
    rows = [("id", "slug", "title", "queue", "lead", "active", "required")]
    rows += [
        (
            str(form.id),
            form.slug,
            form.title,
            queues.get(form.queue_id, "-") if form.queue_id else "-",
            "yes" if form.create_lead else "no",
            "yes" if form.active else "no",
            ",".join(form.required_fields),
        )
        for form in forms
    ]
    _table(rows)
    return 0


async def cmd_form_remove(args: argparse.Namespace, settings: Settings) -> int:
    from core.audit import CLI
    from core.errors import NotFound
    from core.forms import deactivate_form, form_by_slug

    async with database(settings) as sessions, sessions() as session, session.begin():
        try:
            form = await form_by_slug(session, args.slug, active_only=False)
        except NotFound:
            raise CliError(f"no form {args.slug!r} (see `omnicrm form list`)") from None
        await deactivate_form(session, CLI, form.id)
    print(f"form {args.slug!r} deactivated: /forms/{args.slug} takes no more submissions")
    return 0


# --- queues ----------------------------------------------------------------------------------


async def cmd_queue_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.operators import list_operators
    from core.queues import list_queues

    async with database(settings) as sessions, sessions() as session:
        queues = await list_queues(session)
        emails = {o.id: o.email for o in await list_operators(session)}
    rows = [("id", "name", "members", "routing")]
    rows += [
        (
            str(queue.id),
            queue.name,
            ",".join(emails.get(i, str(i)) for i in members) or "-",
            json.dumps(queue.config, sort_keys=True) if queue.config else "-",
        )
        for queue, members in queues
    ]
    _table(rows)
    return 0


async def _save_queue(
    session: AsyncSession, args: argparse.Namespace, queue_id: int | None, name: str | None
) -> Queue:
    from sqlalchemy import select

    from core.audit import CLI
    from core.models import Operator
    from core.queues import set_members
    from routing.setup import create_queue, update_queue

    config = _config(args.routing_config)
    if queue_id is None:
        queue = await create_queue(
            session, CLI, name=name or "", description=args.description or "", config=config
        )
    else:
        queue = await update_queue(
            session, CLI, queue_id, name=name, description=args.description, config=config
        )
    if args.member:
        ids = []
        for email in args.member:
            found = await session.scalar(select(Operator.id).where(Operator.email == email))
            if found is None:
                raise CliError(f"no operator {email!r}")
            ids.append(found)
        await set_members(session, CLI, queue.id, ids)
    return queue


async def cmd_queue_add(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as sessions, sessions() as session, session.begin():
        queue = await _save_queue(session, args, None, args.name)
        queue_id, name = queue.id, queue.name
    print(f"queue {name!r} added with id {queue_id}")
    return 0


async def cmd_queue_set(args: argparse.Namespace, settings: Settings) -> int:
    from core.queues import queue_by_name

    async with database(settings) as sessions, sessions() as session, session.begin():
        queue = await queue_by_name(session, args.queue)
        queue = await _save_queue(session, args, queue.id, args.new_name)
        name = queue.name
    print(f"queue {name!r} changed")
    return 0

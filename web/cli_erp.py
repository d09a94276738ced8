"""`omnicrm erp set|show|check|import`: the ERP omnicrm reads, from the command line.

- `erp set KIND [--<setting> ...] [--<secret>-stdin ...] [--enable|--disable]` configures the
  ERP (one at a time; the embedded one when none is set). The flags come from the kind's
  settings model (web/cli_settings.py, as `channel add|set`); secrets only from stdin. While a
  kind is in use only what is given changes; setting another kind replaces its settings.
- `erp show`: the kind, its settings (each secret only as set or not set), the last check.
- `erp check`: builds the configured adapter and runs its check now; one line, exit code 1 on
  failure (recorded on the connection either way).
- `erp import FILE [--all-or-nothing]`: a CSV file of products, stock, orders or invoices into
  the embedded ERP (erp_bridge/csv_import.py documents the columns). Rows with problems are
  listed on stderr ("orders.csv: row 12: quantity: not a number"), the good ones stored; a
  progress bar on a terminal (plain counts otherwise) on stderr, a summary line on stdout.
  Exit code 0 when every row was stored, 1 when some were not, 2 when nothing was written
  (a file that is no import, or `--all-or-nothing` with any problem).
"""

# ruff: noqa: T201 - a CLI talks to its user on stdout and stderr

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.audit import CLI
from core.clock import utcnow
from core.credentials import CredentialCipher, CredentialError
from core.errors import InvalidInput
from core.settings import Settings
from erp_bridge.base import ErpError, ErpKind
from erp_bridge.config import (
    build_adapter,
    get_connection,
    record_check,
    set_connection,
    view_of,
)
from erp_bridge.csv_import import CsvError, decode, parse, store
from web.cli_common import CliError, ProgressBar, add_command, database
from web.cli_settings import given_settings, in_flags, setting_arguments

MAX_ERRORS_SHOWN = 200


def add_erp_commands(commands: Any, kinds: Mapping[str, ErpKind]) -> None:
    """The `erp` command group, with a subcommand of `set` per kind of ERP."""
    group = commands.add_parser("erp", help="the ERP omnicrm reads orders and stock from")
    group.set_defaults(erp_kinds=kinds)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    change = actions.add_parser(
        "set", help="configure the ERP (the embedded one answers while none is set)"
    )
    change_kinds = change.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in kinds.values():
        parser = add_command(
            change_kinds,
            kind.name,
            f"use {kind.label} (while it is in use, only what is given changes)",
            cmd_erp_set,
        )
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true", help="ask it again")
        state.add_argument(
            "--disable", action="store_true", help="stop asking it (its settings stay)"
        )
        setting_arguments(parser, kind.settings_model, kind.secret_fields, change=False)

    add_command(
        actions, "show", "the configured ERP and its settings (secrets never shown)", cmd_erp_show
    )
    check = add_command(
        actions, "check", "try the configured ERP's connection and credentials now", cmd_erp_check
    )
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for it (default 10)"
    )
    load = add_command(
        actions,
        "import",
        "load a CSV file of products, stock, orders or invoices into the embedded ERP",
        cmd_erp_import,
    )
    load.add_argument(
        "file", help="a CSV file; its header says which kind (see erp_bridge/csv_import.py)"
    )
    load.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="store nothing unless every row is good (default: store the good rows)",
    )


# --- set, show, check -----------------------------------------------------------------------


async def cmd_erp_set(args: argparse.Namespace, settings: Settings) -> int:
    kinds: Mapping[str, ErpKind] = args.erp_kinds
    kind = kinds[args.kind]
    given = given_settings(args, kind.settings_model, kind.secret_fields)
    enabled = True if args.enable else False if args.disable else None
    cipher = CredentialCipher.from_settings(settings)
    async with database(settings) as sessions, sessions() as session, session.begin():
        try:
            row, changed = await set_connection(
                session, CLI, cipher, kind.name, given, enabled=enabled, kinds=kinds
            )
        except InvalidInput as exc:
            raise in_flags(exc, kind.settings_model, kind.secret_fields) from None
    what = f"changed {', '.join(changed)}" if changed else "nothing to change"
    state = "" if row.enabled else " (disabled)"
    print(f"ERP {kind.label} ({kind.name}){state}: {what}")
    unset = sorted(name for name in kind.secret_fields if not row.settings.get(name))
    if unset:
        flags = " ".join(f"--{name.replace('_', '-')}-stdin" for name in unset)
        print(f"not set: {', '.join(unset)} (`omnicrm erp set {kind.name} {flags}` sets them)")
    return 0


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def cmd_erp_show(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as sessions, sessions() as session:
        view = view_of(await get_connection(session), args.erp_kinds)
    if not view.configured:
        print(f"ERP: {view.label} ({view.kind}), the default: no ERP is configured")
    else:
        state = "enabled" if view.enabled else "disabled"
        print(f"ERP: {view.label} ({view.kind}), {state}")
    secrets = {f"{name}_set": name for name in view.secret_fields}
    for key, value in view.settings.items():
        if key in secrets:
            print(f"  {secrets[key]}: {'set' if value else 'not set'}")
        else:
            print(f"  {key}: {_shown(value)}")
    if view.last_check_at is not None:
        print(f"last check: {view.last_check_at:%Y-%m-%dT%H:%M:%SZ} {view.last_check_result}")
    return 0


async def cmd_erp_check(args: argparse.Namespace, settings: Settings) -> int:
    cipher = CredentialCipher.from_settings(settings)
    async with database(settings) as sessions:
        async with sessions() as session:
            view = view_of(await get_connection(session), args.erp_kinds)
        label = f"{view.kind} ERP"
        ok = False
        try:
            adapter = await build_adapter(
                sessions, cipher, kinds=args.erp_kinds, timeout=max(args.timeout, 0.1)
            )
            try:
                message = await adapter.check()
                ok = True
            finally:
                await adapter.close()
        except (ErpError, CredentialError) as exc:
            message = str(exc)
        except Exception as exc:  # an adapter's own failure: still one line for the admin
            message = f"{type(exc).__name__}: {exc}"
        message = " ".join(message.split()) or "no reason given"
        async with sessions() as session, session.begin():
            await record_check(session, ok=ok, message=message, at=utcnow())
    if not ok:
        raise CliError(f"{label}: check failed: {message}")
    print(f"{label}: {message}")
    return 0


# --- import ---------------------------------------------------------------------------------


async def cmd_erp_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    name = path.name
    try:
        raw = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", code=2) from None
    except IsADirectoryError:
        raise CliError(f"{path}: a directory, not a CSV file", code=2) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", code=2) from None
    try:
        parsed = parse(decode(raw))
    except CsvError as exc:
        raise CliError(f"{name}: {exc}; nothing was imported", code=2) from None
    bar = ProgressBar(name, parsed.format.noun, sys.stderr)
    async with database(settings) as sessions:
        async with sessions() as session:
            configured = await get_connection(session)
        try:
            summary = await store(
                sessions,
                CLI,
                parsed,
                all_or_nothing=args.all_or_nothing,
                progress=bar.update,
                default_region=settings.default_region,
                file_name=name,
            )
        finally:
            bar.close()
    for error in summary.errors[:MAX_ERRORS_SHOWN]:
        print(f"{name}: {error}", file=sys.stderr)
    if len(summary.errors) > MAX_ERRORS_SHOWN:
        print(
            f"{name}: ... and {len(summary.errors) - MAX_ERRORS_SHOWN} more problems",
            file=sys.stderr,
        )
    print(f"{name}: {summary.line()}")
    if configured is not None and configured.kind != "embedded":
        print(
            f"note: the configured ERP is {configured.kind}: the embedded ERP's data is read "
            "once `omnicrm erp set embedded` makes it the ERP again",
            file=sys.stderr,
        )
    if not summary.written:
        return 2
    return 1 if summary.errors else 0

"""`omnicrm channel add|list|set|remove|check`: channel accounts from the command line.

The flags of `add` and `set` are built from each channel's settings model by
web/cli_settings.py (shared with `omnicrm erp set`): a field becomes `--<field with - for _>`
(or the name its `json_schema_extra={"cli": ...}` gives; `False`: no flag), a bool field
`--x/--no-x`, a list field a flag given once per item, a choice field a flag with those
choices. Secret fields are never flags with a value: `--<flag>-stdin` reads the secret from
stdin, one line per such flag in the order they are given (a terminal is asked without
echo). Validation is the channel's (channels/accounts.py), errors name the flags at fault.
"""

from __future__ import annotations

import argparse
from typing import Any

from channels.accounts import add_account, change_account
from channels.base import Channel, ChannelServices
from channels.registry import ChannelRegistry
from core.audit import CLI
from core.channel_accounts import account_named, health_of, list_accounts, view_of
from core.credentials import CredentialCipher
from core.errors import InvalidInput
from core.events import EventBus
from core.ingest import IngestPolicy
from core.models import ChannelAccount
from core.queues import list_queues, queue_by_name
from core.settings import Settings
from core.storage import FilesystemStore
from web.cli_common import CliError, add_command, database
from web.cli_settings import given_settings, in_flags, setting_arguments


def add_channel_commands(commands: Any, registry: ChannelRegistry) -> None:
    """The `channel` command group, with a subcommand per channel for `add` and `set`."""
    group = commands.add_parser("channel", help="manage channel accounts (email, ...)")
    group.set_defaults(registry=registry)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    channels = registry.with_accounts()
    names = [channel.name for channel in channels]

    add = actions.add_parser("add", help="add an account to a channel")
    add_channels = add.add_subparsers(dest="channel", required=True, metavar="CHANNEL")
    for channel in channels:
        parser = add_command(
            add_channels, channel.name, f"add a {channel.facts.label} account", cmd_channel_add
        )
        parser.add_argument("--name", required=True, help="unique within the channel")
        parser.add_argument("--queue", help="name of the queue its conversations go to")
        parser.add_argument(
            "--disabled", action="store_true", help="add it disabled (enable with `set`)"
        )
        _setting_arguments(parser, channel, change=False)

    change = actions.add_parser("set", help="change an account's settings")
    change_channels = change.add_subparsers(dest="channel", required=True, metavar="CHANNEL")
    for channel in channels:
        parser = add_command(
            change_channels,
            channel.name,
            f"change a {channel.facts.label} account (only what is given)",
            cmd_channel_set,
        )
        parser.add_argument("name", help="the account's name")
        queue = parser.add_mutually_exclusive_group()
        queue.add_argument("--queue", help="name of the queue its conversations go to")
        queue.add_argument("--no-queue", action="store_true", help="no queue of its own")
        state = parser.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true", help="read and send again")
        state.add_argument("--disable", action="store_true", help="stop reading and sending")
        _setting_arguments(parser, channel, change=True)

    listing = add_command(
        actions, "list", "list accounts with their health (secrets never shown)", cmd_channel_list
    )
    listing.add_argument("channel", nargs="?", choices=names, help="only this channel's")
    remove = add_command(
        actions, "remove", "disable an account (its history stays)", cmd_channel_remove
    )
    check = add_command(
        actions, "check", "try an account's connection and credentials", cmd_channel_check
    )
    for parser in (remove, check):
        parser.add_argument("channel", choices=names)
        parser.add_argument("name", help="the account's name")


# --- flags from a settings model (web/cli_settings.py) --------------------------------------


def _setting_arguments(parser: argparse.ArgumentParser, channel: Channel, *, change: bool) -> None:
    if channel.settings_model is not None:
        setting_arguments(parser, channel.settings_model, channel.secret_fields, change=change)


def _given_settings(args: argparse.Namespace, channel: Channel) -> dict[str, Any]:
    """The settings given as flags, then the secrets read from stdin in their flags' order."""
    if channel.settings_model is None:
        return {}
    return given_settings(args, channel.settings_model, channel.secret_fields)


def _in_flags(exc: InvalidInput, channel: Channel) -> InvalidInput:
    """The error with each field named by its flag ("--imap-port: ..."), on one line."""
    return in_flags(exc, channel.settings_model, channel.secret_fields, {"queue_id": "queue"})


# --- the commands ---------------------------------------------------------------------------


async def cmd_channel_add(args: argparse.Namespace, settings: Settings) -> int:
    registry: ChannelRegistry = args.registry
    channel = registry.account_channel(args.channel)
    given = _given_settings(args, channel)
    async with database(settings) as sessions, sessions() as session, session.begin():
        queue_id = (await queue_by_name(session, args.queue)).id if args.queue else None
        try:
            row = await add_account(
                session,
                CLI,
                registry,
                CredentialCipher.from_settings(settings),
                channel=channel.name,
                name=args.name,
                settings=given,
                queue_id=queue_id,
                enabled=not args.disabled,
            )
        except InvalidInput as exc:
            raise _in_flags(exc, channel) from None
    print(f"{channel.name} account {row.name!r} added with id {row.id}")
    unset = sorted(name for name in channel.secret_fields if not row.settings.get(name))
    if unset:
        flags = " ".join(f"--{name.replace('_', '-')}-stdin" for name in unset)
        print(
            f"not set: {', '.join(unset)} (`omnicrm channel set {channel.name} {row.name} "
            f"{flags}` sets them)"
        )
    return 0


async def cmd_channel_set(args: argparse.Namespace, settings: Settings) -> int:
    registry: ChannelRegistry = args.registry
    channel = registry.account_channel(args.channel)
    given = _given_settings(args, channel)
    enabled = True if args.enable else False if args.disable else None
    async with database(settings) as sessions, sessions() as session, session.begin():
        row = await account_named(session, channel.name, args.name)
        queue_id = (await queue_by_name(session, args.queue)).id if args.queue else None
        try:
            changed = await change_account(
                session,
                CLI,
                registry,
                CredentialCipher.from_settings(settings),
                row,
                settings=given,
                queue_id=queue_id,
                set_queue=bool(args.queue or args.no_queue),
                enabled=enabled,
            )
        except InvalidInput as exc:
            raise _in_flags(exc, channel) from None
    what = f"changed {', '.join(changed)}" if changed else "nothing to change"
    print(f"{channel.name} account {row.name!r}: {what}")
    return 0


async def cmd_channel_remove(args: argparse.Namespace, settings: Settings) -> int:
    registry: ChannelRegistry = args.registry
    async with database(settings) as sessions, sessions() as session, session.begin():
        row = await account_named(session, args.channel, args.name)
        await change_account(
            session,
            CLI,
            registry,
            CredentialCipher.from_settings(settings),
            row,
            enabled=False,
        )
    print(
        f"{row.channel} account {row.name!r} is disabled; what it brought in stays "
        f"(`omnicrm channel set {row.channel} {row.name} --enable` brings it back)"
    )
    return 0


async def cmd_channel_list(args: argparse.Namespace, settings: Settings) -> int:
    registry: ChannelRegistry = args.registry
    async with database(settings) as sessions, sessions() as session:
        accounts = await list_accounts(session, channel=args.channel)
        queues = {queue.id: queue.name for queue, _ in await list_queues(session)}
    if not accounts:
        print("no channel accounts: add one with `omnicrm channel add` or in the config file")
        return 0
    rows: list[tuple[str, ...]] = [
        ("id", "channel", "name", "state", "source", "queue", "secrets", "health")
    ]
    rows += [_row(account, registry, queues) for account in accounts]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _row(
    account: ChannelAccount, registry: ChannelRegistry, queues: dict[int, str]
) -> tuple[str, ...]:
    channel = registry.get(account.channel)
    secrets = sorted(channel.secret_fields) if channel is not None else []
    stored = [name for name in secrets if account.settings.get(name)]
    return (
        str(account.id),
        account.channel,
        account.name,
        "enabled" if account.enabled else "disabled",
        "config" if account.from_config else "api/cli",
        queues.get(account.queue_id, "-") if account.queue_id else "-",
        ",".join(f"{name}" for name in stored) or "-",
        health_of(account),
    )


async def cmd_channel_check(args: argparse.Namespace, settings: Settings) -> int:
    registry: ChannelRegistry = args.registry
    channel = registry.account_channel(args.channel)
    cipher = CredentialCipher.from_settings(settings)
    async with database(settings) as sessions:
        async with sessions() as session:
            row = await account_named(session, channel.name, args.name)
        view = view_of(row, cipher, channel.secret_fields)
        services = ChannelServices(
            sessions=sessions,
            bus=EventBus(),
            store=FilesystemStore(settings.attachments_dir),
            policy=IngestPolicy(default_region=settings.default_region),
            cipher=cipher,
            settings=settings,
        )
        try:
            message = await channel.check(view, services)
        except Exception as exc:  # the provider's or the network's answer, for the admin
            raise CliError(f"{channel.name} account {row.name!r}: check failed: {exc}") from None
    print(f"{channel.name} account {row.name!r}: {message}")
    return 0

"""Channel accounts: one generic record per account of any channel.

A channel (a folder under `channels/`) validates an account's settings with its own model and
names the fields that are secret; this module stores them, secrets encrypted with the
`CredentialCipher` it is handed, and keeps the account's health and its poller's cursor.
Core knows no channel: the settings reach it validated, with the names of the secret fields.

Invariants:
- A secret is stored only encrypted (or "" for none) and never returned by the API: readers
  get an `AccountView`, whose settings hold the clear text in memory, or the row with the
  secrets masked (`public_settings`).
- Saving the same secret again writes nothing (Fernet's ciphertexts differ each time, so
  changes are detected on the decrypted value).
- Accounts declared in the config file (`from_config`) are changed only through the file
  (`sync_config_accounts`, which makes the table hold exactly what the file declares).
- A removed account is disabled, not deleted: its conversations, cursor and quarantine stay.
- An account's cursor (`channel_cursor`, key `account:<id>`) is written in the caller's
  transaction, together with the items it covers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import CONFIG_FILE, Actor
from core.cache import EventCache
from core.credentials import CredentialCipher, CredentialError, Rotation, is_encrypted
from core.db import SessionFactory, transaction
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import (
    CHANNEL_ACCOUNT_CREATED,
    CHANNEL_ACCOUNT_FAILED,
    CHANNEL_ACCOUNT_UPDATED,
    RESYNC,
)
from core.events import Event, EventBus, emit
from core.models import ChannelAccount, ChannelCursor, Queue, utcnow

MAX_NAME = 100
# pg_advisory_xact_lock key of the config sync ("omnichan" in ASCII).
_CONFIG_SYNC_LOCK = 0x6F6D6E696368616E


@dataclass(frozen=True)
class AccountView:
    """An account as adapters use it: settings with the secrets decrypted (in memory only)."""

    id: int
    channel: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    queue_id: int | None = None
    enabled: bool = True

    def setting(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)

    @property
    def label(self) -> str:
        """How logs, health and errors name the account: "<channel> account '<name>'"."""
        return f"{self.channel} account {self.name!r}"


def view_of(
    row: ChannelAccount, cipher: CredentialCipher, secret_fields: Iterable[str]
) -> AccountView:
    """The account with its secrets decrypted; CredentialError names one no key can read."""
    secrets = set(secret_fields)
    settings = {
        key: (
            cipher.decrypt(value, f"the {key} of {row.channel} account {row.name!r}")
            if key in secrets and isinstance(value, str)
            else value
        )
        for key, value in row.settings.items()
    }
    return AccountView(row.id, row.channel, row.name, settings, row.queue_id, row.enabled)


def view_without_secrets(row: ChannelAccount, secret_fields: Iterable[str]) -> AccountView:
    """The account with its secrets left out: what a poller is started with (it reads the
    account again, secrets decrypted, each time it connects)."""
    secrets = set(secret_fields)
    settings = {key: value for key, value in row.settings.items() if key not in secrets}
    return AccountView(row.id, row.channel, row.name, settings, row.queue_id, row.enabled)


def fingerprint_of(
    row: ChannelAccount, cipher: CredentialCipher, secret_fields: Iterable[str]
) -> str:
    """A digest of what the account's adapters work with (its settings, each secret as the
    clear text it holds, its queue), to notice a change without keeping a secret: a secret
    re-encrypted under another key is no change."""
    secrets = set(secret_fields)
    shown = {
        key: cipher.fingerprint(value) if key in secrets and isinstance(value, str) else value
        for key, value in row.settings.items()
    }
    data = json.dumps([shown, row.queue_id], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def public_settings(row: ChannelAccount, secret_fields: Iterable[str]) -> dict[str, Any]:
    """The settings as the API shows them: each secret replaced by whether it is set."""
    secrets = set(secret_fields)
    shown = {key: value for key, value in row.settings.items() if key not in secrets}
    for key in sorted(secrets):
        shown[f"{key}_set"] = bool(row.settings.get(key))
    return shown


async def get_account(session: AsyncSession, account_id: int) -> ChannelAccount:
    row = await session.get(ChannelAccount, account_id, populate_existing=True)
    if row is None:
        raise NotFound(f"no channel account {account_id}")
    return row


async def find_account(session: AsyncSession, channel: str, name: str) -> ChannelAccount | None:
    return await session.scalar(
        select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.name == name)
    )


class EnabledAccounts:
    """Enabled accounts by (channel, name), secrets decrypted, for the webhooks that
    authenticate with them: read once and kept (`core.cache.EventCache`), emptied when an
    account is created or changed (`channel_account.created`/`.updated`, which every change
    here announces, disabling included). A rotation of the credentials key changes no clear
    text, so it needs no emptying."""

    def __init__(self, bus: EventBus, cipher: CredentialCipher, ttl_seconds: float = 30.0) -> None:
        self._cipher = cipher
        self._accounts: EventCache[tuple[str, str], AccountView] = EventCache(
            bus, {CHANNEL_ACCOUNT_CREATED, CHANNEL_ACCOUNT_UPDATED}, ttl_seconds=ttl_seconds
        )

    async def get(
        self, sessions: SessionFactory, channel: str, name: str, secret_fields: Iterable[str]
    ) -> AccountView | None:
        """The enabled account `name` of `channel`, or None."""

        async def load() -> AccountView | None:
            async with sessions() as session:
                row = await find_account(session, channel, name)
            if row is None or not row.enabled:
                return None
            return view_of(row, self._cipher, secret_fields)

        return await self._accounts.get((channel, name), load)


async def account_named(session: AsyncSession, channel: str, name: str) -> ChannelAccount:
    """The account, or NotFound naming it."""
    row = await find_account(session, channel, name)
    if row is None:
        raise NotFound(f"no {channel} account named {name!r}")
    return row


async def list_accounts(
    session: AsyncSession, *, channel: str | None = None, enabled_only: bool = False
) -> list[ChannelAccount]:
    query = select(ChannelAccount).order_by(ChannelAccount.channel, ChannelAccount.name)
    if channel is not None:
        query = query.where(ChannelAccount.channel == channel)
    if enabled_only:
        query = query.where(ChannelAccount.enabled.is_(True))
    return list(await session.scalars(query))


async def readable_accounts(
    session: AsyncSession, cipher: CredentialCipher, channel: str, secret_fields: Iterable[str]
) -> list[AccountView]:
    """The enabled accounts of `channel` whose secrets a configured key reads, oldest first:
    the ones a sender may use (an account no key reads is its own error, shown on it)."""
    views = []
    rows = await list_accounts(session, channel=channel, enabled_only=True)
    for row in sorted(rows, key=lambda item: item.id):
        try:
            views.append(view_of(row, cipher, secret_fields))
        except CredentialError:
            continue
    return views


async def enabled_account_exists(session: AsyncSession, channel: str) -> bool:
    found = await session.scalar(
        select(ChannelAccount.id)
        .where(ChannelAccount.channel == channel, ChannelAccount.enabled.is_(True))
        .limit(1)
    )
    return found is not None


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "/" in name or not name.isprintable():
        raise InvalidInput(
            f"name must be 1 to {MAX_NAME} printable characters without '/'", field="name"
        )
    return name


async def _check_queue(session: AsyncSession, queue_id: int | None) -> None:
    if queue_id is not None and await session.get(Queue, queue_id) is None:
        raise InvalidInput(f"no queue {queue_id}", field="queue_id")


async def create_account(
    session: AsyncSession,
    actor: Actor,
    *,
    channel: str,
    name: str,
    settings: Mapping[str, Any],
    secret_fields: Iterable[str],
    cipher: CredentialCipher,
    queue_id: int | None = None,
    enabled: bool = True,
    from_config: bool = False,
) -> ChannelAccount:
    """A new account with validated `settings`; 409 if the channel has one of that name."""
    name = _checked_name(name)
    if await find_account(session, channel, name) is not None:
        raise Conflict(f"{channel} has an account named {name!r} already", field="name")
    await _check_queue(session, queue_id)
    row = ChannelAccount(
        channel=channel,
        name=name,
        settings=cipher.encrypt_fields(settings, secret_fields),
        queue_id=queue_id,
        enabled=enabled,
        from_config=from_config,
    )
    session.add(row)
    await session.flush()
    # The names of the settings, never their values: some are secrets.
    await audit.record(
        session,
        actor,
        "channel_account.create",
        "channel_account",
        row.id,
        {"channel": channel, "name": name, "fields": sorted(settings)},
    )
    await emit(session, Event(CHANNEL_ACCOUNT_CREATED, {"channel_account": row.id}))
    return row


async def update_account(
    session: AsyncSession,
    actor: Actor,
    row: ChannelAccount,
    *,
    settings: Mapping[str, Any],
    secret_fields: Iterable[str],
    cipher: CredentialCipher,
    queue_id: int | None = None,
    set_queue: bool = False,
    enabled: bool | None = None,
    by_config: bool = False,
) -> list[str]:
    """Apply validated changes (`settings` holds the new values of the fields sent); the
    names of what changed, sorted. Config-file accounts only change through the file
    (`by_config`), which takes over an account of the same name made elsewhere."""
    if row.from_config and not by_config:
        raise Conflict(
            f"account {row.name!r} is declared in the config file: change it there and "
            "restart omnicrm",
            field="name",
        )
    secrets = set(secret_fields)
    stored = dict(row.settings)
    changed: list[str] = []
    for key, value in settings.items():
        if key in secrets:
            if key in stored and cipher.matches(stored[key], value or ""):
                continue
            stored[key] = cipher.encrypt(value) if value else ""
        elif key in stored and stored[key] == value:
            continue
        else:
            stored[key] = value
        changed.append(key)
    if changed:
        row.settings = stored
    if set_queue and row.queue_id != queue_id:
        await _check_queue(session, queue_id)
        row.queue_id = queue_id
        changed.append("queue_id")
    if enabled is not None and row.enabled != enabled:
        row.enabled = enabled
        changed.append("enabled")
    if by_config and not row.from_config:
        row.from_config = True
        changed.append("from_config")
    changed.sort()
    if changed:
        await session.flush()
        await audit.record(
            session,
            actor,
            "channel_account.update",
            "channel_account",
            row.id,
            {"channel": row.channel, "name": row.name, "fields": changed},
        )
        await emit(session, Event(CHANNEL_ACCOUNT_UPDATED, {"channel_account": row.id}))
        await session.flush()
    return changed


# --- the config file ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredAccount:
    """An account as the config file declares it, its settings validated by its channel."""

    channel: str
    name: str
    settings: Mapping[str, Any]
    secret_fields: frozenset[str]
    queue: str | None = None
    enabled: bool = True

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.name}"


@dataclass
class ConfigSync:
    """What `sync_config_accounts` changed, as "<channel>:<name>"."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


async def sync_config_accounts(
    session: AsyncSession, declared: Sequence[DeclaredAccount], *, cipher: CredentialCipher
) -> ConfigSync:
    """Make the table hold exactly the config file's accounts (by channel and name).

    An account the file declares is created or updated to match it (a setting left out of
    the file means its default, since the channel's model filled it in). One of the same name
    made through the API or CLI is taken over by the file. One the file declared before and
    no longer does is disabled and handed back to the API, where an admin can manage or
    enable it. An account that matches the file is not written (secrets are compared as the
    clear text they hold), so a restart changes nothing.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Server processes starting together would otherwise both create the same account;
        # on SQLite the write lock taken at BEGIN serializes them already.
        await session.execute(select(func.pg_advisory_xact_lock(_CONFIG_SYNC_LOCK)))
    result = ConfigSync()
    keys: set[tuple[str, str]] = set()
    for account in declared:
        name = _checked_name(account.name)
        keys.add((account.channel, name))
        queue_id = await _queue_named(session, account)
        row = await find_account(session, account.channel, name)
        if row is None:
            await create_account(
                session,
                CONFIG_FILE,
                channel=account.channel,
                name=name,
                settings=account.settings,
                secret_fields=account.secret_fields,
                cipher=cipher,
                queue_id=queue_id,
                enabled=account.enabled,
                from_config=True,
            )
            result.created.append(account.key)
        elif await update_account(
            session,
            CONFIG_FILE,
            row,
            settings=account.settings,
            secret_fields=account.secret_fields,
            cipher=cipher,
            queue_id=queue_id,
            set_queue=True,
            enabled=account.enabled,
            by_config=True,
        ):
            result.updated.append(account.key)
    owned = await session.scalars(
        select(ChannelAccount)
        .where(ChannelAccount.from_config.is_(True))
        .order_by(ChannelAccount.id)
    )
    for row in list(owned):
        if (row.channel, row.name) not in keys:
            await _release(session, row)
            result.disabled.append(f"{row.channel}:{row.name}")
    return result


async def _release(session: AsyncSession, row: ChannelAccount) -> None:
    """The file no longer declares the account: disable it and hand it to the API."""
    changed = ["from_config"] + (["enabled"] if row.enabled else [])
    row.from_config = False
    row.enabled = False
    await session.flush()
    await audit.record(
        session,
        CONFIG_FILE,
        "channel_account.update",
        "channel_account",
        row.id,
        {
            "channel": row.channel,
            "name": row.name,
            "fields": sorted(changed),
            "reason": "removed from the config file",
        },
    )
    await emit(session, Event(CHANNEL_ACCOUNT_UPDATED, {"channel_account": row.id}))


async def _queue_named(session: AsyncSession, account: DeclaredAccount) -> int | None:
    if account.queue is None:
        return None
    queue_id = await session.scalar(select(Queue.id).where(Queue.name == account.queue))
    if queue_id is None:
        raise InvalidInput(
            f"{account.channel} account {account.name!r}: no queue named {account.queue!r}",
            field="queue",
        )
    return queue_id


# --- key rotation ---------------------------------------------------------------------------


async def rotate_credentials(
    session: AsyncSession,
    actor: Actor,
    cipher: CredentialCipher,
    secret_fields: Callable[[str], Iterable[str] | None],
) -> Rotation:
    """Re-encrypt every stored secret of every channel account under the current key.

    `secret_fields(channel)` names a channel's secrets (None for a channel this process does
    not run: then every value that is a ciphertext counts as one). Values under a previous
    key and clear text are re-encrypted; values under the current key stay as they are. If
    any value can be read with no configured key, nothing is written and the result lists
    them: the caller reports them and rolls back. The rows are locked (FOR UPDATE on
    PostgreSQL) so a concurrent edit waits for the rotation.
    """
    rotation = Rotation()
    rows = await session.scalars(
        select(ChannelAccount).order_by(ChannelAccount.id).with_for_update()
    )
    planned: list[tuple[ChannelAccount, dict[str, str]]] = []
    for row in list(rows):
        names = secret_fields(row.channel)
        if names is None:
            names = [
                key for key, value in row.settings.items() if isinstance(value, str)
                and is_encrypted(value)
            ]  # fmt: skip
        new = cipher.rotate_fields(
            row.settings, names, f"{row.channel} account {row.name!r}", rotation
        )
        if new:
            planned.append((row, new))
    if rotation.unreadable:
        return rotation
    for row, new in planned:
        await session.execute(
            update(ChannelAccount)
            .where(ChannelAccount.id == row.id)
            # The same secrets: not an edit of the account, so updated_at stays.
            .values(settings={**row.settings, **new}, updated_at=ChannelAccount.updated_at)
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session,
            actor,
            "channel_account.rotate_credentials",
            "channel_account",
            row.id,
            {"channel": row.channel, "name": row.name, "fields": sorted(new)},
        )
    return rotation


# --- health -----------------------------------------------------------------------------------


async def record_account_success(session: AsyncSession, account_id: int, at: datetime) -> None:
    """The account's poller or webhook worked: clear its error. Health is not configuration,
    so `updated_at` stays as the last edit left it."""
    await session.execute(
        update(ChannelAccount)
        .where(ChannelAccount.id == account_id)
        .values(last_success_at=at, last_error=None, updated_at=ChannelAccount.updated_at)
        .execution_options(synchronize_session=False)
    )


# A webhook's success is written at most this often per account (`record_account_heard_from`).
HEARD_EVERY = timedelta(minutes=1)


async def record_account_heard_from(
    session: AsyncSession, account_id: int, at: datetime, every: timedelta = HEARD_EVERY
) -> None:
    """A webhook of the account was stored: the account works. Written at most once per
    `every`, or at once after an error (one cheap UPDATE that matches nothing otherwise), in
    the caller's transaction. `HeardFrom` spares the statement itself when it would match
    nothing."""
    await session.execute(
        update(ChannelAccount)
        .where(
            ChannelAccount.id == account_id,
            or_(
                ChannelAccount.last_success_at.is_(None),
                ChannelAccount.last_success_at < at - every,
                ChannelAccount.last_error.is_not(None),
            ),
        )
        .values(last_success_at=at, last_error=None, updated_at=ChannelAccount.updated_at)
        .execution_options(synchronize_session=False)
    )


async def record_account_error(
    session: AsyncSession, account_id: int, reason: str, at: datetime
) -> None:
    """The account's poller or sender failed. Announced (`channel_account.failed`), so every
    process writes the account's next webhook success at once (`HeardFrom`)."""
    await session.execute(
        update(ChannelAccount)
        .where(ChannelAccount.id == account_id)
        .values(last_error=reason, last_error_at=at, updated_at=ChannelAccount.updated_at)
        .execution_options(synchronize_session=False)
    )
    await emit(session, Event(CHANNEL_ACCOUNT_FAILED, {"channel_account": account_id}))


class HeardFrom:
    """Which accounts' webhook successes this process wrote, and when, so it writes them
    again only when `record_account_heard_from` would change something: `every` after its
    last write, or at once after an error was recorded for the account in any process (the
    `channel_account.failed` event; all of them after a `resync`, when events may have been
    missed). Most webhooks are then one round trip fewer.

    The caller asks `due` before its transaction and, when it wrote, tells `written` after
    the commit: a write that was rolled back is made again by the next webhook, and one that
    an error followed is not taken for the account's last word."""

    def __init__(
        self,
        bus: EventBus,
        every: timedelta = HEARD_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every = every.total_seconds()
        self._clock = clock
        self._written: dict[int, float] = {}
        self._failed: dict[int, float] = {}
        bus.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type == CHANNEL_ACCOUNT_FAILED:
            account_id = event.ids.get("channel_account", 0)
            self._written.pop(account_id, None)
            self._failed[account_id] = self._clock()
        elif event.type == RESYNC:
            self._written.clear()

    def due(self, account_id: int) -> float | None:
        """None when the write would change nothing; else the moment asked, for `written`."""
        now = self._clock()
        written = self._written.get(account_id)
        return now if written is None or now - written >= self._every else None

    def written(self, account_id: int, asked: float) -> None:
        """The write asked for at `asked` committed."""
        if self._failed.get(account_id, float("-inf")) < asked:
            self._written[account_id] = asked


@asynccontextmanager
async def storing_heard_from(
    sessions: SessionFactory, account_id: int, heard: HeardFrom | None
) -> AsyncIterator[AsyncSession]:
    """A transaction for what a webhook of the account brought, which also records that the
    account works (`record_account_heard_from`, after the block's own work), unless `heard`
    knows that the write would change nothing (None: always written)."""
    asked = heard.due(account_id) if heard is not None else 0.0
    async with transaction(sessions) as session:
        yield session
        if asked is not None:
            await record_account_heard_from(session, account_id, utcnow())
    if heard is not None and asked is not None:
        heard.written(account_id, asked)


def health_of(row: ChannelAccount) -> str:
    """ "ok", "starting" (never succeeded yet), "disabled", or "error since …: reason"."""
    if not row.enabled:
        return "disabled"
    failing = row.last_error_at is not None and (
        row.last_success_at is None or row.last_error_at >= row.last_success_at
    )
    if failing and row.last_error_at is not None:
        return f"error since {row.last_error_at:%Y-%m-%dT%H:%M:%SZ}: {row.last_error}"
    if row.last_success_at is None:
        return "starting"
    return "ok"


# --- the cursor of a polled account ---------------------------------------------------------


def cursor_key(channel: str, account_id: int) -> tuple[str, str]:
    """The `channel_cursor` row of an account: (channel, "account:<id>")."""
    return channel, f"account:{account_id}"


async def load_cursor_state(
    session: AsyncSession, channel: str, account_id: int
) -> dict[str, Any] | None:
    name, key = cursor_key(channel, account_id)
    state = await session.scalar(
        select(ChannelCursor.state).where(
            ChannelCursor.channel == name, ChannelCursor.account == key
        )
    )
    return dict(state) if state is not None else None


async def save_cursor_state(
    session: AsyncSession, channel: str, account_id: int, state: Mapping[str, Any]
) -> None:
    """Write the account's cursor in the caller's transaction (with the items it covers)."""
    name, key = cursor_key(channel, account_id)
    row = await session.scalar(
        select(ChannelCursor).where(ChannelCursor.channel == name, ChannelCursor.account == key)
    )
    if row is None:
        session.add(ChannelCursor(channel=name, account=key, state=dict(state)))
    else:
        row.state = dict(state)
    await session.flush()

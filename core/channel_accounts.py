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
- Accounts declared in the config file (`from_config`) are changed only through the file.
- A removed account is disabled, not deleted: its conversations and cursor stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.credentials import CredentialCipher
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import CHANNEL_ACCOUNT_CREATED, CHANNEL_ACCOUNT_UPDATED
from core.events import Event, emit
from core.models import ChannelAccount, ChannelCursor, Queue

MAX_NAME = 100


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


async def list_accounts(
    session: AsyncSession, *, channel: str | None = None, enabled_only: bool = False
) -> list[ChannelAccount]:
    query = select(ChannelAccount).order_by(ChannelAccount.channel, ChannelAccount.name)
    if channel is not None:
        query = query.where(ChannelAccount.channel == channel)
    if enabled_only:
        query = query.where(ChannelAccount.enabled.is_(True))
    return list(await session.scalars(query))


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "/" in name:
        raise InvalidInput(f"name must be 1 to {MAX_NAME} characters without '/'", field="name")
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
        from_config=from_config,
    )
    session.add(row)
    await session.flush()
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
    names of what changed. Config-file accounts only change through the file."""
    if row.from_config and not by_config:
        raise Conflict(
            f"account {row.name!r} is declared in the config file; change it there",
            field="name",
        )
    secrets = set(secret_fields)
    stored = dict(row.settings)
    changed: list[str] = []
    for key, value in settings.items():
        if key in secrets:
            if cipher.matches(stored.get(key, ""), value or "") and key in stored:
                continue
            stored[key] = cipher.encrypt(value) if value else ""
        elif stored.get(key) == value and key in stored:
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
    if changed:
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


async def record_account_success(session: AsyncSession, account_id: int, at: datetime) -> None:
    """The account's poller or webhook worked: clear its error. Health is not configuration,
    so `updated_at` stays as the last edit left it."""
    await session.execute(
        update(ChannelAccount)
        .where(ChannelAccount.id == account_id)
        .values(last_success_at=at, last_error=None, updated_at=ChannelAccount.updated_at)
        .execution_options(synchronize_session=False)
    )


async def record_account_error(
    session: AsyncSession, account_id: int, reason: str, at: datetime
) -> None:
    await session.execute(
        update(ChannelAccount)
        .where(ChannelAccount.id == account_id)
        .values(last_error=reason, last_error_at=at, updated_at=ChannelAccount.updated_at)
        .execution_options(synchronize_session=False)
    )


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


def _cursor_key(account: AccountView) -> tuple[str, str]:
    return account.channel, f"account:{account.id}"


async def load_cursor_state(session: AsyncSession, account: AccountView) -> dict[str, Any] | None:
    channel, key = _cursor_key(account)
    state = await session.scalar(
        select(ChannelCursor.state).where(
            ChannelCursor.channel == channel, ChannelCursor.account == key
        )
    )
    return dict(state) if state is not None else None


async def save_cursor_state(
    session: AsyncSession, account: AccountView, state: Mapping[str, Any]
) -> None:
    """Write the account's cursor in the caller's transaction (with the items it covers)."""
    channel, key = _cursor_key(account)
    row = await session.scalar(
        select(ChannelCursor).where(ChannelCursor.channel == channel, ChannelCursor.account == key)
    )
    if row is None:
        session.add(ChannelCursor(channel=channel, account=key, state=dict(state)))
    else:
        row.state = dict(state)
    await session.flush()

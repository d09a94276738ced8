"""Channel accounts administered through the registry: the one place the API
(`/api/v1/channel-accounts`), the CLI (`omnicrm channel ...`) and the config file
(`[[channels]]`, `[[mailboxes]]`) turn what an admin gave into validated account settings.

Each channel's settings model checks its accounts (`channels.registry.validated_settings`),
and the channel may check them with its provider before they are saved
(`Channel.verify_settings`: Telegram asks getMe whether the token works);
core/channel_accounts.py stores them, secrets encrypted. A change is validated as the whole
account it makes (the stored settings merged with the fields given), and only the fields
given are written, so a secret left out stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel
from channels.registry import ChannelRegistry, validated_settings
from core.audit import Actor
from core.channel_accounts import (
    DeclaredAccount,
    create_account,
    update_account,
)
from core.credentials import CredentialCipher, CredentialError
from core.errors import InvalidInput
from core.models import ChannelAccount
from core.settings import ChannelAccountSettings, SettingsError


async def add_account(
    session: AsyncSession,
    actor: Actor,
    registry: ChannelRegistry,
    cipher: CredentialCipher,
    *,
    channel: str,
    name: str,
    settings: Mapping[str, Any],
    queue_id: int | None = None,
    enabled: bool = True,
) -> ChannelAccount:
    """A new account of `channel`; 400 naming each bad setting, 409 for a taken name."""
    found = registry.account_channel(channel)
    checked = validated_settings(found, settings)
    checked = await found.verify_settings(checked, frozenset(checked))
    return await create_account(
        session,
        actor,
        channel=found.name,
        name=name,
        settings=checked,
        secret_fields=found.secret_fields,
        cipher=cipher,
        queue_id=queue_id,
        enabled=enabled,
    )


async def change_account(
    session: AsyncSession,
    actor: Actor,
    registry: ChannelRegistry,
    cipher: CredentialCipher,
    row: ChannelAccount,
    *,
    settings: Mapping[str, Any] | None = None,
    queue_id: int | None = None,
    set_queue: bool = False,
    enabled: bool | None = None,
) -> list[str]:
    """Change the settings given (and the queue, and whether it is enabled); what changed.
    409 for an account the config file declares."""
    channel = registry.get(row.channel)
    changes: dict[str, Any] = {}
    if settings:
        if channel is None:
            channel = registry.account_channel(row.channel)  # 400 naming the known channels
        merged = validated_settings(channel, {**_current(row, cipher, channel), **settings})
        merged = await channel.verify_settings(merged, frozenset(settings))
        # What the admin changed, and what verifying it learned (Telegram's bot username).
        learned = {key for key, value in merged.items() if row.settings.get(key) != value}
        changes = {
            key: merged[key]
            for key in merged
            if key in settings or (key in learned and key not in channel.secret_fields)
        }
    return await update_account(
        session,
        actor,
        row,
        settings=changes,
        secret_fields=channel.secret_fields if channel is not None else (),
        cipher=cipher,
        queue_id=queue_id,
        set_queue=set_queue,
        enabled=enabled,
    )


def _current(row: ChannelAccount, cipher: CredentialCipher, channel: Channel) -> dict[str, Any]:
    """The stored settings in clear, to validate a change against. A secret no configured
    key reads counts as unset: it can still be replaced (which is how a lost key is fixed)."""
    current = dict(row.settings)
    for key in channel.secret_fields:
        value = current.get(key)
        if isinstance(value, str):
            try:
                current[key] = cipher.decrypt(value)
            except CredentialError:
                current[key] = ""
    return current


def declared_accounts(
    configs: Sequence[ChannelAccountSettings], registry: ChannelRegistry
) -> list[DeclaredAccount]:
    """The config file's accounts, each validated by its channel; SettingsError (one line,
    naming the account and each bad setting, never a secret's value) otherwise."""
    declared: list[DeclaredAccount] = []
    for config in configs:
        what = f"{config.channel} account {config.name!r}"
        try:
            channel = registry.account_channel(config.channel)
            settings = validated_settings(channel, config.values())
        except InvalidInput as exc:
            problems = "; ".join(
                f"{name.removeprefix('settings.')}: {message}"
                for name, message in exc.fields.items()
            )
            raise SettingsError(f"invalid settings: {what}: {problems or exc.message}") from None
        declared.append(
            DeclaredAccount(
                channel=channel.name,
                name=config.name,
                settings=settings,
                secret_fields=channel.secret_fields,
                queue=config.queue,
                enabled=config.enabled,
            )
        )
    return declared

"""Telegram accounts as the adapters read them: settings validated, the token decrypted."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.telegram.parse import CHANNEL, Settings, bot_id_of
from channels.telegram.settings import TelegramSettings
from core.channel_accounts import AccountView, readable_accounts, view_of
from core.credentials import CredentialCipher, CredentialError
from core.models import ChannelAccount

SECRET_FIELDS = frozenset({"token"})


def settings_of(view: AccountView) -> TelegramSettings | None:
    """The account's settings; None when they do not validate (a token no key reads)."""
    try:
        return TelegramSettings.model_validate(dict(view.settings))
    except ValidationError:
        return None


def parser_settings(view: AccountView, settings: TelegramSettings) -> Settings:
    return Settings(
        account_id=view.id,
        bot_id=bot_id_of(settings.token),
        queue_id=view.queue_id,
        groups=settings.groups,
        leads_from_start=settings.leads_from_start,
    )


async def account_by_id(
    session: AsyncSession, cipher: CredentialCipher, account_id: int | None
) -> tuple[AccountView, TelegramSettings] | None:
    """An enabled Telegram account whose settings can be read, by id."""
    if account_id is None:
        return None
    row = await session.get(ChannelAccount, account_id)
    if row is None or row.channel != CHANNEL or not row.enabled:
        return None
    try:
        view = view_of(row, cipher, SECRET_FIELDS)
    except CredentialError:
        return None
    settings = settings_of(view)
    return (view, settings) if settings is not None else None


async def enabled_accounts(
    session: AsyncSession, cipher: CredentialCipher
) -> list[tuple[AccountView, TelegramSettings]]:
    """The enabled accounts whose settings (and secrets) can be read, oldest first."""
    found = []
    for view in await readable_accounts(session, cipher, CHANNEL, SECRET_FIELDS):
        settings = settings_of(view)
        if settings is not None:
            found.append((view, settings))
    return found

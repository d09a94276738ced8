"""Which Twilio account (and sender) answers a conversation, read from the database.

A reply goes out from the account the customer last wrote to on that channel, from the
number they wrote to when it is one of the account's; otherwise from the first enabled
account that serves the channel (by id), from its first number or Messaging Service.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.twilio.parse import SMS
from channels.twilio.settings import TwilioSettings
from core.channel_accounts import AccountView, readable_accounts, view_of
from core.credentials import CredentialCipher
from core.models import ChannelAccount, Direction, Interaction

PROVIDER = "twilio"
SECRET_FIELDS = frozenset({"auth_token"})


@dataclass(frozen=True)
class SendingAccount:
    view: AccountView
    settings: TwilioSettings
    from_: str | None
    messaging_service_sid: str | None


def settings_of(view: AccountView) -> TwilioSettings | None:
    try:
        return TwilioSettings.model_validate(dict(view.settings))
    except ValidationError:
        return None


def serves(settings: TwilioSettings, channel: str) -> bool:
    return settings.sends_sms if channel == SMS else settings.sends_whatsapp


async def enabled_accounts(
    session: AsyncSession, cipher: CredentialCipher
) -> list[tuple[AccountView, TwilioSettings]]:
    """The enabled accounts whose settings (and secrets) can be read, oldest first."""
    found = []
    for view in await readable_accounts(session, cipher, PROVIDER, SECRET_FIELDS):
        settings = settings_of(view)
        if settings is not None:
            found.append((view, settings))
    return found


async def sending_account(
    session: AsyncSession,
    cipher: CredentialCipher,
    channel: str,
    conversation_id: int | None,
) -> SendingAccount | None:
    """The account and sender a message of `conversation_id` on `channel` goes out from."""
    accounts = await enabled_accounts(session, cipher)
    usable = [(view, settings) for view, settings in accounts if serves(settings, channel)]
    if not usable:
        return None
    chosen, wrote_to = usable[0], None
    if conversation_id is not None:
        meta = await session.scalar(
            select(Interaction.meta)
            .where(
                Interaction.conversation_id == conversation_id,
                Interaction.channel == channel,
                Interaction.direction == Direction.IN,
            )
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(1)
        )
        twilio = (meta or {}).get("twilio") or {}
        account_id = twilio.get("account_id")
        for view, settings in usable:
            if view.id == account_id:
                chosen, wrote_to = (view, settings), str(twilio.get("to") or "")
    view, settings = chosen
    if channel != SMS:
        return SendingAccount(view, settings, settings.whatsapp_from, None)
    if wrote_to and wrote_to in settings.from_numbers:
        return SendingAccount(view, settings, wrote_to, None)
    if settings.messaging_service_sid:
        return SendingAccount(view, settings, None, settings.messaging_service_sid)
    return SendingAccount(view, settings, settings.from_numbers[0], None)


async def account_by_id(
    session: AsyncSession, cipher: CredentialCipher, account_id: int
) -> tuple[AccountView, TwilioSettings] | None:
    row = await session.get(ChannelAccount, account_id)
    if row is None or row.channel != PROVIDER:
        return None
    view = view_of(row, cipher, SECRET_FIELDS)
    settings = settings_of(view)
    return (view, settings) if settings is not None else None

"""Storing what a Telegram update holds, in the caller's transaction (the webhook's and the
poller's alike).

- A new message goes through ingest (idempotent on bot, chat and message id: a re-delivered
  update stores nothing new), its files are queued for download (`channels.media`), the
  customer is reachable again (they wrote), a phone number they shared as their own joins
  their other channels (`core.contacts.attach_verified_address`), and a `/start` is greeted
  in their language (an automatic answer through the outbox, no one's first response).
- An edit replaces the stored text and keeps the earlier one (`core.ingest.record_edit`);
  an edit of a message we never had is stored as a message.
- Blocking the bot marks the customer's Telegram address unreachable (the console says so and
  refuses replies there); starting it again clears that.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelServices
from channels.media import queue_fetch
from channels.telegram.parse import CHANNEL, EditedMessage, Item, NewMessage, Reachability
from channels.telegram.settings import TelegramSettings
from core import conversations
from core.audit import Actor
from core.channel_accounts import AccountView
from core.contacts import attach_verified_address
from core.errors import InvalidInput
from core.i18n import N_, translator
from core.identity import Address, normalize_phone
from core.ingest import ingest, record_edit
from core.models import IdentityKind, Role
from core.preferences import LOCALES
from core.quarantine import quarantine
from core.reply_rules import set_opt_out

# Who greets and who joins a shared phone number, in the audit log and the timeline.
TELEGRAM = Actor("channel:telegram", Role.ADMIN)
BLOCKED_REASON = "blocked the bot on Telegram"
GREETING = N_(
    "Hello! Write your question here and our team will answer you in this chat as soon as they can."
)


@dataclass(frozen=True)
class Unreadable:
    """An update the library could not read: kept in quarantine for an admin, so it never
    holds up the updates behind it (an admin can look at it and retry it)."""

    update_id: int
    data: dict[str, Any]
    reason: str


def sender_of(data: dict[str, Any]) -> Address | None:
    """Who an update is from, read from its JSON alone (for one the library cannot read)."""
    for key in ("message", "edited_message", "my_chat_member"):
        part = data.get(key)
        sender = part.get("from") if isinstance(part, dict) else None
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return Address(IdentityKind.TELEGRAM, str(sender["id"]))
    return None


async def store_items(
    session: AsyncSession,
    items: Sequence[Item | Unreadable],
    account: AccountView,
    settings: TelegramSettings,
    services: ChannelServices,
) -> list[int]:
    """Store the items; the ids of the interactions they created or changed."""
    touched: list[int] = []
    for item in items:
        if isinstance(item, Unreadable):
            await quarantine(
                session,
                channel=CHANNEL,
                account_id=account.id,
                reference=f"update:{item.update_id}",
                raw=json.dumps(item.data, ensure_ascii=False).encode(),
                reason=item.reason,
                sender=sender_of(item.data),
            )
        elif isinstance(item, NewMessage):
            created = await _new_message(session, item, account, settings, services)
            touched += [created] if created is not None else []
        elif isinstance(item, EditedMessage):
            edited = await record_edit(
                session, CHANNEL, item.external_id, item.text, item.edited_at
            )
            if edited is None:
                edited = await _new_message(session, item.message, account, settings, services)
            touched += [edited] if edited is not None else []
        elif isinstance(item, Reachability):
            reason = BLOCKED_REASON if item.blocked else None
            await set_opt_out(session, IdentityKind.TELEGRAM, item.user_id, reason, item.at)
    return touched


async def _new_message(
    session: AsyncSession,
    message: NewMessage,
    account: AccountView,
    settings: TelegramSettings,
    services: ChannelServices,
) -> int | None:
    event = message.event
    result = await ingest(session, event, services.policy)
    if not result.created:
        return None  # Telegram's re-delivery of a message we have
    for ref in message.files:
        await queue_fetch(
            session,
            channel=CHANNEL,
            account_id=account.id,
            interaction_id=result.interaction_id,
            position=ref.position,
            url=ref.file_id,
        )
    user = event.addresses[0].value
    await set_opt_out(session, IdentityKind.TELEGRAM, user, None)
    if message.shared_phone is not None:
        with contextlib.suppress(InvalidInput):
            # Telegram's numbers are international, sent with or without the "+".
            number = normalize_phone("+" + message.shared_phone.lstrip("+"), None)
            await attach_verified_address(
                session, TELEGRAM, result.contact_id, Address(IdentityKind.PHONE, number)
            )
    if message.start is not None:
        await conversations.reply(
            session,
            TELEGRAM,
            result.conversation_id,
            text=greeting(settings, event.language),
            automatic=True,
        )
    return result.interaction_id


def greeting(settings: TelegramSettings, language: str | None) -> str:
    """The answer to /start in the customer's language: the account's own greeting in it,
    else the built-in one translated, else the account's greeting in English (or any), else
    the built-in one in English."""
    wanted = (language or "").lower()
    base = wanted.split("-")[0]
    own = settings.greeting
    if wanted in own or base in own:
        return own.get(wanted) or own[base]
    if base in LOCALES:
        return translator(base).gettext(GREETING)
    if own:
        return own.get("en") or next(iter(own.values()))
    return translator("en").gettext(GREETING)

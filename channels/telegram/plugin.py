"""Telegram as the registry sees it: one account per bot; the channel's facts, its webhook,
its pollers (getUpdates, or the keeper of a registered webhook), its sender and its file
downloads. See docs/channels/telegram.md for setting a bot up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import (
    BackgroundWork,
    Channel,
    ChannelServices,
    Malformed,
    PollingAdapter,
    PollOptions,
    Unsupported,
    WebhookAdapter,
)
from channels.telegram.accounts import SECRET_FIELDS, parser_settings, settings_of
from channels.telegram.client import LONG_POLL_SECONDS, get_me
from channels.telegram.media import TelegramMediaFetcher
from channels.telegram.parse import CHANNEL, parse_update
from channels.telegram.poller import UpdatePoller, WebhookKeeper
from channels.telegram.sender import TelegramSender
from channels.telegram.settings import TelegramSettings
from channels.telegram.store import store_items
from channels.telegram.webhooks import UpdateHook, read_update
from core.channel_accounts import AccountView
from core.channels import Capability, ChannelFacts
from core.errors import InvalidInput
from core.models import IdentityKind, QuarantinedMessage
from core.outbox import Sender
from core.quarantine import mark_ingested


class TelegramChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=CHANNEL,
        label="Telegram",
        icon="telegram",
        identity_kind=IdentityKind.TELEGRAM,
        sends=frozenset({Capability.TEXT, Capability.MEDIA}),
        description="Telegram bots: private chats (groups if enabled), by webhook or polling",
    )
    settings_model: ClassVar[type[BaseModel] | None] = TelegramSettings
    secret_fields: ClassVar[frozenset[str]] = SECRET_FIELDS
    quarantine_media_type: ClassVar[str] = "application/json"
    quarantine_extension: ClassVar[str] = "json"

    def __init__(
        self,
        *,
        poll_options: PollOptions | None = None,
        long_poll_seconds: int = LONG_POLL_SECONDS,
        webhook_check_seconds: float = 300.0,
        media_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._webhooks = (UpdateHook(),)
        self.poll_options = poll_options
        self.long_poll_seconds = long_poll_seconds
        self.webhook_check_seconds = webhook_check_seconds
        self.media_options = dict(media_options or {})

    def webhooks(self) -> Sequence[WebhookAdapter[Any]]:
        return self._webhooks

    def sender(self, services: ChannelServices) -> Sender | None:
        return TelegramSender(services.sessions, services.cipher)

    def poller(self, account: AccountView, services: ChannelServices) -> PollingAdapter | None:
        mode = account.setting("mode", "auto")
        public = account.setting("public_url") or services.settings.public_url
        if mode == "webhook" or (mode == "auto" and public):
            return WebhookKeeper(
                account, services, self.poll_options, check_seconds=self.webhook_check_seconds
            )
        return UpdatePoller(
            account, services, self.poll_options, long_poll_seconds=self.long_poll_seconds
        )

    def background(self, services: ChannelServices) -> Sequence[BackgroundWork]:
        return (TelegramMediaFetcher(services, **self.media_options).run,)

    async def verify_settings(
        self, settings: Mapping[str, Any], changed: frozenset[str]
    ) -> dict[str, Any]:
        """getMe with the token (when it is new): a wrong token is a 400 on the token, and
        the bot's id and username are kept for links and logs."""
        if "token" not in changed and "api_base_url" not in changed:
            return dict(settings)
        parsed = TelegramSettings.model_validate(dict(settings))
        try:
            user = await get_me(parsed)
        except ConnectionError as exc:
            raise InvalidInput(
                f"the bot token does not work: {exc}", field="settings.token"
            ) from None
        return {**settings, "bot_id": user.id, "bot_username": user.username}

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        settings = settings_of(account)
        if settings is None:
            raise ValueError("the account's settings are incomplete (a bot token is needed)")
        user = await get_me(settings)
        mode = "webhook" if settings.webhook_wanted(services.settings.public_url) else "polling"
        return f"signed in as @{user.username} ({user.full_name}); updates by {mode}"

    def describe_quarantined(self, raw: bytes) -> tuple[str, str]:
        try:
            data = json.loads(raw)
            message: dict[str, Any] = next(
                (
                    data[key]
                    for key in ("message", "edited_message")
                    if isinstance(data.get(key), dict)
                ),
                {},
            )
            sender = message.get("from") or {}
            name = " ".join(
                str(part) for part in (sender.get("first_name"), sender.get("last_name")) if part
            )
            return name, str(message.get("text") or message.get("caption") or "")[:200]
        except (ValueError, AttributeError, TypeError):
            return "", ""

    async def retry_quarantined(
        self,
        session: AsyncSession,
        row: QuarantinedMessage,
        account: AccountView,
        services: ChannelServices,
    ) -> None:
        """Read the update again (a newer library may read it now) and store it."""
        settings = settings_of(account)
        if settings is None:
            raise ValueError("the account's settings are incomplete (a bot token is needed)")
        try:
            update = read_update(json.loads(row.raw))
        except (ValueError, Malformed) as exc:
            row.reason = str(exc)[:2000]
            await session.flush()
            return
        parsed = parse_update(update, parser_settings(account, settings))
        if isinstance(parsed, Unsupported):
            row.reason = f"not a customer message: {parsed.reason}"[:2000]
            await session.flush()
            return
        touched = await store_items(session, parsed.items, account, settings, services)
        if touched:
            await mark_ingested(session, row, touched[0])

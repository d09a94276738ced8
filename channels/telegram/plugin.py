"""Telegram as the registry sees it: one account per bot; the channel's facts, its webhook,
its pollers (getUpdates, or the keeper of a registered webhook), its sender and its file
downloads. See docs/channels/telegram.md for setting a bot up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from channels.base import (
    BackgroundWork,
    Channel,
    ChannelServices,
    PollingAdapter,
    PollOptions,
    WebhookAdapter,
)
from channels.telegram.accounts import SECRET_FIELDS, settings_of
from channels.telegram.client import LONG_POLL_SECONDS, get_me
from channels.telegram.media import TelegramMediaFetcher
from channels.telegram.parse import CHANNEL
from channels.telegram.poller import UpdatePoller, WebhookKeeper
from channels.telegram.sender import TelegramSender
from channels.telegram.settings import TelegramSettings
from channels.telegram.webhooks import UpdateHook
from core.channel_accounts import AccountView
from core.channels import Capability, ChannelFacts
from core.errors import InvalidInput
from core.models import IdentityKind
from core.outbox import Sender


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

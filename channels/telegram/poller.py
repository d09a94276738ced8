"""How a bot's updates reach omnicrm: long polling, or a webhook kept registered.

Both are `PollingAdapter`s, so the supervisor runs one per account across server processes
(PostgreSQL advisory lock), with backoff, health on the account and in `/healthz`:

- `UpdatePoller` (polling mode): drops any webhook (Telegram refuses getUpdates while one is
  set), then asks getUpdates for updates after the stored offset, waiting up to
  `long_poll_seconds` for them; each update is parsed by the webhook's parser and stored in a
  transaction that also moves the offset past it, so an update is confirmed to Telegram (by
  the next getUpdates' offset) only once it is stored. An update the library cannot read is
  quarantined (`core.quarantine`) in that transaction instead, so it never holds up the
  ones behind it, and an admin can look at it and retry it.
- `WebhookKeeper` (webhook mode): registers `<public_url>/hooks/telegram/<account>/update`
  with setWebhook and the account's secret token, then checks getWebhookInfo every
  `check_seconds`: registers again if the address changed, and reports Telegram's last
  delivery error as the account's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from telegram.error import TelegramError

from channels.base import (
    ChannelServices,
    CursorPoller,
    Parsed,
    PollingAdapter,
    PollOptions,
    Unsupported,
)
from channels.telegram.accounts import SECRET_FIELDS, parser_settings, settings_of
from channels.telegram.client import LONG_POLL_SECONDS, describe, get_updates, open_bot
from channels.telegram.parse import ALLOWED_UPDATES, CHANNEL
from channels.telegram.settings import TelegramSettings, webhook_secret
from channels.telegram.store import store_items
from channels.telegram.webhooks import HOOK, parse_raw_update
from core.channel_accounts import AccountView
from core.models import utcnow


def _settings(account: AccountView) -> TelegramSettings:
    settings = settings_of(account)
    if settings is None:
        raise ValueError(f"{account.label}: its settings are incomplete (a bot token is needed)")
    return settings


class UpdatePoller(CursorPoller[Any]):
    """getUpdates long polling for one bot."""

    def __init__(
        self,
        account: AccountView,
        services: ChannelServices,
        options: PollOptions | None = None,
        *,
        long_poll_seconds: int = LONG_POLL_SECONDS,
    ) -> None:
        super().__init__(account, services, options, secret_fields=SECRET_FIELDS)
        self.long_poll_seconds = long_poll_seconds
        self._webhook_dropped_for: str | None = None

    async def do_fetch(
        self, cursor: Mapping[str, Any] | None
    ) -> tuple[Sequence[Any], Sequence[Mapping[str, Any]]]:
        settings = _settings(self.account)
        offset = int((cursor or {}).get("offset", 0)) or None
        if self._webhook_dropped_for != settings.token:
            # Telegram refuses getUpdates while a webhook is set (ours from webhook mode).
            try:
                async with open_bot(settings) as bot:
                    await bot.delete_webhook(drop_pending_updates=False)
            except TelegramError as exc:
                raise ConnectionError(describe(exc)) from None
            self._webhook_dropped_for = settings.token
        fetch = asyncio.ensure_future(
            get_updates(settings, offset, self.long_poll_seconds, ALLOWED_UPDATES)
        )
        stopped = asyncio.ensure_future(self.stop_signal.wait())
        try:
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not fetch.done():
            # Told to stop mid-wait: nothing was handed out that is not fetched again.
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            return [], []
        updates = fetch.result()
        if not isinstance(updates, list):
            raise ConnectionError("getUpdates answered something other than a list")
        items = [item for item in updates if isinstance(item, dict)]
        after = []
        for item in items:
            update_id = item.get("update_id")
            if not isinstance(update_id, int):
                raise ConnectionError("getUpdates answered an update without an update_id")
            after.append({"offset": update_id + 1})
        return items, after

    def do_parse(self, item: Any) -> Parsed[Any] | Unsupported:
        settings = _settings(self.account)
        return parse_raw_update(item, parser_settings(self.account, settings))

    async def do_store(self, session: AsyncSession, parsed: Parsed[Any]) -> None:
        settings = _settings(self.account)
        await store_items(session, parsed.items, self.account, settings, self.services)


def webhook_url(account: AccountView, settings: TelegramSettings, server_public_url: str) -> str:
    base = (settings.public_url or server_public_url).rstrip("/")
    return f"{base}/hooks/{CHANNEL}/{quote(account.name, safe='')}/{HOOK}"


class WebhookKeeper(PollingAdapter):
    """Keeps one bot's webhook registered, and its delivery errors visible."""

    def __init__(
        self,
        account: AccountView,
        services: ChannelServices,
        options: PollOptions | None = None,
        *,
        check_seconds: float = 300.0,
    ) -> None:
        super().__init__(account, services, options, secret_fields=SECRET_FIELDS)
        self.check_seconds = check_seconds

    async def do_serve(self) -> None:
        self.status.state = "webhook"
        settings = _settings(self.account)
        public = settings.public_url or self.services.settings.public_url
        if not public:
            raise ValueError(
                "webhook mode needs a public address: set the account's public_url or the "
                "server's public_url, or use polling mode"
            )
        url = webhook_url(self.account, settings, public)
        # Delivery errors Telegram reports after this moment are news.
        since = utcnow()
        try:
            async with open_bot(settings) as bot:
                await bot.set_webhook(
                    url,
                    secret_token=webhook_secret(settings.token),
                    allowed_updates=list(ALLOWED_UPDATES),
                )
                while not self.stopping:
                    await self.check_lock()
                    info = await bot.get_webhook_info()
                    if info.url != url:
                        await bot.set_webhook(
                            url,
                            secret_token=webhook_secret(settings.token),
                            allowed_updates=list(ALLOWED_UPDATES),
                        )
                    failed_at = info.last_error_date
                    if failed_at is not None and failed_at > since and info.last_error_message:
                        raise ConnectionError(
                            f"Telegram could not deliver to {url}: {info.last_error_message}"
                        )
                    since = utcnow()
                    await self.succeeded()
                    await self.pause(self.check_seconds)
        except TelegramError as exc:
            raise ConnectionError(describe(exc)) from None

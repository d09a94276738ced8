"""Telegram's file downloads: how one file_id is fetched; the rest is channels/media.py.

The update's store queues one `attachment_fetch` row per file (channel `telegram`, the bot's
account, the file_id). `TelegramMediaFetcher` asks getFile where the file is and downloads
it from the Bot API's file address with the account's bot token (in the address, as the
Bot API wants; never in a reason written down). Telegram serves bots files up to 20 MB: the
parser lists bigger ones without queueing them, and getFile's "file is too big" is
permanent here too.
"""

from __future__ import annotations

from typing import Any

from telegram.error import BadRequest, TelegramError

from channels.base import ChannelServices
from channels.media import Claimed, FetchFailed, MediaFetcher, TooLarge
from channels.telegram.accounts import account_by_id
from channels.telegram.client import describe, open_bot
from channels.telegram.parse import CHANNEL, DOWNLOAD_LIMIT, TOO_BIG


class TelegramMediaFetcher(MediaFetcher):
    def __init__(self, services: ChannelServices, **options: Any) -> None:
        super().__init__(services, frozenset({CHANNEL}), **options)

    async def do_download(self, item: Claimed) -> bytes:
        async with self.services.sessions() as session:
            account = await account_by_id(session, self.services.cipher, item.account_id)
        if account is None:
            raise FetchFailed("the Telegram bot is gone or disabled", permanent=True)
        _view, settings = account
        try:
            async with open_bot(settings) as bot:
                found = await bot.get_file(item.url)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise FetchFailed(TOO_BIG, permanent=True) from None
            raise FetchFailed(describe(exc), permanent=True) from None
        except TelegramError as exc:
            raise FetchFailed(describe(exc), permanent=False) from None
        if found.file_size is not None and found.file_size > DOWNLOAD_LIMIT:
            raise FetchFailed(TOO_BIG, permanent=True)
        if not found.file_path:
            raise FetchFailed("Telegram gave no address for the file", permanent=False)
        try:
            return await self.download(found.file_path)
        except TooLarge:
            raise
        except FetchFailed as exc:
            reason = str(exc).replace(settings.token, "<token>")
            raise FetchFailed(reason, permanent=exc.permanent) from None

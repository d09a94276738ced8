"""Twilio's media downloads: how one MediaUrl (or a call's recording) is fetched; the rest
is channels/media.py.

The message webhook queues one `attachment_fetch` row per `MediaUrl{n}` (channel `sms` or
`whatsapp`, the receiving account's id, the URL). `TwilioMediaFetcher`, started from the
`twilio` channel's `background()`, claims the rows of both channels and downloads each with
the account's credentials (HTTP basic auth with the account SID and auth token); claiming,
retries, the size limit and what is written on the attachment are `channels.media`'s.

Credentials go only to the account's own API origin (Twilio's media URLs are on
api.twilio.com; aiohttp drops them on a redirect to another origin, such as Twilio's CDN);
a URL elsewhere is not fetched at all.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.base import ChannelServices
from channels.media import Claimed, FetchFailed, MediaFetcher
from channels.twilio.accounts import account_by_id
from channels.twilio.client import basic_auth
from channels.twilio.parse import SMS, WHATSAPP
from channels.twilio.voice.store import VOICE


class TwilioMediaFetcher(MediaFetcher):
    """Downloads the pending media of SMS and WhatsApp messages from Twilio."""

    def __init__(self, services: ChannelServices, **options: Any) -> None:
        super().__init__(services, frozenset({SMS, WHATSAPP, VOICE}), **options)

    async def do_download(self, item: Claimed) -> bytes:
        account = None
        if item.account_id is not None:
            async with self.services.sessions() as session:
                account = await account_by_id(session, self.services.cipher, item.account_id)
        if account is None:
            raise FetchFailed("the Twilio account is gone", permanent=True)
        _view, settings = account
        if _origin(item.url) != _origin(settings.api_base_url):
            raise FetchFailed(
                f"media is not on the account's API origin {_origin(settings.api_base_url)}",
                permanent=True,
            )
        auth = basic_auth(settings.account_sid, settings.auth_token)
        return await self.download(item.url, {"Authorization": auth})


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()

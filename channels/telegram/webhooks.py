"""`POST /hooks/telegram/{account}/update`: the webhook Telegram calls with each update.

Authenticated before anything is parsed: `X-Telegram-Bot-Api-Secret-Token` must be the
account's webhook secret (compared in constant time; 403 otherwise). The body is one Update
as JSON (400 if it is not even that), parsed by the same parser as the poller's updates (one
the library cannot read is quarantined, as the poller's are), stored in one transaction;
Telegram gets its 200 only after the commit, so an update that was not stored is delivered
again, and the stored ones are keyed so that a re-delivery stores nothing new.
"""

from __future__ import annotations

import hmac
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from channels.base import (
    ChannelServices,
    Malformed,
    Parsed,
    Unsupported,
    WebhookAdapter,
    WebhookRequest,
)
from channels.telegram.accounts import parser_settings, settings_of
from channels.telegram.parse import Item, Settings, parse_update
from channels.telegram.settings import webhook_secret
from channels.telegram.store import Unreadable, store_items
from core.channel_accounts import AccountView

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
HOOK = "update"


def read_update(data: Any) -> Update:
    """An Update from its JSON; Malformed if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise Malformed("the body is not a Telegram Update (no update_id)")
    try:
        return Update.de_json(data, None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Malformed(f"the Update cannot be read: {type(exc).__name__}: {exc}") from None


def parse_raw_update(data: Any, settings: Settings) -> Parsed[Item | Unreadable] | Unsupported:
    """An update's JSON to what it holds; one with an update_id that the library cannot read
    is `Unreadable` (kept in quarantine), and Malformed only without an update_id."""
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise Malformed("the body is not a Telegram Update (no update_id)")
    try:
        update = read_update(data)
    except Malformed as exc:
        return Parsed([Unreadable(data["update_id"], data, str(exc))])
    parsed = parse_update(update, settings)
    if isinstance(parsed, Unsupported):
        return parsed
    return Parsed(list(parsed.items))


class UpdateHook(WebhookAdapter[Item | Unreadable]):
    hook: ClassVar[str] = HOOK

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        given = request.header(SECRET_HEADER)
        token = account.setting("token")
        if not given or not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(given.encode(), webhook_secret(token).encode())

    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[Item | Unreadable] | Unsupported:
        settings = settings_of(account)
        if settings is None:
            raise Malformed("the account's settings are incomplete")
        return parse_raw_update(request.json(), parser_settings(account, settings))

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[Item | Unreadable],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        settings = settings_of(account)
        assert settings is not None  # do_parse checked
        return await store_items(session, parsed.items, account, settings, services)

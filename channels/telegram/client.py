"""Calls to the Bot API through the official library (python-telegram-bot).

`open_bot(settings)` gives a `telegram.Bot` pointed at the account's `api_base_url`
(Telegram's, a local Bot API server, or a stand-in in the tests) and closes its HTTP clients
afterwards. `send_error` turns the library's exceptions into the outbox's: 429 `RetryAfter` is
transient with Telegram's delay, 403 (blocked, deactivated) permanent, network errors and 5xx
transient, other 400s permanent. The token never appears in an error or a log line: the
library's own messages can quote it, so ours are written here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from telegram import Bot, User
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from channels.telegram.settings import TelegramSettings
from core.outbox import PermanentSendError, TransientSendError

# getUpdates waits this long for updates (Telegram holds the request open: long polling).
LONG_POLL_SECONDS = 25
REQUEST_TIMEOUT_SECONDS = 20.0
BLOCKED = "blocked"


@contextlib.asynccontextmanager
async def open_bot(
    settings: TelegramSettings, *, long_poll_seconds: int = LONG_POLL_SECONDS
) -> AsyncIterator[Bot]:
    """A Bot for the account, its HTTP clients closed afterwards. Not `initialize`d (that
    would cost a getMe per use): callers that need who the bot is call `get_me`."""
    base = settings.api_base_url.rstrip("/")
    requests = (
        HTTPXRequest(
            connection_pool_size=8,
            read_timeout=REQUEST_TIMEOUT_SECONDS,
            write_timeout=REQUEST_TIMEOUT_SECONDS,
            connect_timeout=10.0,
            media_write_timeout=60.0,
        ),
        HTTPXRequest(
            connection_pool_size=1,
            read_timeout=long_poll_seconds + 10.0,
            connect_timeout=10.0,
        ),
    )
    bot = Bot(
        settings.token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=requests[0],
        get_updates_request=requests[1],
    )
    try:
        yield bot
    finally:
        for request in requests:
            await request.shutdown()


def seconds_of(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def describe(exc: BaseException) -> str:
    """A line for operators and logs; never the token."""
    if isinstance(exc, InvalidToken):
        return "Telegram rejected the bot token (revoked, or not this bot's)"
    if isinstance(exc, RetryAfter):
        return f"Telegram asks to wait {seconds_of(exc.retry_after):g} s (flood control)"
    if isinstance(exc, Conflict):
        return f"Telegram refused: {exc.message} (another program uses this bot's updates)"
    if isinstance(exc, TimedOut):
        return "Telegram did not answer in time"
    if isinstance(exc, TelegramError):
        return f"Telegram: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def send_error(exc: TelegramError) -> TransientSendError | PermanentSendError:
    """The outbox's view of a failed send."""
    if isinstance(exc, RetryAfter):
        return TransientSendError(
            describe(exc), retry_after=seconds_of(exc.retry_after), code="429"
        )
    if isinstance(exc, Forbidden):
        # "bot was blocked by the user", "user is deactivated", "bot was kicked from the group"
        return PermanentSendError(describe(exc), code=BLOCKED)
    if isinstance(exc, InvalidToken):
        return TransientSendError(describe(exc), code="401")
    if isinstance(exc, ChatMigrated):
        return PermanentSendError(
            f"the group became a supergroup (now chat {exc.new_chat_id}); answer in the "
            "conversation of its new messages",
            code="400",
        )
    if isinstance(exc, BadRequest):
        return PermanentSendError(describe(exc), code="400")
    # The rest (NetworkError, TimedOut, 5xx answers, anything new) may work later.
    return TransientSendError(describe(exc))


class UpdatesFailed(ConnectionError):
    """getUpdates failed; the message says why (never the token)."""


async def get_updates(
    settings: TelegramSettings, offset: int | None, wait_seconds: int, allowed: Sequence[str]
) -> list[Any]:
    """getUpdates over the documented HTTP API, answered as JSON rather than read by the
    library, so each update can be read on its own (one the library cannot read is kept
    apart instead of failing the batch). Long polling: Telegram answers when updates come
    or after `wait_seconds`."""
    url = f"{settings.api_base_url.rstrip('/')}/bot{settings.token}/getUpdates"
    body: dict[str, Any] = {"timeout": wait_seconds, "allowed_updates": list(allowed)}
    if offset is not None:
        body["offset"] = offset
    limits = aiohttp.ClientTimeout(total=wait_seconds + REQUEST_TIMEOUT_SECONDS, connect=10.0)
    try:
        async with (
            aiohttp.ClientSession(timeout=limits) as http,
            http.post(url, json=body) as answer,
        ):
            text = await answer.text()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpdatesFailed(f"Telegram could not be reached: {type(exc).__name__}") from None
    try:
        envelope = json.loads(text)
    except ValueError:
        raise UpdatesFailed(f"Telegram answered HTTP {status} without JSON") from None
    if not isinstance(envelope, dict):
        raise UpdatesFailed(f"Telegram answered HTTP {status} with something unexpected")
    if envelope.get("ok") is True and isinstance(envelope.get("result"), list):
        return list(envelope["result"])
    description = str(envelope.get("description") or f"HTTP {status}")
    if status in (401, 404):
        raise UpdatesFailed("Telegram rejected the bot token (revoked, or not this bot's)")
    if status == 409:
        raise UpdatesFailed(f"Telegram refused: {description} (another program uses this bot)")
    raise UpdatesFailed(f"Telegram: {description}")


async def get_me(settings: TelegramSettings) -> User:
    """Who the token belongs to; ConnectionError with a clear line otherwise."""
    try:
        async with open_bot(settings) as bot:
            return await bot.get_me()
    except TelegramError as exc:
        raise ConnectionError(describe(exc)) from None


def user_line(user: User) -> dict[str, Any]:
    """What the account keeps of getMe."""
    return {"bot_id": user.id, "bot_username": user.username}

"""Sending answers from the outbox through the Bot API.

An answer goes to the chat the customer last wrote from, through the bot they wrote to (a
bot can only write to people who started it). Text is sent with HTML parse mode, escaped,
in pieces of at most 4096 characters (Telegram's limit); media addresses go as photos (by
their extension) or documents, which Telegram fetches itself.

Telegram's limits are kept by the sender, so a burst of replies does not earn a 429 in the
first place (`RateLimiter`: about one message a second per chat, 20 a minute per group, 30 a
second per bot). If Telegram still answers 429, its `retry_after` holds that chat back and is
the outbox's delay. 403 (the customer blocked the bot, or deleted their account) is
permanent and marks their Telegram address unreachable: the console shows it and refuses
replies there until they write again.

An answer sent in parts (long text, media) remembers, per outbox item, how many parts went
out, so a retry after a failure midway sends only the rest. That memory is the sending
process's: if another process makes the retry, the parts already sent arrive twice.
"""

from __future__ import annotations

import asyncio
import html
import logging
import mimetypes
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from telegram import Bot, Message
from telegram.error import TelegramError

from channels.telegram.accounts import account_by_id, enabled_accounts
from channels.telegram.client import BLOCKED, open_bot, send_error
from channels.telegram.parse import CHANNEL, chat_of
from channels.telegram.settings import TelegramSettings
from channels.telegram.store import BLOCKED_REASON
from core.channel_accounts import AccountView
from core.credentials import CredentialCipher
from core.db import SessionFactory, transaction
from core.logfields import log_fields
from core.models import Direction, IdentityKind, Interaction
from core.outbox import Delivery, PermanentSendError, Sender
from core.reply_rules import set_opt_out

log = logging.getLogger(__name__)

MAX_TEXT = 4096
PRIVATE_CHAT_SECONDS = 1.0
GROUP_CHAT_SECONDS = 3.0  # 20 a minute
PER_BOT_PER_SECOND = 30
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


@dataclass
class RateLimiter:
    """Spaces a bot's sends: per chat (`chat_seconds` apart) and per bot (`per_second`).
    `hold` makes a chat wait as long as Telegram asked. In-process: each server process
    paces what it sends (the outbox worker of one process sends most of it)."""

    per_second: int = PER_BOT_PER_SECOND
    clock: object = field(default=time.monotonic)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    _next_at: dict[tuple[int, int], float] = field(default_factory=dict)
    _recent: dict[int, deque[float]] = field(default_factory=dict)

    def _now(self) -> float:
        clock = self.clock
        assert callable(clock)
        return float(clock())

    async def wait(self, bot: int, chat: int) -> None:
        """Return when the bot may send to the chat now, having taken that send's place.
        Checking and taking the place happen with no await between them, so no lock is
        needed, and a chat that must wait holds up no other chat."""
        while True:
            now = self._now()
            delay = self._next_at.get((bot, chat), 0.0) - now
            recent = self._recent.setdefault(bot, deque())
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            if len(recent) >= self.per_second:
                delay = max(delay, recent[0] + 1.0 - now)
            if delay <= 0:
                break
            await self.sleep(delay)
        recent.append(now)
        spacing = GROUP_CHAT_SECONDS if chat < 0 else PRIVATE_CHAT_SECONDS
        self._next_at[(bot, chat)] = now + spacing

    def hold(self, bot: int, chat: int, seconds: float) -> None:
        """Telegram asked to wait: nothing more to this chat before then."""
        until = self._now() + seconds
        self._next_at[(bot, chat)] = max(self._next_at.get((bot, chat), 0.0), until)


def pieces(text: str, limit: int = MAX_TEXT) -> list[str]:
    """The text in pieces of at most `limit` characters, cut at a paragraph, line or word
    where there is one in the second half of a piece."""
    rest = text.strip()
    found = []
    while len(rest) > limit:
        cut = max(rest.rfind(mark, limit // 2, limit) for mark in ("\n\n", "\n", " "))
        cut = cut if cut > 0 else limit
        found.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        found.append(rest)
    return found


class TelegramSender(Sender):
    timeout_seconds = 120.0  # pieces of a long answer wait for the chat's pace

    def __init__(
        self,
        sessions: SessionFactory,
        cipher: CredentialCipher,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self.limiter = limiter or RateLimiter()
        # Parts of an answer already sent, by outbox item: a retry after a failure midway
        # sends only the rest (this process's memory; see the module's docstring).
        self._parts_sent: dict[int, int] = {}

    async def is_ready(self) -> bool:
        async with self._sessions() as session:
            return bool(await enabled_accounts(session, self._cipher))

    async def _route(self, delivery: Delivery) -> tuple[AccountView, TelegramSettings, int]:
        """The bot and chat an answer goes through (the session is closed before sending)."""
        async with self._sessions() as session:
            meta = None
            if delivery.conversation_id is not None:
                meta = await session.scalar(
                    select(Interaction.meta)
                    .where(
                        Interaction.conversation_id == delivery.conversation_id,
                        Interaction.channel == CHANNEL,
                        Interaction.direction == Direction.IN,
                    )
                    .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
                    .limit(1)
                )
            account_id, chat_id = chat_of(meta)
            found = await account_by_id(session, self._cipher, account_id)
            if found is None and account_id is None:
                # No message of theirs on Telegram in this conversation: the first bot.
                accounts = await enabled_accounts(session, self._cipher)
                found = accounts[0] if accounts else None
        if found is None:
            raise PermanentSendError(
                "the Telegram bot the customer wrote to is gone or disabled; a bot can only "
                "write to people who started it"
            )
        if chat_id is None:
            if not delivery.recipient.lstrip("-").isdigit():
                raise PermanentSendError(f"{delivery.recipient!r} is not a Telegram chat")
            chat_id = int(delivery.recipient)
        view, settings = found
        return view, settings, chat_id

    async def do_send(self, delivery: Delivery) -> str:
        view, settings, chat_id = await self._route(delivery)
        payload = delivery.payload
        texts = pieces(str(payload.get("text") or ""))
        media = [str(url) for url in payload.get("media_urls") or []]
        if not texts and not media:
            raise PermanentSendError("the answer is empty")
        bot_id = int(settings.token.split(":", 1)[0])
        parts: list[tuple[str, str]] = [("text", piece) for piece in texts]
        parts += [("media", url) for url in media]
        done = self._parts_sent.get(delivery.outbox_id, 0)
        sent: list[Message] = []
        try:
            async with open_bot(settings) as bot:
                for kind, part in parts[done:]:
                    await self.limiter.wait(bot_id, chat_id)
                    if kind == "text":
                        escaped = html.escape(part, quote=False)
                        sent.append(await bot.send_message(chat_id, escaped, "HTML"))
                    else:
                        sent.append(await _send_media(bot, chat_id, part))
                    self._parts_sent[delivery.outbox_id] = done + len(sent)
        except TelegramError as exc:
            error = send_error(exc)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                self.limiter.hold(bot_id, chat_id, retry_after)
            # Blocked in a private chat: the customer. (Kicked from a group: only that chat.)
            if isinstance(error, PermanentSendError) and error.code == BLOCKED and chat_id > 0:
                async with transaction(self._sessions) as session:
                    await set_opt_out(
                        session, IdentityKind.TELEGRAM, delivery.recipient, BLOCKED_REASON
                    )
            if sent:
                log.warning(
                    "telegram answer sent in part",
                    extra=log_fields(outbox_id=delivery.outbox_id, sent=len(sent)),
                )
            if isinstance(error, PermanentSendError):
                self._parts_sent.pop(delivery.outbox_id, None)
            raise error from None
        self._parts_sent.pop(delivery.outbox_id, None)
        if not sent:
            return f"{chat_id}:sent"
        log.info(
            "telegram accepted a message",
            extra=log_fields(
                outbox_id=delivery.outbox_id, account=view.name, message_id=sent[-1].message_id
            ),
        )
        return f"{chat_id}:{sent[-1].message_id}"


async def _send_media(bot: Bot, chat_id: int, url: str) -> Message:
    """A photo for an image address, else a document (Telegram fetches the address)."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    if guessed in IMAGE_TYPES:
        return await bot.send_photo(chat_id, url)
    return await bot.send_document(chat_id, url)

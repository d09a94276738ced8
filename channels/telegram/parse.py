"""Telegram updates to what omnicrm stores; pure functions over the official library's
`telegram.Update` (the webhook parses its JSON with `Update.de_json`, the poller gets them
from getUpdates: one parser behind both).

- A customer's message (`message`) is a `NewMessage`: its `InboundEvent` (keyed on the bot,
  the chat and the message id, never on `update_id`, which Telegram makes random after a
  week of silence), the files to download (the largest photo size; documents, voice and video
  notes, videos, audio, stickers; at most Telegram's 20 MB download limit: a larger file is
  listed on the message, not fetched), a phone number the customer shared as their own
  (Telegram vouches for it), and a `/start` deep-link payload.
- An edit (`edited_message`) is an `EditedMessage`: the stored message's new text.
- The customer blocking or unblocking the bot (`my_chat_member` of a private chat) is a
  `Reachability` change.
- Everything else (group chats unless the account takes them, channel posts, service
  messages, other update kinds) is `Unsupported`: acknowledged, nothing stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from telegram import Message, Update

from channels.base import Parsed, Unsupported
from channels.media import pending_attachment
from core.identity import Address
from core.ingest import InboundEvent, LeadRequest
from core.models import IdentityKind

CHANNEL: Final = "telegram"
# The update kinds asked for with getUpdates and setWebhook.
ALLOWED_UPDATES: Final = ("message", "edited_message", "my_chat_member")
# getFile serves files up to 20 MB (Bot API, "getFile").
DOWNLOAD_LIMIT: Final = 20 * 1024 * 1024
TOO_BIG: Final = "larger than Telegram's 20 MB download limit for bots"
# Deep-link payloads: up to 64 of A-Z, a-z, 0-9, _ and - (Bot API, "Deep linking").
_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_START = re.compile(r"^/start(?:@\w+)?(?:\s+(\S+))?\s*$")


@dataclass(frozen=True)
class Settings:
    """What the parser needs to know of the account."""

    account_id: int
    bot_id: str
    queue_id: int | None = None
    groups: bool = False
    leads_from_start: bool = False


@dataclass(frozen=True)
class FileRef:
    """A file of a message, to fetch with getFile after the message is stored."""

    position: int
    file_id: str


@dataclass(frozen=True)
class Start:
    """A /start command; `payload` is the deep link's (t.me/<bot>?start=<payload>)."""

    payload: str | None


@dataclass(frozen=True)
class NewMessage:
    event: InboundEvent
    files: tuple[FileRef, ...] = ()
    shared_phone: str | None = None
    start: Start | None = None


@dataclass(frozen=True)
class EditedMessage:
    """A new text for a stored message; `message` stores it if we never had the original."""

    external_id: str
    text: str
    edited_at: datetime
    message: NewMessage


@dataclass(frozen=True)
class Reachability:
    """The customer blocked the bot (`blocked`) or started it again."""

    user_id: str
    blocked: bool
    at: datetime


Item = NewMessage | EditedMessage | Reachability


def bot_id_of(token: str) -> str:
    """The bot's id: the part of its token before the colon."""
    return token.split(":", 1)[0]


def external_id(bot_id: str, chat_id: int, message_id: int) -> str:
    return f"{bot_id}:{chat_id}:{message_id}"


def parse_update(update: Update, settings: Settings) -> Parsed[Item] | Unsupported:
    """What one update holds for us."""
    if update.message is not None:
        parsed = _message(update.message, settings)
        return parsed if isinstance(parsed, Unsupported) else Parsed([parsed])
    if update.edited_message is not None:
        edited = update.edited_message
        parsed = _message(edited, settings)
        if isinstance(parsed, Unsupported):
            return parsed
        return Parsed(
            [
                EditedMessage(
                    parsed.event.external_id,
                    parsed.event.text,
                    _aware(edited.edit_date or edited.date),
                    parsed,
                )
            ]
        )
    member = update.my_chat_member
    if member is not None and member.chat.type == "private":
        status = member.new_chat_member.status
        return Parsed(
            [
                Reachability(
                    str(member.from_user.id), status in ("kicked", "left"), _aware(member.date)
                )
            ]
        )
    kinds = [name for name, value in update.to_dict().items() if name != "update_id" and value]
    return Unsupported(f"update kind {', '.join(kinds) or 'unknown'} is not handled")


def _message(message: Message, settings: Settings) -> NewMessage | Unsupported:
    sender = message.from_user
    if sender is None or sender.is_bot:
        return Unsupported("a message without a person behind it (a channel post or a bot)")
    chat = message.chat
    group = chat.type != "private"
    if group and not settings.groups:
        return Unsupported(f"a message in a {chat.type} chat; this bot takes private chats only")
    text, attachments, files, meta = _content(message)
    if text is None:
        return Unsupported("a service message (members, pins, chat settings)")
    shared_phone = None
    contact = message.contact
    if contact is not None and contact.user_id == sender.id and contact.phone_number:
        shared_phone = contact.phone_number
    start = _start(message.text or "")
    marketing: dict[str, str] = {}
    lead = None
    if start is not None and start.payload is not None:
        marketing = {"channel": CHANNEL, "start": start.payload}
        if settings.leads_from_start:
            lead = LeadRequest(source=f"telegram:{start.payload}", marketing=marketing)
    event = InboundEvent(
        channel=CHANNEL,
        external_id=external_id(settings.bot_id, chat.id, message.message_id),
        addresses=[Address(IdentityKind.TELEGRAM, str(sender.id))],
        display_name=sender.full_name[:200],
        text=text,
        attachments=attachments,
        meta={
            "telegram": {
                "account_id": settings.account_id,
                "chat_id": chat.id,
                "message_id": message.message_id,
                **({"username": sender.username} if sender.username else {}),
                **({"chat_type": chat.type, "chat_title": chat.title or ""} if group else {}),
                **meta,
            }
        },
        occurred_at=_aware(message.date),
        # Each chat its own conversation: an answer to a private chat never goes to a group.
        thread_key=f"chat:{chat.id}",
        queue_id=settings.queue_id,
        language=(sender.language_code or None),
        marketing=marketing,
        lead=lead,
    )
    return NewMessage(event, tuple(files), shared_phone, start)


def _start(text: str) -> Start | None:
    found = _START.match(text.strip())
    if found is None:
        return None
    payload = found.group(1)
    return Start(payload if payload and _PAYLOAD.match(payload) else None)


def _content(
    message: Message,
) -> tuple[str | None, list[dict[str, Any]], list[FileRef], dict[str, Any]]:
    """(text, attachments, files to fetch, meta) of a message; text None for a service
    message. The text is the message's, its caption, or a line saying what it is."""
    text = message.text or message.caption or ""
    attachments: list[dict[str, Any]] = []
    files: list[FileRef] = []
    meta: dict[str, Any] = {}

    def attach(file_id: str, name: str, content_type: str, size: int | None) -> None:
        entry = pending_attachment(name, content_type, size)
        if size is not None and size > DOWNLOAD_LIMIT:
            entry.update(pending=False, error=TOO_BIG, too_large=True)
        else:
            files.append(FileRef(len(attachments), file_id))
        attachments.append(entry)

    if message.photo:
        largest = message.photo[-1]
        attach(largest.file_id, f"photo_{message.message_id}.jpg", "image/jpeg", largest.file_size)
    elif message.document is not None:
        document = message.document
        attach(
            document.file_id,
            document.file_name or f"document_{message.message_id}",
            document.mime_type or "application/octet-stream",
            document.file_size,
        )
    elif message.voice is not None:
        voice = message.voice
        name = f"voice_{message.message_id}.ogg"
        attach(voice.file_id, name, voice.mime_type or "audio/ogg", voice.file_size)
        text = text or "(voice message)"
    elif message.video_note is not None:
        note = message.video_note
        name = f"video_note_{message.message_id}.mp4"
        attach(note.file_id, name, "video/mp4", note.file_size)
        text = text or "(video message)"
    elif message.video is not None:
        video = message.video
        name = video.file_name or f"video_{message.message_id}.mp4"
        attach(video.file_id, name, video.mime_type or "video/mp4", video.file_size)
    elif message.audio is not None:
        audio = message.audio
        name = audio.file_name or f"audio_{message.message_id}.mp3"
        attach(audio.file_id, name, audio.mime_type or "audio/mpeg", audio.file_size)
    elif message.sticker is not None:
        sticker = message.sticker
        extension, content_type = (
            ("tgs", "application/x-tgsticker")
            if sticker.is_animated
            else ("webm", "video/webm")
            if sticker.is_video
            else ("webp", "image/webp")
        )
        name = f"sticker_{message.message_id}.{extension}"
        attach(sticker.file_id, name, content_type, sticker.file_size)
        text = text or f"(sticker {sticker.emoji or ''})".replace(" )", ")")
    elif message.location is not None or message.venue is not None:
        location = message.venue.location if message.venue is not None else message.location
        assert location is not None
        latitude, longitude = location.latitude, location.longitude
        meta["location"] = {"latitude": latitude, "longitude": longitude}
        place = f"{message.venue.title}, {message.venue.address}: " if message.venue else ""
        text = text or (
            f"(location) {place}{latitude:.6f}, {longitude:.6f} "
            f"https://www.openstreetmap.org/?mlat={latitude:.6f}&mlon={longitude:.6f}"
        )
    elif message.contact is not None:
        contact = message.contact
        name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
        meta["contact"] = {"name": name, "phone_number": contact.phone_number}
        text = text or f"(contact) {name} {contact.phone_number}".strip()
    elif not text:
        kind = _other_kind(message)
        if kind is None:
            return None, [], [], {}
        text = f"({kind}, which omnicrm cannot show)"
    return text, attachments, files, meta


def _other_kind(message: Message) -> str | None:
    """A customer's message of a kind omnicrm does not show (stored with a line saying so,
    so nothing they sent is silently lost); None for service messages."""
    for attribute, label in (
        ("poll", "a poll"),
        ("dice", "a dice throw"),
        ("game", "a game"),
        ("animation", "an animation"),
        ("story", "a story"),
        ("invoice", "an invoice"),
        ("paid_media", "paid media"),
    ):
        if getattr(message, attribute, None):
            return label
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def chat_of(meta: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """(account id, chat id) a stored inbound message came through."""
    found = (meta or {}).get("telegram") or {}
    account_id, chat_id = found.get("account_id"), found.get("chat_id")
    return (
        account_id if isinstance(account_id, int) else None,
        chat_id if isinstance(chat_id, int) else None,
    )

"""A stand-in for the Telegram Bot API in the tests: its wire format, its long polling, and the
webhooks it would send (https://core.telegram.org/bots/api).

`TelegramStandIn` is an aiohttp server answering `POST /bot{token}/{method}` (GET too), with the
parameters as JSON, form-encoded or multipart (uploads), as Telegram does. Method names are
case-insensitive. Every answer is Telegram's envelope, `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`, with the same HTTP
status. A token the server does not know answers 401 `Unauthorized` (404 `Not Found` when it is not
even shaped like one), an unknown method 404 `Not Found`, a body over 50 MB 413.

- `getMe`: the bot's User.
- `setWebhook` (url, secret_token, allowed_updates, drop_pending_updates, max_connections,
  certificate), `deleteWebhook`, `getWebhookInfo` (with `last_error_*` after a failed delivery).
- `getUpdates` (offset, limit, timeout, allowed_updates): long polling; it answers as soon as an
  update is pushed. Updates below `offset` are confirmed and forgotten; a negative offset keeps
  the last -offset. `allowed_updates` (here or in setWebhook) applies to updates pushed after.
  409 while a webhook is set, and for a poll a newer poll or `setWebhook` terminates, with
  Telegram's descriptions.
- `getFile` (400 `file is too big` over 20 MB, `invalid file_id`), and the bytes at
  `GET /file/bot{token}/{file_path}`.
- `sendMessage`, `sendPhoto`, `sendDocument` (a multipart upload, a file_id, `attach://name` or
  an http(s) URL), `sendChatAction`: a realistic Message (message ids per chat continue after the
  customer's, from = the bot, date = now by omnicrm's clock, reply_to_message from
  `reply_parameters`). Text and captions are parsed for `parse_mode` HTML, MarkdownV2 and
  Markdown as Telegram does (tests/telegram_entities.py): the Message carries the plain text
  and its entities (UTF-16 offsets), and malformed markup answers 400 `can't parse entities:
  ...` with Telegram's wording. Empty text,
  text over 4096 or a caption over 1024 characters, an unknown chat, a reply to a message the
  chat does not have, an unknown action: Telegram's 400s.
- `script(answer, chat_id=..., method=...)` makes the next matching call fail: `retry_after(n)`
  (429 with `parameters.retry_after`), `blocked()`/`forbidden(...)` (403), `server_error()` (500
  JSON, or 502/504 as nginx's HTML page, as Telegram's front end answers), `drop()` (the
  connection closes without an answer), `stall(seconds, then)`, `chat_migrated(new_id)`, `error()`.

Records: `calls` (every API call, a `Call` with its params as Telegram understood them, uploaded
files, the loop time it arrived, the status answered and the result), `sent` (the send calls that
succeeded), `attempts(...)`, `counts` (calls per method), `downloads`, `deliveries`;
`await called(method, times)` waits until a method has been called that often.

Updates: `push(token, update)` numbers an update and queues it for `getUpdates` and for
`deliver(token)`, which POSTs the queue to the webhook as Telegram does (JSON, one request per
update, `X-Telegram-Bot-Api-Secret-Token` when a secret is set); a non-2xx answer keeps the update
for redelivery. `deliver_raw(...)` posts any bytes with any secret. The builders below
(`text_message`, `command`, `photo`, `document`, `voice`, `video_note`, `video`, `sticker`,
`location`, `contact`, `edited`, `group_text`, `update`) make updates in the documented shape;
the media ones register their files with the stand-in, so `getFile` and the download work.

Deviations from the real service, on purpose:
- `setWebhook` also accepts `http://` on 127.0.0.1/localhost/::1 (any port), since the tests'
  servers are plain HTTP on loopback; anything else needs https on 443, 80, 88 or 8443.
- HTML parse mode is stricter than Telegram: a bare `&` that starts no entity, or a bare `>`,
  is refused (Telegram's docs require escaping them; the server lets them through). Set
  `strict_html = False` to be as lenient as the server.
- A photo upload must be a PNG, JPEG, GIF or WebP whose size the stand-in can read (Telegram
  answers `IMAGE_PROCESS_FAILED` for what it cannot decode); `png()` makes a valid one. Sizes are
  computed from the image's dimensions, but every size serves the uploaded bytes (nothing is
  recompressed).
- A file sent by URL is not fetched: it becomes a file with no bytes (a fixed size is reported).
- Webhook deliveries happen only when a test calls `deliver()`, in order, one at a time;
  a method call in a webhook's answer is not executed.
- Telegram's 24-hour retention of unconfirmed updates and its rate limits are not simulated
  (script them).
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import json
import mimetypes
import re
import secrets
import struct
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer

from core.clock import utcnow
from tests.telegram_entities import (
    EntityError,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    trimmed,
    utf16_len,
)

TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"  # <bot_id>:<35 characters>
BOT_ID = 7123456789
BOT_USERNAME = "omnicrm_test_bot"
DATE = 1_735_732_800  # 2025-01-01 12:00:00 UTC: the default date of built updates
FIRST_UPDATE_ID = 873_412_650
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses larger files
MAX_UPLOAD = 50 * 1024 * 1024
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]{35}")
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "sendChatAction"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# How parameters sent as form fields (always strings) are understood.
_JSON_PARAMS = frozenset(
    {
        "reply_parameters",
        "reply_markup",
        "allowed_updates",
        "entities",
        "caption_entities",
        "link_preview_options",
    }
)
_INT_PARAMS = frozenset(
    {
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "message_id",
        "reply_to_message_id",
        "message_thread_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "has_spoiler",
        "show_caption_above_media",
        "disable_content_type_detection",
        "disable_web_page_preview",
    }
)

_message_ids = itertools.count(101)  # default message ids of built updates


# --- answers ------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class Answer:
    """A scripted answer: an error envelope (or raw bytes), a dropped connection, a stall.

    `status` 0 with no body means "answer normally" (after the stall, if any)."""

    status: int = 0
    body: dict[str, Any] | bytes | None = None
    content_type: str = "application/json"
    drop: bool = False
    stall_seconds: float = 0.0


def error(status: int, description: str, **parameters: Any) -> Answer:
    """Telegram's error envelope: `{"ok": false, "error_code", "description", "parameters"}`."""
    return Answer(status, ApiError(status, description, parameters or None).envelope())


def retry_after(seconds: int) -> Answer:
    """Flood control: 429 with `parameters.retry_after`."""
    return error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


def forbidden(reason: str) -> Answer:
    """A 403: "bot was blocked by the user", "user is deactivated", "bot was kicked from the
    group chat", "bot can't initiate conversation with a user"..."""
    return error(403, f"Forbidden: {reason}")


def blocked() -> Answer:
    return forbidden("bot was blocked by the user")


def chat_migrated(new_chat_id: int) -> Answer:
    """A group became a supergroup: 400 with `parameters.migrate_to_chat_id`."""
    return error(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=new_chat_id,
    )


_NGINX = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def server_error(status: int = 500) -> Answer:
    """500 as the Bot API's JSON; 502/503/504 as the HTML page of Telegram's nginx front."""
    if status == 500:
        return error(500, "Internal Server Error")
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
    page = _NGINX.format(status=status, reason=reason.get(status, "Error"))
    return Answer(status, page.encode(), content_type="text/html")


def drop() -> Answer:
    """The connection closes without an answer."""
    return Answer(drop=True)


def stall(seconds: float, then: Answer | None = None) -> Answer:
    """Wait `seconds` before answering: normally, or with `then`."""
    answer = Answer() if then is None else Answer(**vars(then))
    answer.stall_seconds = seconds
    return answer


@dataclass
class _Said:
    """A result with the `description` Telegram adds to some ok answers."""

    result: Any
    description: str


@dataclass
class _Script:
    answer: Answer
    token: str | None
    method: str | None
    chat_id: int | str | None

    def matches(self, token: str, method: str, chat_id: int | str | None) -> bool:
        if self.token is not None and self.token != token:
            return False
        if self.method is None:
            if method not in SEND_METHODS:
                return False
        elif self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)


# --- records ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One API call, as the stand-in understood it."""

    token: str
    method: str
    chat_id: int | str | None
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]]  # part name -> (filename, content, content type)
    at: float  # the event loop's time when it arrived
    status: int = 0  # the HTTP status answered; 0 for a dropped connection
    result: Any = None  # the `result` of an ok answer
    description: str | None = None  # the description of an error answer


@dataclass
class Delivery:
    token: str
    update_id: int | None
    status: int  # 0: the webhook could not be reached
    at: float


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    size: int
    path: str
    kind: str  # photo, document, voice, video_note, video, sticker, thumbnail, ...
    meta: dict[str, Any] = field(default_factory=dict)  # the object a Message carries
    sizes: list[dict[str, Any]] | None = None  # a photo's PhotoSizes, largest last

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.path,
        }


@dataclass
class Webhook:
    url: str
    secret_token: str | None = None
    max_connections: int = 40
    has_custom_certificate: bool = False
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class BotAccount:
    token: str
    id: int
    username: str
    first_name: str
    can_join_groups: bool = True
    can_read_all_group_messages: bool = False
    supports_inline_queries: bool = False
    webhook: Webhook | None = None
    allowed_updates: list[str] | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)  # unconfirmed updates
    next_update_id: int = FIRST_UPDATE_ID
    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_message_id: dict[int, int] = field(default_factory=dict)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)  # by file_id
    paths: dict[str, StoredFile] = field(default_factory=dict)  # by file_path
    file_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    poll_generation: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def user(self) -> dict[str, Any]:
        """The bot as `from` of its messages."""
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }

    def me(self) -> dict[str, Any]:
        """getMe's User."""
        return {
            **self.user(),
            "can_join_groups": self.can_join_groups,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def wake(self) -> None:
        """Wake every waiting long poll (they look at the queue again)."""
        self.arrived.set()
        self.arrived = asyncio.Event()

    def allows(self, update: dict[str, Any]) -> bool:
        kind = update_kind(update)
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in NOT_BY_DEFAULT


def update_kind(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


# --- the server ---------------------------------------------------------------------------------

Params = dict[str, Any]
Files = dict[str, tuple[str, bytes, str]]
_Method = Callable[[BotAccount, Params, Files], Coroutine[Any, Any, Any]]


class TelegramStandIn:
    def __init__(self) -> None:
        self.bots: dict[str, BotAccount] = {}
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()
        self.downloads: list[str] = []  # file paths served
        self.deliveries: list[Delivery] = []
        self.strict_html = True
        self.server: TestServer | None = None
        self._scripts: list[_Script] = []
        self._closing = asyncio.Event()
        self._called = asyncio.Event()
        self._methods: dict[str, tuple[str, _Method]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("getUpdates", self._get_updates),
                ("getFile", self._get_file),
                ("sendMessage", self._send_message),
                ("sendPhoto", self._send_photo),
                ("sendDocument", self._send_document),
                ("sendChatAction", self._send_chat_action),
            )
        }

    # --- setting up -----------------------------------------------------------------------------

    def add_bot(
        self,
        token: str = TOKEN,
        *,
        bot_id: int | None = None,
        username: str = BOT_USERNAME,
        first_name: str = "Omnicrm Support",
    ) -> BotAccount:
        """A bot the server knows; `token` is `<bot_id>:<35 characters>`."""
        if not TOKEN_SHAPE.fullmatch(token):
            raise ValueError(f"not a bot token: {token!r}")
        token_id = int(token.split(":", 1)[0])
        if bot_id is not None and bot_id != token_id:
            raise ValueError(f"the token is of bot {token_id}, not {bot_id}")
        bot = BotAccount(token, token_id, username, first_name)
        self.bots[token] = bot
        return bot

    def add_chat(
        self,
        token: str,
        chat_id: int,
        *,
        type: Literal["private", "group", "supergroup", "channel"] = "private",
        title: str | None = None,
        first_name: str | None = "Alice",
        last_name: str | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """A chat the bot knows (otherwise only pushed updates make chats known)."""
        if type == "private":
            chat = _chat_of(chat_id, first_name or "Alice", last_name, username)
        else:
            chat = {"id": chat_id, "title": title or "Support", "type": type}
            if username is not None:
                chat["username"] = username
        self._bot(token).chats[chat_id] = chat
        return chat

    def add_file(
        self,
        token: str,
        data: bytes,
        *,
        file_id: str | None = None,
        size: int | None = None,
        path_hint: str = "photos/file_1.jpg",
    ) -> str:
        """Registers a file the bot can getFile and download; its file_id.

        The file path keeps the hint's folder and extension and takes the bot's next number
        (`photos/file_7.jpg`); `size` is the size Telegram reports (a "25 MB" file need not be
        25 MB of bytes). A photo gets the width and height of its image (or 1280x960)."""
        stored, meta = self._store_file(
            token, data, size=size, path_hint=path_hint, file_id=file_id
        )
        if stored.kind == "photo":
            width, height = image_size(data) or (1280, 960)
            meta.update(width=width, height=height)
        return stored.file_id

    def file(self, token: str, file_id: str) -> StoredFile:
        return self._bot(token).files[file_id]

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    @property
    def base_url(self) -> str:
        """PTB's `Bot(base_url=...)`; PTB appends the token."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB's `Bot(base_file_url=...)`; PTB appends the token."""
        return f"{self.url}/file/bot"

    # --- scripting ------------------------------------------------------------------------------

    def script(
        self,
        answer: Answer,
        *,
        chat_id: int | str | None = None,
        method: str | None = None,
        token: str | None = None,
    ) -> None:
        """The next call that matches gets `answer` (scripts queue up, first match first).

        Without `method` it matches the send methods (sendMessage, sendPhoto, sendDocument,
        sendChatAction); name one to fail another (`method="getUpdates"`)."""
        self._scripts.append(_Script(answer, token, method, chat_id))

    @property
    def sent(self) -> list[Call]:
        """The send calls that succeeded, in order."""
        return [call for call in self.calls if call.method in SEND_METHODS and call.status == 200]

    def attempts(self, method: str | None = None, chat_id: int | str | None = None) -> list[Call]:
        """The send calls (or `method`'s calls), whatever they were answered."""
        return [
            call
            for call in self.calls
            if (call.method == method if method else call.method in SEND_METHODS)
            and (chat_id is None or str(call.chat_id) == str(chat_id))
        ]

    async def called(self, method: str, times: int = 1) -> None:
        """Waits until `method` has been called `times` times in all (TimeoutError after 10
        seconds): e.g. until a poller's getUpdates is waiting."""
        async with asyncio.timeout(10):
            while self.counts[method] < times:
                await self._called.wait()

    # --- updates --------------------------------------------------------------------------------

    def push(self, token: str, update: dict[str, Any]) -> int:
        """Queues an update (a builder's dict) for getUpdates and deliver(); its update_id.

        As on Telegram, `allowed_updates` decides when an update is created: one of a kind the
        bot has not allowed (by default chat_member, message_reaction, message_reaction_count)
        is not queued (its id is skipped), and changing the setting later does not affect
        updates already queued."""
        bot = self._bot(token)
        numbered = json.loads(json.dumps(update))
        numbered.pop("update_id", None)
        update_id = bot.next_update_id
        bot.next_update_id += 1
        if not bot.allows(numbered):
            return update_id
        bot.queue.append({"update_id": update_id, **numbered})
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            message = numbered.get(key)
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                self._remember(bot, message)
        bot.wake()
        return update_id

    def pending(self, token: str) -> list[dict[str, Any]]:
        """The updates not yet confirmed (getUpdates) or delivered (webhook)."""
        return list(self._bot(token).queue)

    async def deliver(self, token: str, *, origin: str | None = None) -> list[int]:
        """POSTs every queued update to the bot's webhook, one request each, as Telegram does;
        the statuses (0: unreachable). A non-2xx answer keeps the update queued.

        `origin` ("http://127.0.0.1:8080") posts there instead of the registered URL's scheme,
        host and port, keeping its path and query: for a webhook registered with the public
        https URL while the app under test listens on loopback."""
        bot = self._bot(token)
        hook = bot.webhook
        if hook is None:
            raise RuntimeError(f"bot {bot.id} has no webhook; setWebhook first")
        statuses: list[int] = []
        async with ClientSession(timeout=ClientTimeout(total=30)) as session:
            for update in list(bot.queue):
                status, problem = await self._post(
                    session,
                    _retarget(hook.url, origin),
                    json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode(),
                    hook.secret_token,
                    "application/json",
                )
                statuses.append(status)
                self.deliveries.append(Delivery(token, update["update_id"], status, _now()))
                if 200 <= status < 300:
                    bot.queue.remove(update)
                else:
                    hook.last_error_date = int(utcnow().timestamp())
                    hook.last_error_message = problem
        return statuses

    async def deliver_raw(
        self,
        token: str,
        body: bytes,
        secret: str | None,
        *,
        origin: str | None = None,
        content_type: str = "application/json",
    ) -> int:
        """POSTs `body` to the bot's webhook with `secret` as the secret header (None: without
        one); the status (0: unreachable). For malformed and unauthenticated deliveries."""
        hook = self._bot(token).webhook
        if hook is None:
            raise RuntimeError("no webhook; setWebhook first")
        async with ClientSession(timeout=ClientTimeout(total=30)) as session:
            status, _ = await self._post(
                session, _retarget(hook.url, origin), body, secret, content_type
            )
        self.deliveries.append(Delivery(token, None, status, _now()))
        return status

    async def _post(
        self,
        session: ClientSession,
        url: str,
        body: bytes,
        secret: str | None,
        content_type: str,
    ) -> tuple[int, str]:
        headers = {"Content-Type": content_type}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, (
                    f"Wrong response from the webhook: {response.status} {response.reason}"
                )
        except (ClientError, TimeoutError) as exc:
            return 0, f"Connection failed: {exc.__class__.__name__}"

    # --- the server -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def start(self) -> str:
        self._closing = asyncio.Event()
        self.server = TestServer(self.app())
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        """Stops serving; waiting long polls and stalls end at once."""
        self._closing.set()
        for bot in self.bots.values():
            bot.wake()
        if self.server is not None:
            await self.server.close()

    def _bot(self, token: str) -> BotAccount:
        try:
            return self.bots[token]
        except KeyError:
            raise KeyError(f"no bot with token {token!r}; add_bot() first") from None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            return _error(ApiError(405, "Method Not Allowed"))
        token = request.match_info["token"]
        bot = self.bots.get(token)
        if bot is None:
            if TOKEN_SHAPE.fullmatch(token):
                return _error(ApiError(401, "Unauthorized"))
            return _error(ApiError(404, "Not Found"))
        found = self._methods.get(request.match_info["method"].lower())
        name = found[0] if found else request.match_info["method"]
        call = Call(token, name, None, {}, {}, _now())
        self.calls.append(call)
        self.counts[name] += 1
        self._called.set()
        self._called = asyncio.Event()
        try:
            call.params, call.files = await _read_params(request)
        except ApiError as problem:
            return self._answer_error(call, problem)
        chat_id = call.params.get("chat_id")
        call.chat_id = chat_id if isinstance(chat_id, int | str) else None
        if found is None:
            return self._answer_error(call, ApiError(404, "Not Found"))

        script = next(
            (s for s in self._scripts if s.matches(token, name, call.chat_id)),
            None,
        )
        if script is not None:
            self._scripts.remove(script)
            answer = script.answer
            if answer.stall_seconds:
                await self._sleep(answer.stall_seconds)
            if answer.drop:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=500)
            if answer.status:
                return self._scripted(call, answer)

        try:
            result = await found[1](bot, call.params, call.files)
        except ApiError as problem:
            return self._answer_error(call, problem)
        envelope: dict[str, Any] = {"ok": True, "result": result}
        if isinstance(result, _Said):
            envelope = {"ok": True, "result": result.result, "description": result.description}
        call.status = 200
        call.result = envelope["result"]
        return _json(envelope, 200)

    def _answer_error(self, call: Call, problem: ApiError) -> web.Response:
        call.status = problem.status
        call.description = problem.description
        return _error(problem)

    def _scripted(self, call: Call, answer: Answer) -> web.Response:
        call.status = answer.status
        if isinstance(answer.body, dict):
            call.description = answer.body.get("description")
            return _json(answer.body, answer.status)
        return web.Response(
            status=answer.status, body=answer.body or b"", content_type=answer.content_type
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleeps, but not past close()."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["token"])
        stored = bot.paths.get(request.match_info["path"]) if bot is not None else None
        if stored is None:
            return _error(ApiError(404, "Not Found"))
        self.downloads.append(stored.path)
        content_type = mimetypes.guess_type(stored.path)[0] or "application/octet-stream"
        return web.Response(body=stored.data, content_type=content_type)

    # --- methods --------------------------------------------------------------------------------

    async def _get_me(self, bot: BotAccount, params: Params, files: Files) -> Any:
        return bot.me()

    async def _set_webhook(self, bot: BotAccount, params: Params, files: Files) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(bot, params, files)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme == "http" and loopback:
            pass  # the stand-in's one leniency: test servers are plain HTTP on loopback
        elif parts.scheme != "https":
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        elif not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: Failed to resolve host: No address")
        elif (port or 443) not in (443, 80, 88, 8443):
            raise ApiError(
                400,
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
            )
        secret = params.get("secret_token")
        if secret in (None, ""):
            secret = None
        elif not (isinstance(secret, str) and SECRET_SHAPE.fullmatch(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        max_connections = params.get("max_connections", 40)
        if not isinstance(max_connections, int):
            max_connections = 40
        same = bot.webhook is not None and bot.webhook.url == url
        bot.webhook = Webhook(
            url,
            secret,
            max(1, min(100, max_connections)),
            has_custom_certificate="certificate" in files,
        )
        self._allowed_updates(bot, params)
        if params.get("drop_pending_updates") is True:
            bot.queue.clear()
        bot.wake()  # a waiting getUpdates ends with a Conflict
        return _Said(True, "Webhook is already set" if same else "Webhook was set")

    async def _delete_webhook(self, bot: BotAccount, params: Params, files: Files) -> Any:
        said = "Webhook was deleted" if bot.webhook else "Webhook is already deleted"
        bot.webhook = None
        if params.get("drop_pending_updates") is True:
            bot.queue.clear()
        return _Said(True, said)

    async def _get_webhook_info(self, bot: BotAccount, params: Params, files: Files) -> Any:
        hook = bot.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": bool(hook and hook.has_custom_certificate),
            "pending_update_count": len(bot.queue),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
            if bot.allowed_updates:
                info["allowed_updates"] = list(bot.allowed_updates)
        return info

    async def _get_updates(self, bot: BotAccount, params: Params, files: Files) -> Any:
        if bot.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params.get("offset"), 0)
        limit = max(1, min(100, _int(params.get("limit"), 100)))
        timeout = max(0, _int(params.get("timeout"), 0))
        self._allowed_updates(bot, params)
        bot.poll_generation += 1
        mine = bot.poll_generation
        bot.wake()  # an older poll still waiting is terminated
        if offset > 0:
            bot.queue = [update for update in bot.queue if update["update_id"] >= offset]
        elif offset < 0:
            bot.queue = bot.queue[offset:]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if bot.queue or remaining <= 0 or self._closing.is_set():
                return [json.loads(json.dumps(update)) for update in bot.queue[:limit]]
            event = bot.arrived
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
            if bot.poll_generation != mine:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if bot.webhook is not None:
                raise ApiError(409, "Conflict: terminated by setWebhook request")

    def _allowed_updates(self, bot: BotAccount, params: Params) -> None:
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            bot.allowed_updates = [str(kind) for kind in allowed] or None

    async def _get_file(self, bot: BotAccount, params: Params, files: Files) -> Any:
        stored = bot.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.size > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.as_file()

    async def _send_message(self, bot: BotAccount, params: Params, files: Files) -> Any:
        chat = self._chat(bot, params)
        text = params.get("text")
        if text is None or str(text) == "":
            raise ApiError(400, "Bad Request: message text is empty")
        plain, entities = self._formatted(str(text), params, "entities")
        if not plain:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(plain) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        message = self._new_message(bot, chat, params)
        message["text"] = plain
        if entities:
            message["entities"] = entities
        self._remember(bot, message)
        return message

    async def _send_photo(self, bot: BotAccount, params: Params, files: Files) -> Any:
        chat = self._chat(bot, params)
        given = self._input_file(bot, "photo", params, files)
        if isinstance(given, StoredFile):
            if given.kind != "photo":
                raise ApiError(
                    400, f"Bad Request: can't use file of type {given.kind.title()} as Photo"
                )
            sizes = given.sizes or [given.meta]
        elif isinstance(given, str):  # a URL: not fetched
            sizes = self._photo(bot, _fake_jpeg(800, 600, 2048), 800, 600)
        else:
            dimensions = image_size(given[1])
            if dimensions is None:
                raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
            sizes = self._photo(bot, given[1], *dimensions)
        message = self._new_message(bot, chat, params)
        message["photo"] = [dict(size) for size in sizes]
        self._caption(message, params)
        self._remember(bot, message)
        return message

    async def _send_document(self, bot: BotAccount, params: Params, files: Files) -> Any:
        chat = self._chat(bot, params)
        given = self._input_file(bot, "document", params, files)
        if isinstance(given, StoredFile):
            if given.kind != "document":
                raise ApiError(
                    400, f"Bad Request: can't use file of type {given.kind.title()} as Document"
                )
            document = dict(given.meta)
        else:
            if isinstance(given, str):  # a URL: not fetched
                filename = urlsplit(given).path.rsplit("/", 1)[-1] or "file"
                data, content_type, size = b"", "", 4096
            else:
                filename, data, content_type = given
                size = len(data)
                if not data:
                    raise ApiError(400, "Bad Request: file must be non-empty")
            document = self._document(bot, data, filename, content_type, size)
        message = self._new_message(bot, chat, params)
        message["document"] = document
        self._caption(message, params)
        self._remember(bot, message)
        return message

    async def _send_chat_action(self, bot: BotAccount, params: Params, files: Files) -> Any:
        self._chat(bot, params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # --- what the methods share -----------------------------------------------------------------

    def _chat(self, bot: BotAccount, params: Params) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        if isinstance(chat_id, int) and chat_id in bot.chats:
            return dict(bot.chats[chat_id])
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in bot.chats.values():
                if chat.get("username", "").lower() == chat_id[1:].lower():
                    return dict(chat)
        raise ApiError(400, "Bad Request: chat not found")

    def _new_message(self, bot: BotAccount, chat: dict[str, Any], params: Params) -> dict[str, Any]:
        chat_id = int(chat["id"])
        message_id = bot.last_message_id.get(chat_id, 0) + 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": bot.user(),
            "chat": chat,
            "date": int(utcnow().timestamp()),
        }
        if chat["type"] == "channel":
            del message["from"]
            message["sender_chat"] = chat
        thread = params.get("message_thread_id")
        if isinstance(thread, int) and chat.get("is_forum"):
            message["message_thread_id"] = thread
            message["is_topic_message"] = True
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            target_chat = reply.get("chat_id", chat_id)
            target = bot.messages.get((_int(target_chat, chat_id), _int(reply["message_id"], 0)))
            if target is not None:
                target = dict(target)
                target.pop("reply_to_message", None)
                message["reply_to_message"] = target
            elif not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        elif reply is not None and not isinstance(reply, dict):
            raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _remember(self, bot: BotAccount, message: dict[str, Any]) -> None:
        chat = message["chat"]
        chat_id = int(chat["id"])
        bot.chats[chat_id] = dict(chat)
        message_id = int(message.get("message_id", 0))
        bot.last_message_id[chat_id] = max(bot.last_message_id.get(chat_id, 0), message_id)
        bot.messages[(chat_id, message_id)] = json.loads(json.dumps(message))

    def _formatted(
        self, text: str, params: Params, entities_param: str
    ) -> tuple[str, list[dict[str, Any]]]:
        given = params.get(entities_param)
        if given is not None:
            if not isinstance(given, list):
                raise ApiError(400, f"Bad Request: can't parse {entities_param} JSON object")
            return text, given
        mode = str(params.get("parse_mode") or "").lower()
        try:
            if mode == "html":
                plain, entities = parse_html(text, strict=self.strict_html)
            elif mode == "markdownv2":
                plain, entities = parse_markdown_v2(text)
            elif mode == "markdown":
                plain, entities = parse_markdown(text)
            elif mode == "":
                plain, entities = text, []
            else:
                raise ApiError(400, "Bad Request: unsupported parse_mode")
        except EntityError as problem:
            raise ApiError(400, f"Bad Request: can't parse entities: {problem}") from None
        return trimmed(plain, entities)

    def _caption(self, message: dict[str, Any], params: Params) -> None:
        caption = params.get("caption")
        if caption is None or caption == "":
            return
        plain, entities = self._formatted(str(caption), params, "caption_entities")
        if len(plain) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        if plain:
            message["caption"] = plain
        if entities:
            message["caption_entities"] = entities
        if params.get("has_spoiler") is True:
            message["has_media_spoiler"] = True

    def _input_file(
        self, bot: BotAccount, name: str, params: Params, files: Files
    ) -> tuple[str, bytes, str] | StoredFile | str:
        """An upload (filename, bytes, content type), a known file, or a URL."""
        if name in files:
            return files[name]
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = files.get(value.removeprefix("attach://"))
            if attached is None:
                raise ApiError(400, f"Bad Request: there is no {name} in the request")
            return attached
        if value is None or value == "":
            raise ApiError(400, f"Bad Request: there is no {name} in the request")
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
        stored = bot.files.get(str(value))
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return stored

    def _store_file(
        self,
        token: str,
        data: bytes,
        *,
        path_hint: str,
        size: int | None = None,
        file_id: str | None = None,
        kind: str | None = None,
    ) -> tuple[StoredFile, dict[str, Any]]:
        """A new file of the bot; it and the `{file_id, file_unique_id, file_size}` every file
        object of a Message starts with."""
        bot = self._bot(token)
        folder, _, name = path_hint.rpartition("/")
        extension = name.rpartition(".")[2] if "." in name else ""
        number = next(bot.file_numbers)
        path = f"file_{number}.{extension}" if extension else f"file_{number}"
        if folder:
            path = f"{folder}/{path}"
        kind = kind or _KIND_OF_FOLDER.get(folder, "document")
        stored = StoredFile(
            file_id=file_id or _file_id(kind),
            file_unique_id="AQAD" + secrets.token_urlsafe(9)[:12],
            data=data,
            size=len(data) if size is None else size,
            path=path,
            kind=kind,
        )
        stored.meta = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        bot.files[stored.file_id] = stored
        bot.paths[stored.path] = stored
        return stored, stored.meta

    def _photo(self, bot: BotAccount, data: bytes, width: int, height: int) -> list[dict[str, Any]]:
        """A photo's PhotoSizes (registered files), largest last."""
        sizes: list[dict[str, Any]] = []
        stored: list[StoredFile] = []
        dimensions = photo_dimensions(width, height)
        for w, h in dimensions:
            content = data if (w, h) == dimensions[-1] else _fake_jpeg(w, h, max(600, w * h // 12))
            one, meta = self._store_file(
                bot.token, content, path_hint="photos/file.jpg", kind="photo"
            )
            meta.update(width=w, height=h)
            sizes.append(meta)
            stored.append(one)
        for one in stored:
            one.sizes = sizes
        return sizes

    def _document(
        self, bot: BotAccount, data: bytes, filename: str, content_type: str, size: int
    ) -> dict[str, Any]:
        extension = filename.rpartition(".")[2] if "." in filename else ""
        _, meta = self._store_file(
            bot.token,
            data,
            path_hint=f"documents/file.{extension}" if extension else "documents/file",
            size=size,
            kind="document",
        )
        guessed = mimetypes.guess_type(filename)[0]
        if content_type in ("", "application/octet-stream") and guessed:
            content_type = guessed
        meta.update(file_name=filename, mime_type=content_type or "application/octet-stream")
        return dict(meta)


@asynccontextmanager
async def running(*tokens: str) -> AsyncIterator[TelegramStandIn]:
    """The stand-in serving on a free port, with bots for `tokens` (default: `TOKEN`), until the
    block ends."""
    telegram = TelegramStandIn()
    for token in tokens or (TOKEN,):
        telegram.add_bot(token)
    await telegram.start()
    try:
        yield telegram
    finally:
        await telegram.close()


def _now() -> float:
    return asyncio.get_running_loop().time()


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
    )


def _error(problem: ApiError) -> web.Response:
    return _json(problem.envelope(), problem.status)


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return default


def _retarget(url: str, origin: str | None) -> str:
    if origin is None:
        return url
    target, registered = urlsplit(origin), urlsplit(url)
    return urlunsplit(
        (target.scheme, target.netloc, registered.path, registered.query, registered.fragment)
    )


async def _read_params(request: web.Request) -> tuple[Params, Files]:
    """The call's parameters from the query string and the body (JSON, form or multipart), as
    Telegram understands them: form fields (always strings) are read as the JSON objects, numbers
    and booleans the method takes."""
    raw: dict[str, Any] = dict(request.query)
    files: Files = {}
    if request.method == "POST" and request.can_read_body:
        try:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise ApiError(400, "Bad Request: can't parse JSON") from None
                if not isinstance(body, dict):
                    raise ApiError(400, "Bad Request: JSON object expected")
                raw.update(body)
            elif request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                for name, value in form.items():
                    if isinstance(value, web.FileField):
                        files[name] = (value.filename, value.file.read(), value.content_type)
                    else:
                        raw[name] = value
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "Request Entity Too Large") from None
    params: Params = {}
    for name, value in raw.items():
        params[name] = _understood(name, value)
    return params, files


def _understood(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
    if (name in _INT_PARAMS or name == "chat_id") and re.fullmatch(r"-?\d+", value):
        return int(value)
    if name in _BOOL_PARAMS and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


# --- files --------------------------------------------------------------------------------------

_KIND_OF_FOLDER = {
    "photos": "photo",
    "documents": "document",
    "voice": "voice",
    "video_notes": "video_note",
    "videos": "video",
    "stickers": "sticker",
    "thumbnails": "thumbnail",
    "music": "audio",
    "animations": "animation",
}
_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "video_note": "DQACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
    "thumbnail": "AAMCAgADGQEAAI",
}


def _file_id(kind: str) -> str:
    return _FILE_ID_PREFIX.get(kind, "BQACAgIAAxkBAAI") + secrets.token_urlsafe(48)[:56]


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG (grey), for photo uploads."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = binascii.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _fake_jpeg(width: int, height: int, size: int) -> bytes:
    """Bytes that start like a JPEG of width x height (SOI, JFIF, SOF0) and end with EOI."""
    jfif = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03\x01\x22\x00"
    sof += b"\x02\x11\x01\x03\x11\x01"
    head = b"\xff\xd8" + jfif + sof
    return head + b"\x00" * max(0, size - len(head) - 2) + b"\xff\xd9"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP; None when it is none of these."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith((b"GIF87a", b"GIF89a")) and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return 512, 512
    if data.startswith(b"\xff\xd8"):
        index = 2
        while index + 9 <= len(data):
            if data[index] != 0xFF:
                return None
            marker = data[index + 1]
            length = struct.unpack(">H", data[index + 2 : index + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return int(width), int(height)
            index += 2 + length
    return None


def photo_dimensions(width: int, height: int) -> list[tuple[int, int]]:
    """The sizes Telegram keeps of a photo (boxes of 90, 320, 800, 1280, 2560), largest last."""
    longest = max(width, height, 1)
    dimensions: list[tuple[int, int]] = []
    for box in (90, 320, 800, 1280, 2560):
        scale = min(1.0, box / longest)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size not in dimensions:
            dimensions.append(size)
        if box >= longest:
            break
    return dimensions


# --- updates, as Telegram sends them ------------------------------------------------------------


class From(TypedDict, total=False):
    """Who writes, where, when: every builder takes these."""

    chat_id: int  # default: the user's id (a private chat)
    message_id: int  # default: the next of a module-wide counter
    date: int  # unix time; default DATE (fixed, not today)
    first_name: str
    last_name: str | None
    username: str | None
    language_code: str | None
    is_premium: bool


def _user_of(user_id: int, who: From) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": who.get("first_name", "Alice"),
    }
    for key in ("last_name", "username", "language_code"):
        value = who.get(key, "en" if key == "language_code" else None)
        if value is not None:
            user[key] = value
    if who.get("is_premium"):
        user["is_premium"] = True
    return user


def _chat_of(
    chat_id: int, first_name: str, last_name: str | None, username: str | None
) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "first_name": first_name}
    if last_name is not None:
        chat["last_name"] = last_name
    if username is not None:
        chat["username"] = username
    chat["type"] = "private"
    return chat


def _message(user_id: int, who: From, **content: Any) -> dict[str, Any]:
    user = _user_of(user_id, who)
    chat_id = who.get("chat_id", user_id)
    chat = content.pop("chat", None) or _chat_of(
        chat_id, user["first_name"], user.get("last_name"), user.get("username")
    )
    message_id = who.get("message_id")
    return {
        "message_id": next(_message_ids) if message_id is None else message_id,
        "from": user,
        "chat": chat,
        "date": who.get("date", DATE),
        **content,
    }


def update(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    """An Update carrying `message` as `kind` ("message", "edited_message", "channel_post"...);
    `push` gives it its update_id."""
    return {kind: message}


def text_message(
    user_id: int,
    text: str,
    *,
    entities: list[dict[str, Any]] | None = None,
    reply_to: dict[str, Any] | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A customer's text message in a private chat."""
    content: dict[str, Any] = {"text": text}
    if entities:
        content["entities"] = entities
    if reply_to is not None:
        content["reply_to_message"] = reply_to
    return update("message", _message(user_id, who, **content))


def command(
    user_id: int, command: str = "/start", payload: str | None = None, **who: Unpack[From]
) -> dict[str, Any]:
    """A command ("/start", "/start@bot"), with a deep-link payload: "/start payload"."""
    text = command if payload is None else f"{command} {payload}"
    entity = {"offset": 0, "length": utf16_len(command), "type": "bot_command"}
    return text_message(user_id, text, entities=[entity], **who)


def group_text(
    user_id: int,
    text: str,
    *,
    title: str = "Support group",
    chat_type: Literal["group", "supergroup"] = "supergroup",
    **who: Unpack[From],
) -> dict[str, Any]:
    """A text message in a group or supergroup (negative chat ids, with a title)."""
    default_id = -1001987654321 if chat_type == "supergroup" else -4012345678
    chat = {"id": who.pop("chat_id", default_id), "title": title, "type": chat_type}
    return update("message", _message(user_id, who, chat=chat, text=text))


def edited(
    user_id: int, text: str, *, edit_date: int | None = None, **who: Unpack[From]
) -> dict[str, Any]:
    """An `edited_message`: message `message_id` (required) now says `text`."""
    if "message_id" not in who:
        raise TypeError("edited() needs the message_id of the message edited")
    message = _message(user_id, who, text=text)
    message["edit_date"] = message["date"] + 60 if edit_date is None else edit_date
    return update("edited_message", message)


def location(
    user_id: int,
    latitude: float,
    longitude: float,
    *,
    horizontal_accuracy: float | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    place: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if horizontal_accuracy is not None:
        place["horizontal_accuracy"] = horizontal_accuracy
    return update("message", _message(user_id, who, location=place))


def contact(
    user_id: int,
    phone_number: str,
    *,
    own: bool = True,
    contact_first_name: str | None = None,
    contact_last_name: str | None = None,
    contact_user_id: int | None = None,
    vcard: str | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A shared contact; by default the user sharing their own number (the request_contact
    button), which carries their user_id. Telegram's clients send it with or without "+"."""
    user = _user_of(user_id, who)
    card: dict[str, Any] = {
        "phone_number": phone_number,
        "first_name": user["first_name"] if own else (contact_first_name or "Bob"),
    }
    last_name = user.get("last_name") if own else contact_last_name
    if last_name:
        card["last_name"] = last_name
    shared_id = user_id if own else contact_user_id
    if shared_id is not None:
        card["user_id"] = shared_id
    if vcard is not None:
        card["vcard"] = vcard
    return update("message", _message(user_id, who, contact=card))


def _media(
    standin: TelegramStandIn,
    token: str,
    data: bytes,
    path_hint: str,
    size: int | None,
    **extra: Any,
) -> dict[str, Any]:
    _, meta = standin._store_file(token, data, path_hint=path_hint, size=size)
    meta.update(extra)
    return meta


def _thumbnail(standin: TelegramStandIn, token: str, width: int, height: int) -> dict[str, Any]:
    return _media(
        standin,
        token,
        _fake_jpeg(width, height, 2000),
        "thumbnails/file.jpg",
        None,
        width=width,
        height=height,
    )


def _with_caption(content: dict[str, Any], caption: str | None) -> dict[str, Any]:
    if caption is not None:
        content["caption"] = caption
    return content


def photo(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes | None = None,
    width: int = 1280,
    height: int = 960,
    caption: str | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A photo: its PhotoSizes (registered files), largest last; the largest serves `data`."""
    sizes = standin._photo(
        standin._bot(token),
        data if data is not None else _fake_jpeg(width, height, 48_000),
        width,
        height,
    )
    content = _with_caption({"photo": sizes}, caption)
    return update("message", _message(user_id, who, **content))


def document(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    file_name: str = "invoice.pdf",
    mime_type: str = "application/pdf",
    size: int | None = None,
    caption: str | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A document; `size` overrides the reported size (over 20 MB: getFile refuses it)."""
    meta = standin._document(
        standin._bot(token), data, file_name, mime_type, len(data) if size is None else size
    )
    content = _with_caption({"document": meta}, caption)
    return update("message", _message(user_id, who, **content))


def voice(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes = b"OggS\x00\x02" + b"\x00" * 3000,
    duration: int = 4,
    size: int | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A voice note (OGG/Opus), as the clients record them."""
    meta = _media(
        standin, token, data, "voice/file.oga", size, duration=duration, mime_type="audio/ogg"
    )
    return update("message", _message(user_id, who, voice=meta))


def video_note(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 5000,
    duration: int = 6,
    length: int = 384,
    size: int | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    """A round video message."""
    meta = _media(
        standin,
        token,
        data,
        "video_notes/file.mp4",
        size,
        duration=duration,
        length=length,
        thumbnail=_thumbnail(standin, token, 240, 240),
    )
    return update("message", _message(user_id, who, video_note=meta))


def video(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8000,
    duration: int = 12,
    width: int = 1280,
    height: int = 720,
    file_name: str | None = "clip.mp4",
    size: int | None = None,
    caption: str | None = None,
    **who: Unpack[From],
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "width": width,
        "height": height,
        "duration": duration,
        "thumbnail": _thumbnail(standin, token, 320, 180),
        "mime_type": "video/mp4",
    }
    if file_name is not None:
        extra["file_name"] = file_name
    meta = _media(standin, token, data, "videos/file.mp4", size, **extra)
    content = _with_caption({"video": meta}, caption)
    return update("message", _message(user_id, who, **content))


def sticker(
    standin: TelegramStandIn,
    token: str,
    user_id: int,
    *,
    data: bytes = b"RIFF\x00\x10\x00\x00WEBPVP8 " + b"\x00" * 4000,
    emoji: str = "👍",
    set_name: str | None = "HotCherry",
    **who: Unpack[From],
) -> dict[str, Any]:
    """A static (WebP) regular sticker."""
    extra: dict[str, Any] = {
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": emoji,
        "thumbnail": _thumbnail(standin, token, 128, 128),
    }
    if set_name is not None:
        extra["set_name"] = set_name
    meta = _media(standin, token, data, "stickers/file.webp", None, **extra)
    return update("message", _message(user_id, who, sticker=meta))

"""The channel interface: each channel is a folder behind these classes.

A channel (`channels/<name>/`, one module per concern: parser, webhook, poller, sender) is a
`Channel`: its `ChannelFacts` (core/channels.py: label, address kind, capacity kind, what it
can send), the model of an account's settings and which of them are secret, and the adapters
it brings. The registry (`channels/registry.py`) turns a list of channels into everything the
application needs: routes, senders, pollers, health, metrics labels, the console's metadata.
Adding a channel is a folder and one line in that list.

Two kinds of inbound adapter share one policy each, as python-telegram-bot's handlers do:
a final public method owns the policy and calls abstract `do_*` hooks.

- `WebhookAdapter.handle` (the provider calls us): authenticate first, on the raw request
  (403, nothing parsed); then parse, pure (400 for malformed input; `Unsupported` for input
  that is valid but not for us: 200, nothing stored, counted); then store in one transaction;
  then acknowledge, only after the commit, so a provider that gets no answer re-delivers and
  the channel's unique keys make the re-delivery store nothing twice.
- `PollingAdapter.run` (we call the provider): one poller per account across server
  processes (a PostgreSQL advisory lock held on a connection of its own), the account read
  afresh with its secrets decrypted before each connection (a key that cannot read them is
  that account's error, never a crash), backoff with full jitter on failure, supervision (a
  failure is recorded on the account and retried, never ends the task), health (`status`,
  and the account's `last_success_at`/`last_error`). `CursorPoller` is the common case:
  fetch items after a cursor, parse each (pure), commit each with the cursor moved past it.
  `channels/pollers.py` starts and stops the pollers of every channel as accounts change.

The same pure parser serves a channel's webhook and its poller (Home Assistant's rule).
Outbound delivery stays `core.outbox.Sender`. Adapters get what they use as arguments
(`ChannelServices`), never from globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, final

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.calls import CallControls
from core.channel_accounts import (
    AccountView,
    HeardFrom,
    load_cursor_state,
    record_account_error,
    record_account_success,
    save_cursor_state,
    storing_heard_from,
    view_of,
    view_without_secrets,
)
from core.channels import ChannelFacts
from core.credentials import CredentialCipher
from core.db import SessionFactory, asyncpg_dsn, transaction
from core.errors import Conflict
from core.events import EventBus
from core.ingest import IngestPolicy
from core.logfields import log_fields
from core.models import ChannelAccount, QuarantinedMessage, utcnow
from core.outbox import Sender, backoff_seconds
from core.settings import Settings
from core.storage import AttachmentStore
from core.tasks import CallPlacer

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
# A channel's long-running work: a coroutine function given the app's stop signal, which
# returns soon after it is set, between units of work (core/workers.py).
BackgroundWork = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class QueueHours(Protocol):
    """Whether a queue takes work at `now` by its business hours (routing knows them; the
    application hands channels this question, so no channel imports routing)."""

    async def __call__(self, session: AsyncSession, queue_id: int | None, now: datetime) -> bool:
        """True when open (a queue without hours, or no queue, is always open)."""


async def always_open(session: AsyncSession, queue_id: int | None, now: datetime) -> bool:
    return True


@dataclass(frozen=True)
class Telephony:
    """What a channel that carries calls gives the console."""

    calls: CallControls
    placer: CallPlacer


@dataclass(frozen=True)
class ChannelServices:
    """What adapters may use, handed to them by the application."""

    sessions: SessionFactory
    bus: EventBus
    store: AttachmentStore
    policy: IngestPolicy
    cipher: CredentialCipher
    settings: Settings
    queue_hours: QueueHours = always_open
    # Which accounts' webhook successes this process wrote lately (None: write every time).
    heard: HeardFrom | None = None


# --- webhooks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's request as the web layer received it; adapters never see aiohttp.

    `url` is the address the provider called, as the provider saw it (built from the
    configured `public_url` when there is one: signatures cover that address, not the one a
    reverse proxy forwarded to).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    remote: str | None = None

    def form(self) -> dict[str, str]:
        """The body as `application/x-www-form-urlencoded` fields (the last of repeats);
        Malformed if it cannot be read as such."""
        from urllib.parse import parse_qsl

        try:
            return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"the body is not form-encoded UTF-8: {exc}") from None

    def json(self) -> Any:
        """The body as JSON; Malformed if it is not."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Malformed(f"the body is not JSON: {exc}") from None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == lowered), None)


@dataclass(frozen=True)
class WebhookReply:
    """What the web layer answers the provider, and how the request ended (for metrics)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    outcome: str = "stored"

    @classmethod
    def json(cls, status: int, data: Any, outcome: str) -> WebhookReply:
        return cls(status, json.dumps(data).encode(), "application/json", outcome)


class Malformed(Exception):
    """The request is not what the provider documents (a 400): nothing is stored."""


@dataclass(frozen=True)
class Unsupported:
    """Valid input the channel does not handle (an event type it ignores): 200, counted."""

    reason: str


@dataclass(frozen=True)
class Parsed(Generic[ItemT]):
    """What a parser made of one request or one polled item."""

    items: Sequence[ItemT]


class WebhookAdapter(ABC, Generic[ItemT]):
    """One webhook of a channel: `POST /hooks/{channel}/{account}/{hook}`.

    `entered_by_admin`: an admin enters this address at the provider (the account lists it);
    False for addresses omnicrm hands the provider itself (a call's next step)."""

    hook: ClassVar[str]
    entered_by_admin: ClassVar[bool] = True

    @final
    async def handle(
        self, request: WebhookRequest, account: AccountView, services: ChannelServices
    ) -> WebhookReply:
        """Authenticate, parse, store, acknowledge; in that order, each only if the one before
        succeeded. The acknowledgement is sent after the commit."""
        if not self.do_authenticate(request, account):
            return WebhookReply.json(
                403, _error("forbidden", "the request is not signed for this account"), "forbidden"
            )
        try:
            parsed = self.do_parse(request, account)
        except Malformed as exc:
            return WebhookReply.json(400, _error("malformed", str(exc)), "malformed")
        if isinstance(parsed, Unsupported):
            log.info(
                "webhook input ignored",
                extra=log_fields(channel=account.channel, account=account.name, why=parsed.reason),
            )
            return self.do_acknowledge(None, "unsupported")
        # Health: an account whose webhooks arrive works (shown by /healthz).
        async with storing_heard_from(services.sessions, account.id, services.heard) as session:
            outcome = await self.do_store(session, parsed, account, services)
        return self.do_acknowledge(outcome, "stored")

    @abstractmethod
    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        """Whether the provider signed this request for `account` (constant-time compare)."""

    @abstractmethod
    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[ItemT] | Unsupported:
        """Pure: the items of a request, `Unsupported`, or raise Malformed."""

    @abstractmethod
    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[ItemT],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        """Store the items in the caller's transaction; returns what `do_acknowledge` needs."""

    def do_acknowledge(self, outcome: Any, how: str) -> WebhookReply:
        """The answer the provider expects (JSON by default; Twilio wants TwiML)."""
        return WebhookReply.json(200, {"status": "ok"}, how)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": {}}}


# --- pollers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollOptions:
    """Timing of a poller; tests shorten them."""

    poll_seconds: float = 5.0
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 300.0
    # A poller on standby waits in the database's queue for the account's lock, so it takes
    # over the moment the polling process lets go (or dies); it looks at `stop` this often.
    lock_wait_seconds: float = 1.0
    # How often a poller that keeps succeeding writes that down (its health on the account).
    success_record_seconds: float = 60.0


@dataclass
class PollerStatus:
    """A poller's state for metrics and tests; updated as it runs (this process only).

    `state` is starting, standby (another process polls), backoff, stopped, or what the
    channel's `do_serve` says it is doing; `counters` count items by outcome (a CursorPoller
    counts "stored" and "unsupported", the IMAP poller "stored", "duplicate" and
    "quarantined"), `errors` the rounds that failed."""

    channel: str
    account_id: int
    account: str
    state: str = "starting"
    errors: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def counted(self, name: str) -> int:
        return self.counters.get(name, 0)

    @property
    def failing(self) -> bool:
        """Whether the last attempt was an error."""
        return self.last_error_at is not None and (
            self.last_success_at is None or self.last_error_at >= self.last_success_at
        )


class AccountGone(Exception):
    """The account was deleted or disabled: the poller ends."""


class LockLost(Exception):
    """The connection holding the account's advisory lock broke: another process may poll."""


MAX_ERROR = 1000


class PollingAdapter(ABC):
    """Polls one account until stopped; survives provider, network and database failures.

    `account` names the account; its settings are read again, with the `secret_fields`
    decrypted, before each connection, so `self.account` in `do_serve` is current (an
    account disabled or deleted meanwhile ends the poller)."""

    def __init__(
        self,
        account: AccountView,
        services: ChannelServices,
        options: PollOptions | None = None,
        *,
        secret_fields: Iterable[str] = (),
    ) -> None:
        self.account = account
        self.services = services
        self.options = options or PollOptions()
        self.secret_fields = frozenset(secret_fields)
        self.status = PollerStatus(account.channel, account.id, account.name)
        self._stop = asyncio.Event()
        self._failures = 0
        self._lock_connection: Any = None
        self._recorded_success_at: float | None = None
        self._error_recorded = False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_signal(self) -> asyncio.Event:
        """Set when the poller is told to stop: for waits of the channel's own (IDLE)."""
        return self._stop

    def stop(self) -> None:
        """Finish the item in hand and end `run`."""
        self._stop.set()

    @final
    async def run(self) -> None:
        """Poll until stopped (or cancelled, or the account is gone)."""
        try:
            while not self._stop.is_set():
                try:
                    async with self._exclusive() as mine:
                        if not mine:  # stopped while on standby
                            continue
                        self.status.state = "connecting"
                        self.account = await self._load_account()
                        await self.do_serve()
                except AccountGone:
                    return
                except Exception as exc:
                    self._failures += 1
                    await self._failed(exc)
                    self.status.state = "backoff"
                    await self.pause(
                        backoff_seconds(
                            min(self._failures, 32),
                            base=self.options.backoff_base_seconds,
                            cap=self.options.backoff_cap_seconds,
                        )
                    )
        finally:
            self.status.state = "stopped"

    @abstractmethod
    async def do_serve(self) -> None:
        """Connect and poll until `stopping`; call `succeeded()` after each good round and
        `check_lock()` before each; raise on failure (recorded, retried with backoff)."""

    async def _load_account(self) -> AccountView:
        """The account as it is now, secrets decrypted (CredentialError names one no
        configured key reads: recorded and retried like any failure)."""
        async with self.services.sessions() as session:
            row = await session.get(ChannelAccount, self.account.id, populate_existing=True)
        if row is None or not row.enabled:
            raise AccountGone(f"{self.account.label} is deleted or disabled")
        return view_of(row, self.services.cipher, self.secret_fields)

    async def current(self, session: AsyncSession) -> AccountView:
        """The account as `session` sees it now (without its secrets): for what may change
        between connections, such as its queue. AccountGone once it is disabled."""
        row = await session.get(ChannelAccount, self.account.id, populate_existing=True)
        if row is None or not row.enabled:
            raise AccountGone(f"{self.account.label} is deleted or disabled")
        return view_without_secrets(row, self.secret_fields)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def check_lock(self) -> None:
        """Raise LockLost if the connection holding this account's lock broke."""
        if self._lock_connection is None:
            return
        try:
            await self._lock_connection.fetchval("SELECT 1", timeout=10)
        except Exception as exc:
            raise LockLost(f"lost the connection holding the account lock: {exc}") from exc

    async def succeeded(self) -> None:
        """A good round: reset the backoff, and note it on the account now and then."""
        now = utcnow()
        self._failures = 0
        self.status.last_success_at = now
        loop_time = asyncio.get_running_loop().time()
        due = (
            self._recorded_success_at is None
            or loop_time - self._recorded_success_at >= self.options.success_record_seconds
        )
        if not (due or self._error_recorded):
            return
        async with transaction(self.services.sessions) as session:
            await record_account_success(session, self.account.id, now)
        self._recorded_success_at = loop_time
        self._error_recorded = False

    async def _failed(self, exc: Exception) -> None:
        now = utcnow()
        reason = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:MAX_ERROR]
        self.status.errors += 1
        self.status.last_error = reason
        self.status.last_error_at = now
        log.warning(
            "poller failed; will retry",
            extra=log_fields(
                channel=self.account.channel,
                account=self.account.name,
                error=reason,
                failures=self._failures,
            ),
        )
        try:
            async with transaction(self.services.sessions) as session:
                await record_account_error(session, self.account.id, reason, now)
            self._error_recorded = True
        except Exception as db_exc:
            log.warning(
                "could not record the poller error",
                extra=log_fields(account_id=self.account.id, error=str(db_exc)),
            )

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """Whether this process may poll the account: on PostgreSQL while it holds the
        account's advisory lock, on a connection of its own outside the pool (closing it is
        what releases the lock, whatever happened); SQLite runs one process."""
        engine = _engine_of(self.services.sessions)
        if engine.dialect.name != "postgresql":
            yield True
            return
        import asyncpg

        connection = await asyncpg.connect(asyncpg_dsn(engine.url), timeout=30)
        try:
            mine = await self._wait_for_lock(connection)
            self._lock_connection = connection if mine else None
            yield mine
        finally:
            self._lock_connection = None
            connection.terminate()

    async def _wait_for_lock(self, connection: Any) -> bool:
        """Take the account's advisory lock, waiting in PostgreSQL's lock queue while another
        process holds it ("standby"): granted the moment that process lets go or its connection
        dies. The wait is cut into `lock_wait_seconds` slices (`lock_timeout`) so that a stop
        is noticed; False when stopped before it was granted."""
        import asyncpg

        key = advisory_lock_key(self.account)
        if await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return True
        self.status.state = "standby"
        milliseconds = max(1, int(self.options.lock_wait_seconds * 1000))
        await connection.execute(f"SET lock_timeout = {milliseconds}")
        while not self._stop.is_set():
            try:
                await connection.execute("SELECT pg_advisory_lock($1)", key)
            except asyncpg.LockNotAvailableError:
                continue
            return True
        return False


def advisory_lock_key(account: AccountView) -> int:
    """A signed 64-bit key for pg_advisory_lock, specific to one account's poller."""
    digest = hashlib.sha256(f"omnicrm:poller:{account.channel}:{account.id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class CursorPoller(PollingAdapter, Generic[ItemT]):
    """A poller of a provider that hands out items after a cursor (Telegram's getUpdates).

    Each item is parsed (pure, the webhook's parser) and stored in a transaction that also
    moves the cursor past it, so a crash either redoes an item (stopped by the channel's
    unique keys) or has nothing left to do.
    """

    @final
    async def do_serve(self) -> None:
        self.status.state = "polling"
        channel, account_id = self.account.channel, self.account.id
        while not self._stop.is_set():
            await self.check_lock()
            async with self.services.sessions() as session:
                cursor = await load_cursor_state(session, channel, account_id)
            items, after = await self.do_fetch(cursor)
            for item, moved in zip(items, after, strict=True):
                if self._stop.is_set():
                    return
                parsed = self.do_parse(item)
                async with transaction(self.services.sessions) as session:
                    if not isinstance(parsed, Unsupported):
                        await self.do_store(session, parsed)
                        self.status.count("stored")
                    else:
                        self.status.count("unsupported")
                    await save_cursor_state(session, channel, account_id, moved)
            await self.succeeded()
            if not items:
                await self.pause(self.options.poll_seconds)

    @abstractmethod
    async def do_fetch(
        self, cursor: Mapping[str, Any] | None
    ) -> tuple[Sequence[ItemT], Sequence[Mapping[str, Any]]]:
        """The next items after `cursor`, and for each the cursor that lies past it (waits
        for items as long as the provider allows: long polling)."""

    @abstractmethod
    def do_parse(self, item: ItemT) -> Parsed[Any] | Unsupported:
        """Pure: what an item holds (Malformed items are the provider's bug: raise)."""

    @abstractmethod
    async def do_store(self, session: AsyncSession, parsed: Parsed[Any]) -> None:
        """Store in the caller's transaction."""


def _engine_of(sessions: SessionFactory) -> AsyncEngine:
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory is not bound to an AsyncEngine")
    return bind


# --- templates ------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")


@dataclass(frozen=True)
class MessageTemplate:
    """A pre-approved message a channel may send outside its reply window (WhatsApp's).

    `text` reads as the customer will see it, with {{1}}, {{2}}… where the values of
    `variables` (their labels, {{1}} first) go; `provider` holds what the sender needs to
    name it to the provider (Twilio's ContentSid)."""

    name: str
    text: str
    variables: tuple[str, ...] = ()
    provider: Mapping[str, Any] = field(default_factory=dict)

    def fill(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What a reply with this template carries: its name, the text with the values in,
        the values by number and the provider's fields; InvalidInput naming a value missing
        or unknown."""
        from core.errors import InvalidInput

        expected = {str(index) for index in range(1, len(self.variables) + 1)}
        unknown = sorted(set(values) - expected)
        if unknown:
            raise InvalidInput(
                f"template {self.name} has no variable {', '.join(unknown)}", field="variables"
            )
        filled = {str(key): str(value).strip() for key, value in values.items()}
        missing = [
            f"{{{{{index}}}}} ({label})"
            for index, label in enumerate(self.variables, start=1)
            if not filled.get(str(index))
        ]
        if missing:
            raise InvalidInput(
                f"template {self.name} needs {', '.join(missing)}", field="variables"
            )
        if any(len(value) > 1000 for value in filled.values()):
            raise InvalidInput("a template value is at most 1000 characters", field="variables")
        text = _PLACEHOLDER.sub(lambda match: filled.get(match.group(1), match.group(0)), self.text)
        return {
            **self.provider,
            "name": self.name,
            "text": text or self.name,
            "variables": filled,
        }


# --- the channel ----------------------------------------------------------------------------------


class Channel(ABC):
    """A channel: its facts, its accounts' settings, and the adapters it brings.

    `settings_model` validates an account's settings (None: the channel has no accounts, e.g.
    web forms, whose forms are their own records); `secret_fields` name the settings stored
    encrypted and never shown. The default hooks bring nothing.
    """

    facts: ClassVar[ChannelFacts]
    settings_model: ClassVar[type[BaseModel] | None] = None
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # How an admin downloads a quarantined item (GET /api/v1/quarantine/{id}/raw).
    quarantine_media_type: ClassVar[str] = "application/octet-stream"
    quarantine_extension: ClassVar[str] = "bin"

    @property
    def name(self) -> str:
        return self.facts.name

    def webhooks(self) -> Sequence[WebhookAdapter[Any]]:
        """The webhooks providers call for this channel's accounts."""
        return ()

    def sender(self, services: ChannelServices) -> Sender | None:
        """The sender of this channel's outbox items; None for a channel that cannot send."""
        return None

    def embed(self, account: str, base_url: str) -> str | None:
        """What an admin pastes into the company's website for `account`, for channels that
        show on one (the chat widget's script tag); `base_url` is omnicrm's public address."""
        return None

    def poller(self, account: AccountView, services: ChannelServices) -> PollingAdapter | None:
        """The poller of an account, for channels that fetch their input."""
        return None

    def telephony(self, services: ChannelServices) -> Telephony | None:
        """For a channel that carries phone calls: what the console may do with them (hold,
        resume, hang up) and how a task's "call back" is placed."""
        return None

    def background(self, services: ChannelServices) -> Sequence[BackgroundWork]:
        """Work the channel runs while the server runs its background workers (Twilio's
        media downloads): coroutine functions that run until the stop signal they are given
        is set."""
        return ()

    async def templates(
        self, services: ChannelServices, conversation_id: int | None
    ) -> Sequence[MessageTemplate]:
        """The templates an answer in this conversation may use (channels with TEMPLATES)."""
        return ()

    async def verify_settings(
        self, settings: Mapping[str, Any], changed: frozenset[str]
    ) -> dict[str, Any]:
        """An account's validated settings, checked with the provider before they are saved
        (`changed`: the fields an admin gave; all of them for a new account), and what the
        provider told about it added (Telegram: the bot's username). InvalidInput naming the
        field at fault (a token the provider refuses). By default: nothing to verify."""
        return dict(settings)

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        """Try the account's connection and credentials; a line saying what worked, or raise
        with what did not. Channels without a provider have nothing to check."""
        return "nothing to check"

    def describe_quarantined(self, raw: bytes) -> tuple[str, str]:
        """(sender, subject) of a quarantined item as its raw bytes state them, for an
        admin's list; best effort, never raises ("" for what the channel cannot say)."""
        return "", ""

    async def retry_quarantined(
        self,
        session: AsyncSession,
        row: QuarantinedMessage,
        account: AccountView,
        services: ChannelServices,
    ) -> None:
        """Import a quarantined item again through the channel's own path, in the caller's
        transaction, recording the outcome on `row` (ingested, or held with the new reason).
        A channel that quarantines nothing has nothing to retry: 409."""
        raise Conflict(f"channel {self.name!r} cannot retry quarantined input")

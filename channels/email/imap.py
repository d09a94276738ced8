"""The IMAP poller: one supervised task per mailbox that brings its new mail into ingest.

Exactly once, across restarts and outages:
- A cursor per mailbox (UIDVALIDITY and the last UID handled) is committed in the same
  transaction as the interaction (or quarantine row) of the message it covers; after a
  restart, a dropped connection or a long outage the poller asks for every UID above it.
- A new or changed UIDVALIDITY re-scans the folder within the backfill window; messages
  seen before (the same Message-ID and content digest, see channels.email.inbound) are
  skipped and counted as duplicates.
- Flags and moves on the server (after_import) happen only after that commit.
- On PostgreSQL the poller holds an advisory lock per mailbox on a connection of its own,
  so several server processes run one poller per mailbox between them.

New mail is noticed with IDLE where the server offers it, else by polling.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

import aioimaplib
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from channels.email.inbound import CHANNEL, ImportStatus, import_message
from channels.email.message import DEFAULT_MAX_ATTACHMENT_BYTES
from core.credentials import CredentialCipher
from core.db import SessionFactory, transaction
from core.ingest import IngestPolicy
from core.logfields import log_fields
from core.models import AfterImport, ChannelCursor, Mailbox, TlsMode, utcnow
from core.outbox import backoff_seconds
from core.storage import AttachmentStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_INTERNALDATE = re.compile(
    r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Past this a Dovecot/Gmail/Exchange connection in IDLE may be dropped (RFC 2177: 29 min).
IDLE_RENEW_SECONDS = 25 * 60
MAX_ERROR = 2000


class ImapError(Exception):
    """The IMAP server refused a command, answered nonsense, or the connection dropped."""


class LockLost(Exception):
    """The connection holding this mailbox's advisory lock is gone; another process may poll."""


class MailboxGone(Exception):
    """The mailbox was deleted or deactivated: its poller ends."""


# --- the IMAP connection ---------------------------------------------------------------------


def encode_folder(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    encoded: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            encoded.append(
                "&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-"
            )
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    quoted = "".join(encoded).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'


def imap_date(day: date) -> str:
    """A SEARCH date (e.g. 1-Feb-2024), in English whatever the locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def parse_internaldate(value: str) -> datetime | None:
    found = _INTERNALDATE.match(value)
    if found is None or found.group(2).title() not in _MONTHS:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = found.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        moment = datetime(
            int(year),
            _MONTHS.index(month.title()) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None
    return moment.astimezone(UTC)


def uid_set(uids: Iterable[int]) -> str:
    """A compact UID set, e.g. 1:3,7,9:10."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    start = previous = ordered[0] if ordered else 0
    for uid in ordered[1:]:
        if uid != previous + 1:
            ranges.append(f"{start}:{previous}" if previous > start else str(start))
            start = uid
        previous = uid
    if ordered:
        ranges.append(f"{start}:{previous}" if previous > start else str(start))
    return ",".join(ranges)


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    # None when the server does not say (it should, RFC 3501).
    uidnext: int | None


@dataclass(frozen=True)
class FetchedMessage:
    raw: bytes
    internal_date: datetime | None


class ImapClient:
    """The few commands the poller needs, over aioimaplib, failing fast on a dropped line.

    aioimaplib leaves a command waiting when the connection drops; every command here also
    waits for the connection-lost signal and raises ImapError then.
    """

    def __init__(self, client: Any, lost: asyncio.Event) -> None:
        self._client = client
        self._lost = lost
        self._new_mail = asyncio.Event()
        # aioimaplib drops an EXISTS that arrives while a command other than IDLE or NOOP
        # runs; every untagged line passes here first, so none is missed.
        protocol = client.protocol
        untagged = protocol._untagged_response

        def watch(line: bytes) -> Any:
            if line.endswith(b" EXISTS"):
                self._new_mail.set()
            return untagged(line)

        protocol._untagged_response = watch

    @classmethod
    async def connect(
        cls,
        *,
        host: str,
        port: int,
        tls: str,
        user: str,
        password: str,
        command_timeout_seconds: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> ImapClient:
        """Connect (implicit TLS, STARTTLS or plain) and log in."""
        lost = asyncio.Event()
        mode = TlsMode(tls)
        context = ssl_context or ssl.create_default_context()
        client = aioimaplib.IMAP4(
            host=host,
            port=port,
            timeout=command_timeout_seconds,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=context if mode is TlsMode.SSL else None,
        )
        connection = cls(client, lost)
        try:
            await connection._guard(client.wait_hello_from_server())
            if mode is TlsMode.STARTTLS:
                await connection._starttls(host, context)
            response = await connection._guard(client.login(user, password))
            if response.result != "OK":
                raise ImapError(f"login failed: {_text(response)}")
            # The LOGIN answer's capability list is not reliably parsed by aioimaplib.
            await connection._guard(client.protocol.capability())
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _starttls(self, host: str, context: ssl.SSLContext) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._guard(protocol.execute(command))
        if response.result != "OK":
            raise ImapError(f"STARTTLS failed: {_text(response)}")
        loop = asyncio.get_running_loop()
        protocol.transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=host
        )
        # Capabilities told before TLS must not be trusted (RFC 3501 6.2.1).
        await self._guard(protocol.capability())

    def has(self, capability: str) -> bool:
        return bool(self._client.has_capability(capability))

    async def _guard(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, or raise ImapError as soon as the connection drops."""
        work = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not work.done():
                work.cancel()
                work.add_done_callback(_consume)
        if work.cancelled():
            raise ImapError("the connection to the IMAP server was lost")
        try:
            return work.result()
        except (TimeoutError, aioimaplib.CommandTimeout) as exc:
            raise ImapError("the IMAP server did not answer in time") from exc
        except aioimaplib.AioImapException as exc:
            raise ImapError(f"IMAP protocol error: {exc}") from exc

    async def _command(self, name: str, awaitable: Awaitable[Any]) -> Any:
        response = await self._guard(awaitable)
        if response.result != "OK":
            raise ImapError(f"{name} failed: {_text(response)}")
        return response

    async def select(self, folder: str) -> FolderState:
        response = await self._command("SELECT", self._client.select(encode_folder(folder)))
        lines = [line for line in response.lines if isinstance(line, bytes)]
        uidvalidity = _search_lines(_UIDVALIDITY, lines)
        if uidvalidity is None:
            raise ImapError(f"SELECT {folder} answered without UIDVALIDITY")
        return FolderState(uidvalidity, _search_lines(_UIDNEXT, lines))

    async def noop(self) -> None:
        await self._command("NOOP", self._client.noop())

    async def search(self, *criteria: str) -> list[int]:
        """UID SEARCH; the UIDs found, ascending."""
        response = await self._command(
            "UID SEARCH", self._client.uid_search(*criteria, charset=None)
        )
        # The last line is the tagged completion text ("Search completed (0.001 secs)").
        found = b" ".join(line for line in response.lines[:-1] if isinstance(line, bytes))
        return sorted({int(token) for token in found.split() if token.isdigit()})

    async def fetch(self, uids: Sequence[int]) -> dict[int, FetchedMessage]:
        """The messages' bytes (BODY.PEEK, so \\Seen stays as it was) and INTERNALDATEs."""
        response = await self._command(
            "UID FETCH",
            self._client.uid("fetch", uid_set(uids), "(UID INTERNALDATE BODY.PEEK[])"),
        )
        return _parse_fetch(response.lines)

    async def add_flags(self, uids: Sequence[int], flags: str) -> None:
        await self._command(
            "UID STORE", self._client.uid("store", uid_set(uids), "+FLAGS.SILENT", f"({flags})")
        )

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """UID MOVE, or COPY + \\Deleted + EXPUNGE where MOVE is missing; creates `folder`."""
        target = encode_folder(folder)
        try:
            await self._move(uids, target)
        except ImapError as exc:
            if "TRYCREATE" not in str(exc):
                raise
            await self._command("CREATE", self._client.create(target))
            await self._move(uids, target)

    async def _move(self, uids: Sequence[int], target: str) -> None:
        wanted = uid_set(uids)
        if self.has("MOVE"):
            await self._command("UID MOVE", self._client.uid("move", wanted, target))
            return
        await self._command("UID COPY", self._client.uid("copy", wanted, target))
        await self._command(
            "UID STORE", self._client.uid("store", wanted, "+FLAGS.SILENT", r"(\Deleted)")
        )
        if self.has("UIDPLUS"):
            await self._command("UID EXPUNGE", self._client.uid("expunge", wanted))
        else:
            # Also removes what others marked deleted: what any client's "compact" does.
            await self._command("EXPUNGE", self._client.expunge())

    def forget_new_mail(self) -> None:
        """Called before a search: what the server announced so far, the search will find."""
        self._new_mail.clear()

    async def idle(self, seconds: float, stop: asyncio.Event) -> bool:
        """IDLE until new mail arrives (True), or `seconds` pass or `stop` is set (False).

        Mail announced since the last search counts too: the server tells of a message once,
        possibly while another command runs, and would not repeat it in IDLE.
        """
        if self._new_mail.is_set():
            return True
        # Our own deadline ends the IDLE; aioimaplib's timer must not fire before it.
        idle = await self._guard(self._client.idle_start(timeout=seconds + 60))
        waiters = {asyncio.ensure_future(self._new_mail.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await self._guard(
                asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._client.idle_done()
        response = await self._guard(asyncio.wait_for(idle, 30))
        if response.result != "OK":
            raise ImapError(f"IDLE failed: {_text(response)}")
        # aioimaplib queues what the server pushed during IDLE; the event above said enough.
        queue = self._client.protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()
        return self._new_mail.is_set()

    async def logout(self) -> None:
        """Say goodbye if the line is still up, then close it."""
        try:
            # In IDLE (when cancelled there) LOGOUT would wait behind it: just hang up.
            if not self._lost.is_set() and not self._client.has_pending_idle():
                await asyncio.wait_for(self._guard(self._client.logout()), 5)
        except (ImapError, TimeoutError, OSError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the connection at once."""
        self._client._client_task.cancel()
        transport = self._client.protocol.transport
        if transport is not None:
            transport.abort()
        for task in list(self._client.tasks) + list(self._client.protocol.tasks):
            task.cancel()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _text(response: Any) -> str:
    lines = [bytes(line) for line in response.lines if isinstance(line, bytes | bytearray)]
    return b" ".join(lines).decode("utf-8", "replace")[:500] or str(response.result)


def _search_lines(pattern: re.Pattern[bytes], lines: Iterable[bytes]) -> int | None:
    for line in lines:
        found = pattern.search(line)
        if found:
            return int(found.group(1))
    return None


def _parse_fetch(lines: Sequence[Any]) -> dict[int, FetchedMessage]:
    """UID -> message from a UID FETCH answer; each message is a header line, its literal and
    a closing line (where some servers put the UID)."""
    messages: dict[int, FetchedMessage] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not isinstance(line, bytes) or not _FETCH_START.match(line):
            continue
        if index >= len(lines) or not isinstance(lines[index], bytearray):
            continue  # an unsolicited FETCH (e.g. a flag change), without a body
        raw = bytes(lines[index])
        index += 1
        closing = lines[index] if index < len(lines) and isinstance(lines[index], bytes) else b""
        uid = _FETCH_UID.search(line) or _FETCH_UID.search(closing)
        if uid is None:
            raise ImapError("the server answered FETCH without the UID")
        internal = _FETCH_INTERNALDATE.search(line) or _FETCH_INTERNALDATE.search(closing)
        messages[int(uid.group(1))] = FetchedMessage(
            raw,
            parse_internaldate(internal.group(1).decode("ascii", "replace")) if internal else None,
        )
    return messages


# --- the cursor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a mailbox's import stands. During the first scan of a folder (a backfill),
    messages up to `backfill_until_uid` count only if they arrived on or after
    `backfill_since`; everything above was new when the scan began and always counts."""

    uidvalidity: int
    last_uid: int
    backfill_since: date | None = None
    backfill_until_uid: int | None = None

    @property
    def backfilling(self) -> bool:
        return self.backfill_until_uid is not None and self.last_uid < self.backfill_until_uid

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"uidvalidity": self.uidvalidity, "last_uid": self.last_uid}
        if self.backfilling and self.backfill_since is not None:
            state["backfill"] = {
                "since": self.backfill_since.isoformat(),
                "until_uid": self.backfill_until_uid,
            }
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Cursor | None:
        """None for a state that is missing or not understood: the folder is scanned anew."""
        try:
            backfill = state.get("backfill")
            return cls(
                uidvalidity=int(state["uidvalidity"]),
                last_uid=int(state["last_uid"]),
                backfill_since=date.fromisoformat(backfill["since"]) if backfill else None,
                backfill_until_uid=int(backfill["until_uid"]) if backfill else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


async def load_cursor(session: AsyncSession, mailbox_id: int) -> Cursor | None:
    state = await session.scalar(
        select(ChannelCursor.state).where(
            ChannelCursor.channel == CHANNEL, ChannelCursor.account == str(mailbox_id)
        )
    )
    return Cursor.from_state(state) if state is not None else None


async def save_cursor(session: AsyncSession, mailbox_id: int, cursor: Cursor) -> None:
    row = await session.scalar(
        select(ChannelCursor).where(
            ChannelCursor.channel == CHANNEL, ChannelCursor.account == str(mailbox_id)
        )
    )
    if row is None:
        session.add(
            ChannelCursor(channel=CHANNEL, account=str(mailbox_id), state=cursor.to_state())
        )
    else:
        stored = Cursor.from_state(row.state)
        if (
            stored is not None
            and stored.uidvalidity == cursor.uidvalidity
            and stored.last_uid > cursor.last_uid
        ):
            # Within one UIDVALIDITY the cursor only moves forward, even if a poller that
            # lost its lock unnoticed still writes.
            return
        row.state = cursor.to_state()
    await session.flush()


# --- the poller -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollerOptions:
    """Tuning that is not per mailbox; tests shorten the waits."""

    batch_size: int = 20
    command_timeout_seconds: float = 60.0
    idle_renew_seconds: float = IDLE_RENEW_SECONDS
    # Reconnects after failures wait up to base, 2*base, ... seconds (with jitter), up to cap.
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 300.0
    # How often a process without the mailbox's lock asks for it again.
    lock_retry_seconds: float = 10.0
    # last_success_at is written at least this often while all goes well.
    success_record_seconds: float = 60.0
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    ssl_context: ssl.SSLContext | None = None


@dataclass
class PollerStatus:
    """What a poller is doing, for /healthz and metrics."""

    mailbox_id: int
    # starting, standby (another process polls), connecting, syncing, idle, polling,
    # backoff, stopped
    state: str = "starting"
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_error_at", "last_success_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data


def advisory_lock_key(mailbox_id: int) -> int:
    """A signed 64-bit key for pg_advisory_lock, specific to this mailbox's poller."""
    digest = hashlib.sha256(f"omnicrm:email-poller:{mailbox_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class MailboxPoller:
    """Imports one mailbox's mail until stopped; survives server and network failures."""

    def __init__(
        self,
        sessions: SessionFactory,
        mailbox_id: int,
        store: AttachmentStore,
        policy: IngestPolicy,
        options: PollerOptions | None = None,
        *,
        cipher: CredentialCipher,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self.mailbox_id = mailbox_id
        self._store = store
        self._policy = policy
        self.options = options or PollerOptions()
        self.status = PollerStatus(mailbox_id)
        self._stop = asyncio.Event()
        self._failures = 0
        self._lock_connection: Any = None
        self._recorded_success_at: float | None = None
        self._error_recorded = False

    def stop(self) -> None:
        """Finish the message in hand and end `run`."""
        self._stop.set()

    async def run(self) -> None:
        """Poll until stopped (or cancelled, or the mailbox is deleted or deactivated)."""
        try:
            while not self._stop.is_set():
                try:
                    async with self._exclusive() as mine:
                        if not mine:
                            self.status.state = "standby"
                            await self._pause(_jittered(self.options.lock_retry_seconds))
                            continue
                        await self._serve()
                except MailboxGone:
                    return
                except Exception as exc:
                    self._failures += 1
                    await self._failed(exc)
                    self.status.state = "backoff"
                    await self._pause(
                        backoff_seconds(
                            # Bounded: 2**n must stay a float through a week-long outage.
                            min(self._failures, 32),
                            base=self.options.backoff_base_seconds,
                            cap=self.options.backoff_cap_seconds,
                        )
                    )
        finally:
            self.status.state = "stopped"

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """Whether this process may poll the mailbox: on PostgreSQL while it holds the
        mailbox's advisory lock, on a connection of its own outside the pool (closing it is
        what releases the lock, whatever happened)."""
        engine = _engine_of(self._sessions)
        if engine.dialect.name != "postgresql":
            yield True
            return
        import asyncpg

        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn, timeout=self.options.command_timeout_seconds)
        try:
            mine = await connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", advisory_lock_key(self.mailbox_id)
            )
            self._lock_connection = connection if mine else None
            yield bool(mine)
        finally:
            self._lock_connection = None
            connection.terminate()

    async def _check_lock(self) -> None:
        if self._lock_connection is None:
            return
        try:
            await self._lock_connection.fetchval("SELECT 1", timeout=10)
        except Exception as exc:
            raise LockLost(f"lost the connection holding the mailbox lock: {exc}") from exc

    async def _load_mailbox(self, session: AsyncSession) -> Mailbox:
        mailbox = await session.get(Mailbox, self.mailbox_id, populate_existing=True)
        if mailbox is None or not mailbox.active:
            raise MailboxGone(f"mailbox {self.mailbox_id} is deleted or inactive")
        return mailbox

    async def _serve(self) -> None:
        """One connection: catch up, then wait for new mail, until stopped or it fails."""
        self.status.state = "connecting"
        async with self._sessions() as session:
            mailbox = await self._load_mailbox(session)
        # Decrypted only now, for the login; a key that cannot read it is this mailbox's error
        # (CredentialError, recorded like any failure, shown by /healthz), not a crash.
        password = self._cipher.decrypt(
            mailbox.imap_password, f"the IMAP password of mailbox {mailbox.name!r}"
        )
        client = await ImapClient.connect(
            host=mailbox.imap_host,
            port=mailbox.imap_port,
            tls=mailbox.imap_tls,
            user=mailbox.imap_user,
            password=password,
            command_timeout_seconds=self.options.command_timeout_seconds,
            ssl_context=self.options.ssl_context,
        )
        try:
            folder = await client.select(mailbox.imap_folder)
            idle = mailbox.use_idle and client.has("IDLE")
            while not self._stop.is_set():
                await self._check_lock()
                self.status.state = "syncing"
                await self._sync(client, mailbox, folder)
                await self._succeeded()
                if self._stop.is_set():
                    break
                if idle:
                    self.status.state = "idle"
                    await client.idle(self.options.idle_renew_seconds, self._stop)
                else:
                    self.status.state = "polling"
                    await self._pause(mailbox.poll_seconds)
                    if not self._stop.is_set():
                        await client.noop()
        finally:
            await client.logout()

    async def _sync(self, client: ImapClient, mailbox: Mailbox, folder: FolderState) -> None:
        """Import everything above the cursor (after a backfill, if one is due)."""
        client.forget_new_mail()
        async with self._sessions() as session:
            cursor = await load_cursor(session, self.mailbox_id)
        if cursor is None or cursor.uidvalidity != folder.uidvalidity:
            cursor = await self._begin_scan(client, mailbox, folder, cursor)
        if cursor.backfilling and cursor.backfill_since is not None:
            uids = await client.search(
                "UID",
                f"{cursor.last_uid + 1}:{cursor.backfill_until_uid}",
                "SINCE",
                imap_date(cursor.backfill_since),
            )
            cursor = await self._import(client, mailbox, cursor, uids)
            if self._stop.is_set():
                return
            # Everything up to the scan's start is handled: what was older is out of window.
            cursor = replace(
                cursor,
                last_uid=max(cursor.last_uid, cursor.backfill_until_uid or 0),
                backfill_since=None,
                backfill_until_uid=None,
            )
            async with transaction(self._sessions) as session:
                await save_cursor(session, self.mailbox_id, cursor)
        # "n:*" always includes the highest UID, even below n (RFC 3501 6.4.8).
        uids = [
            uid
            for uid in await client.search("UID", f"{cursor.last_uid + 1}:*")
            if uid > cursor.last_uid
        ]
        await self._import(client, mailbox, cursor, uids)

    async def _begin_scan(
        self, client: ImapClient, mailbox: Mailbox, folder: FolderState, previous: Cursor | None
    ) -> Cursor:
        """First sight of this folder (or of a new UIDVALIDITY): scan the backfill window."""
        if folder.uidnext is not None:
            horizon = folder.uidnext - 1
        else:
            horizon = max(await client.search("UID", "1:*"), default=0)
        if mailbox.backfill_days > 0:
            since = (utcnow() - timedelta(days=mailbox.backfill_days)).date()
            cursor = Cursor(folder.uidvalidity, 0, since, horizon)
        else:
            cursor = Cursor(folder.uidvalidity, horizon)
        log.info(
            "scanning an IMAP folder",
            extra=log_fields(
                mailbox_id=self.mailbox_id,
                uidvalidity=folder.uidvalidity,
                previous_uidvalidity=previous.uidvalidity if previous else None,
                backfill_days=mailbox.backfill_days,
            ),
        )
        async with transaction(self._sessions) as session:
            await save_cursor(session, self.mailbox_id, cursor)
        return cursor

    async def _import(
        self, client: ImapClient, mailbox: Mailbox, cursor: Cursor, uids: Sequence[int]
    ) -> Cursor:
        """Import `uids` in batches; each message commits with the cursor moved past it."""
        for start in range(0, len(uids), self.options.batch_size):
            if self._stop.is_set():
                break
            batch = uids[start : start + self.options.batch_size]
            fetched = await client.fetch(batch)
            done: list[int] = []
            for uid in batch:
                if self._stop.is_set():
                    break
                cursor = replace(cursor, last_uid=uid)
                status = await self._import_one(cursor, uid, fetched.get(uid))
                if status in (ImportStatus.INGESTED, ImportStatus.DUPLICATE):
                    done.append(uid)
            await self._after_import(client, mailbox, done)
        return cursor

    async def _import_one(
        self, cursor: Cursor, uid: int, message: FetchedMessage | None
    ) -> ImportStatus | None:
        """Import one message and commit `cursor` (moved past it) with it; None if the
        message was expunged between SEARCH and FETCH."""
        status = None
        async with transaction(self._sessions) as session:
            # Read again in each transaction: the target queue may have changed.
            current = await self._load_mailbox(session)
            if message is not None:
                outcome = await import_message(
                    session,
                    current,
                    cursor.uidvalidity,
                    uid,
                    message.raw,
                    self._store,
                    self._policy,
                    received_at=message.internal_date,
                    max_attachment_bytes=self.options.max_attachment_bytes,
                )
                status = outcome.status
            await save_cursor(session, self.mailbox_id, cursor)
        if status is ImportStatus.INGESTED:
            self.status.imported += 1
        elif status is ImportStatus.DUPLICATE:
            self.status.duplicates += 1
        elif status is ImportStatus.QUARANTINED:
            self.status.quarantined += 1
        return status

    async def _after_import(
        self, client: ImapClient, mailbox: Mailbox, imported: list[int]
    ) -> None:
        """Mark or move what was committed; quarantined messages stay where people see them."""
        if not imported:
            return
        action = AfterImport(mailbox.after_import)
        if action is AfterImport.MARK_SEEN:
            await client.add_flags(imported, r"\Seen")
        elif action is AfterImport.MOVE:
            if not mailbox.move_to_folder:
                raise ImapError("after_import is move, but no move_to_folder is set")
            await client.move(imported, mailbox.move_to_folder)

    async def _succeeded(self) -> None:
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
        async with transaction(self._sessions) as session:
            await session.execute(
                update(Mailbox)
                .where(Mailbox.id == self.mailbox_id)
                # Status is not configuration: updated_at stays as the last edit left it.
                .values(last_success_at=now, last_error=None, updated_at=Mailbox.updated_at)
                .execution_options(synchronize_session=False)
            )
        self._recorded_success_at = loop_time
        self._error_recorded = False

    async def _failed(self, exc: Exception) -> None:
        now = utcnow()
        reason = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:MAX_ERROR]
        self.status.errors += 1
        self.status.last_error = reason
        self.status.last_error_at = now
        log.warning(
            "email poller failed; will retry",
            extra=log_fields(mailbox_id=self.mailbox_id, error=reason, failures=self._failures),
        )
        try:
            async with transaction(self._sessions) as session:
                await session.execute(
                    update(Mailbox)
                    .where(Mailbox.id == self.mailbox_id)
                    .values(last_error=reason, last_error_at=now, updated_at=Mailbox.updated_at)
                    .execution_options(synchronize_session=False)
                )
            self._error_recorded = True
        except Exception as db_exc:
            # The database may be what failed; the status above still shows the error.
            log.warning(
                "could not record the poller error",
                extra=log_fields(mailbox_id=self.mailbox_id, error=str(db_exc)),
            )


def _engine_of(sessions: SessionFactory) -> AsyncEngine:
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory must be bound to an AsyncEngine")
    return bind


def _jittered(seconds: float) -> float:
    return random.uniform(seconds * 0.5, seconds * 1.5)

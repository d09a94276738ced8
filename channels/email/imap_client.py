"""The IMAP connection: the few commands the email poller needs, over aioimaplib.

Every command fails fast with ImapError when the connection drops (aioimaplib would leave it
waiting), an EXISTS the server announces during any command is remembered (aioimaplib drops
those outside IDLE), folder names are sent in modified UTF-7, and a UID FETCH answer is read
into the messages' bytes and INTERNALDATEs. No database, no omnicrm state: channels/email/
imap.py drives it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

import aioimaplib

from channels.email.settings import TlsMode

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


class ImapError(Exception):
    """The IMAP server refused a command, answered nonsense, or the connection dropped."""


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

"""Real mail servers for tests: a Dovecot IMAP server per session and an aiosmtpd per test.

Dovecot runs from Debian's dovecot-imapd (`.ci/run` installs it) with a configuration written
here: loopback only, a free port, plaintext login without TLS, a passwd-file per user written
as tests add them, Maildir storage in a temporary directory. Without Dovecot the tests that
use it are skipped with the reason, except under CI=true, where that is a failure.

The SMTP server is aiosmtpd in the test's own event loop. It records what it accepts and can
be scripted to answer the next messages with a 4xx/5xx reply or to drop the connection.

Tests get the fixtures `dovecot` and `smtp_server` through `pytest_plugins =
["tests.mailservers"]`. pytest rewrites the asserts of a plugin module and warns when it was
imported before (a test module importing MailUser first); this one asserts nothing, so:
PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from core.clock import utcnow
from tests.conftest import unavailable
from tests.servers import free_port

HOST = "127.0.0.1"
FAKETIME_LIBRARIES = "/usr/lib/*/faketime/libfaketime.so.1"


def shifted_clock_env() -> dict[str, str]:
    """A mail server keeps its own time (Dovecot stamps INTERNALDATE itself and ignores one in
    the future), so in a suite run at a shifted date (`OMNICRM_TEST_CLOCK_SHIFT_DAYS`, see
    tests/conftest.py) it runs shifted too, under libfaketime (Debian's `faketime`)."""
    days = os.environ.get("OMNICRM_TEST_CLOCK_SHIFT_DAYS")
    if not days:
        return {}
    found = sorted(Path("/").glob(FAKETIME_LIBRARIES.lstrip("/")))
    if not found:
        unavailable("a suite at a shifted date needs libfaketime for Dovecot: apt install faketime")
    return {
        "LD_PRELOAD": str(found[0]),
        "FAKETIME": f"+{round(float(days))}d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "NO_FAKE_STAT": "1",
    }


# Dovecot refuses root for mail access; the mailboxes belong to this unprivileged user.
MAIL_SYSTEM_USER = "nobody"
START_TIMEOUT_SECONDS = 15.0
IMAP_TIMEOUT_SECONDS = 10.0
_SYSTEM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
_LOGIN_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,40}")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_FETCH_INTERNALDATE = re.compile(rb'\bINTERNALDATE ("[^"]*")')
_STATUS_UIDVALIDITY = re.compile(rb"\bUIDVALIDITY (\d+)")


class MailServerError(RuntimeError):
    """A test mail server did not start or refused a command the fixture sent."""


class DovecotMissing(MailServerError):
    """Dovecot is not installed here."""


def _program(name: str) -> str:
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_SYSTEM_DIRS])
    found = shutil.which(name, path=search_path)
    if found is None:
        raise DovecotMissing(
            f"{name} is not installed (Debian package dovecot-imapd; .ci/run installs it)"
        )
    return found


def _quote(mailbox: str) -> str:
    """An IMAP quoted string; imaplib sends mailbox names as given."""
    if not mailbox.isascii() or any(char in mailbox for char in "\r\n"):
        raise ValueError(f"the fixture only handles printable ASCII folder names: {mailbox!r}")
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _checked(result: tuple[str, list[Any]], command: str) -> list[Any]:
    status, data = result
    if status != "OK":
        raise MailServerError(f"IMAP {command} answered {status}: {data!r}")
    return data


@dataclass(frozen=True)
class MailUser:
    """A mailbox on the test Dovecot."""

    login: str
    password: str


@dataclass(frozen=True)
class _StoredMessage:
    raw: bytes
    flags: tuple[str, ...]
    internal_date: str


class DovecotServer:
    """A Dovecot instance of our own: config, runtime files and mail under `root`.

    Every method opens its own IMAP connection and is safe to call from several threads.
    The methods block (briefly, over loopback); an async test that needs its event loop to
    keep running meanwhile calls them through `asyncio.to_thread`.
    """

    host = HOST

    def __init__(self, root: Path, log_path: Path) -> None:
        self.root = root
        self.log_path = log_path
        self.port = free_port()
        self._dovecot = _program("dovecot")
        self._doveadm = _program("doveadm")
        self._config = root / "dovecot.conf"
        self._users_dir = root / "users"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        mail_root = self.root / "mail"
        for directory in (self.root / "run", self.root / "state", self._users_dir, mail_root):
            directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # Dovecot refuses root for mail access: the mail processes run as an
            # unprivileged user, which must reach and own the mail tree.
            try:
                mail_owner = pwd.getpwnam(MAIL_SYSTEM_USER)
            except KeyError:
                raise MailServerError(f"system user {MAIL_SYSTEM_USER!r} is missing") from None
            self.root.chmod(0o755)
            os.chown(mail_root, mail_owner.pw_uid, mail_owner.pw_gid)
            privileges = f"mail_uid = {mail_owner.pw_uid}\nmail_gid = {mail_owner.pw_gid}"
            login_chroot, anvil_chroot = "login", "empty"  # Dovecot's defaults
        else:
            # Without root every Dovecot process runs as us, and none can chroot.
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            privileges = (
                f"default_internal_user = {user}\ndefault_internal_group = {group}\n"
                f"default_login_user = {user}"
            )
            login_chroot = anvil_chroot = ""
        passed_on = " ".join(shifted_clock_env())
        self._config.write_text(
            f"""\
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
instance_name = omnicrm-test-{self.port}
protocols = imap
listen = {HOST}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password in a test answers at once instead of after the default 2 s.
auth_failure_delay = 0
auth_verbose = yes
log_path = {self.log_path}
mail_location = maildir:~/Maildir
# Dovecot clears its processes' environment; a suite at a shifted date passes libfaketime on.
import_environment = TZ CORE_OUTOFMEM CORE_ERROR LISTEN_PID LISTEN_FDS {passed_on}
{privileges}
# Durability does not matter for a throwaway server; speed does (the benchmark appends a lot).
mail_fsync = never
# IDLE normally learns of new mail through inotify; this is the fallback where that fails.
mailbox_idle_check_interval = 1 secs
# A file per user: Dovecot re-reads a changed passwd-file at most once a second, but
# opens a user's file that it has not seen before at once.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self._users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = {self._users_dir}/%u
  default_fields = home={mail_root}/%u
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
# No growing delay after failed logins from 127.0.0.1 (tests try wrong passwords on purpose).
service anvil {{
  chroot = {anvil_chroot}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot = {login_chroot}
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )

    def _write_user(self, user: MailUser) -> None:
        # Written whole under a temporary name, so a login never reads half a file.
        staging = self._users_dir / f".{user.login}.new"
        staging.write_text(f"{user.login}:{{PLAIN}}{user.password}::::::\n")
        # Read by Dovecot's auth process, which runs as its own unprivileged user.
        staging.chmod(0o644)
        staging.replace(self._users_dir / user.login)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Dovecot (on the same port as before) and wait until it greets."""
        if self.running:
            return
        self.stop()  # what is left of an instance that died by itself
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self._dovecot, "-F", "-c", str(self._config)],
                env={**os.environ, **shifted_clock_env()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for stop()
            )
        self._wait_until_greeting(self._process)

    def _wait_until_greeting(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise MailServerError(
                    f"dovecot exited with {process.returncode}; see {self.log_path}:\n"
                    + self._log_tail()
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((HOST, self.port), timeout=1) as probe,
            ):
                if probe.recv(64).startswith(b"* OK"):
                    probe.sendall(b"P LOGOUT\r\n")
                    return
            if time.monotonic() > deadline:
                raise MailServerError(f"dovecot did not answer on {HOST}:{self.port}")
            time.sleep(0.05)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop Dovecot as an outage does: connections drop and new ones are refused."""
        process, self._process = self._process, None
        if process is None:
            return
        # Dovecot's master exits without ending the imap processes that serve connected
        # clients; all of them are in the master's process group, so the group is ended.
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not _wait_until_group_ends(process.pid, within=5):
            _signal_group(process.pid, signal.SIGKILL)
            _wait_until_group_ends(process.pid, within=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, prefix: str = "user") -> MailUser:
        """A new mailbox with a unique login (`prefix-<random>`), usable at once."""
        if not _LOGIN_PREFIX.fullmatch(prefix):
            raise ValueError(f"login prefix must match {_LOGIN_PREFIX.pattern}: {prefix!r}")
        user = MailUser(f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(12))
        self._write_user(user)
        return user

    @contextlib.contextmanager
    def imap(self, user: MailUser) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib connection, logged out when the block ends."""
        connection = imaplib.IMAP4(self.host, self.port, timeout=IMAP_TIMEOUT_SECONDS)
        try:
            connection.login(user.login, user.password)
            yield connection
        finally:
            try:
                connection.logout()
            except (imaplib.IMAP4.error, OSError):
                # The server is gone (an outage, a reset): logout() then leaves the socket.
                with contextlib.suppress(OSError):
                    connection.shutdown()

    def create_folder(self, user: MailUser, folder: str) -> None:
        with self.imap(user) as connection:
            _checked(connection.create(_quote(folder)), "CREATE")
            _checked(connection.subscribe(_quote(folder)), "SUBSCRIBE")

    def append(
        self,
        user: MailUser,
        raw: bytes,
        folder: str = "INBOX",
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int:
        """IMAP APPEND `raw` (an RFC 5322 message) and return its UID.

        `flags` like "\\Seen"; `date` (aware) becomes the INTERNALDATE (default: now by
        omnicrm's clock, so a suite run at a shifted date sees mail arrive at its own "now").
        """
        if date is not None and date.tzinfo is None:
            raise ValueError("date must be timezone-aware")
        internal_date = imaplib.Time2Internaldate(date or utcnow())
        with self.imap(user) as connection:
            return self._append(connection, folder, raw, tuple(flags), internal_date)

    def append_many(
        self, user: MailUser, messages: Iterable[bytes], folder: str = "INBOX"
    ) -> list[int]:
        """APPEND each message in order over one connection (5x faster than `append`
        each); returns their UIDs."""
        with self.imap(user) as connection:
            now = imaplib.Time2Internaldate(utcnow())
            return [self._append(connection, folder, raw, (), now) for raw in messages]

    @staticmethod
    def _append(
        connection: imaplib.IMAP4,
        folder: str,
        raw: bytes,
        flags: tuple[str, ...],
        internal_date: str,
    ) -> int:
        flag_list = f"({' '.join(flags)})" if flags else ""
        data = _checked(connection.append(_quote(folder), flag_list, internal_date, raw), "APPEND")
        found = _APPENDUID.search(data[0] or b"")
        if found is None:
            raise MailServerError(f"APPEND answered without APPENDUID: {data!r}")
        return int(found.group(2))

    def uids(self, user: MailUser, folder: str = "INBOX") -> list[int]:
        """The UIDs in the folder, ascending."""
        with self.imap(user) as connection:
            _checked(connection.select(_quote(folder), readonly=True), "EXAMINE")
            data = _checked(connection.uid("SEARCH", "ALL"), "UID SEARCH")
        return sorted(int(uid) for uid in (data[0] or b"").split())

    def flags(self, user: MailUser, folder: str, uid: int) -> frozenset[str]:
        """The message's flags as a client sees them (without the per-session \\Recent)."""
        with self.imap(user) as connection:
            _checked(connection.select(_quote(folder), readonly=True), "EXAMINE")
            data = _checked(connection.uid("FETCH", str(uid), "(FLAGS)"), "UID FETCH")
        for item in data:
            if isinstance(item, bytes) and (found := _FETCH_FLAGS.search(item)):
                return frozenset(found.group(1).decode().split()) - {"\\Recent"}
        raise KeyError(f"no message with UID {uid} in {folder!r} of {user.login}")

    def uidvalidity(self, user: MailUser, folder: str = "INBOX") -> int:
        with self.imap(user) as connection:
            data = _checked(connection.status(_quote(folder), "(UIDVALIDITY)"), "STATUS")
        found = _STATUS_UIDVALIDITY.search(data[0] or b"")
        if found is None:
            raise MailServerError(f"STATUS answered without UIDVALIDITY: {data!r}")
        return int(found.group(1))

    def reset_uidvalidity(self, user: MailUser, folder: str = "INBOX") -> dict[int, int]:
        """Rebuild the folder as a server does after index loss: new UIDVALIDITY, same
        messages (bytes, flags, dates) under new UIDs. Returns {old UID: new UID}.

        Clients that have the folder selected are disconnected, as Dovecot does.
        """
        with self.imap(user) as connection:
            _checked(connection.select(_quote(folder)), "SELECT")
            messages = self._fetch_all(connection)
            if messages:
                fetched = ",".join(str(uid) for uid in messages)
                _checked(connection.uid("STORE", fetched, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                _checked(connection.expunge(), "EXPUNGE")
            _checked(connection.close(), "CLOSE")
        old_uidvalidity = self.uidvalidity(user, folder)
        self._doveadm_run(
            "mailbox", "update", "-u", user.login,
            "--uid-validity", str(old_uidvalidity + 1), folder,
        )  # fmt: skip
        with self.imap(user) as connection:
            return {
                old_uid: self._append(
                    connection, folder, message.raw, message.flags, message.internal_date
                )
                for old_uid, message in messages.items()
            }

    @staticmethod
    def _fetch_all(connection: imaplib.IMAP4) -> dict[int, _StoredMessage]:
        data = _checked(
            connection.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])"), "UID FETCH"
        )
        messages: dict[int, _StoredMessage] = {}
        for item in data:
            # A message with a literal comes back as (b"n (UID .. BODY[] {size}", literal).
            if not isinstance(item, tuple):
                continue
            header, raw = item
            uid, flags, internal_date = (
                _FETCH_UID.search(header),
                _FETCH_FLAGS.search(header),
                _FETCH_INTERNALDATE.search(header),
            )
            if uid is None or flags is None or internal_date is None:
                raise MailServerError(f"unexpected FETCH response: {header!r}")
            messages[int(uid.group(1))] = _StoredMessage(
                raw,
                tuple(flag for flag in flags.group(1).decode().split() if flag != "\\Recent"),
                internal_date.group(1).decode(),
            )
        return dict(sorted(messages.items()))

    def _doveadm_run(self, *arguments: str) -> None:
        completed = subprocess.run(
            [self._doveadm, "-c", str(self._config), *arguments],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if completed.returncode != 0:
            raise MailServerError(
                f"doveadm {' '.join(arguments)} exited with {completed.returncode}: "
                + completed.stderr.decode(errors="replace")
            )


def _signal_group(group: int, signal_number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal_number)


def _wait_until_group_ends(group: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while _live_group_members(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _live_group_members(group: int) -> list[int]:
    """Processes of the group that still run; orphans that nobody reaped (zombies, when
    PID 1 of a container does not reap) hold no sockets and do not count."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(int(entry.name))
    return members


@contextlib.contextmanager
def dovecot_server(log_path: Path) -> Iterator[DovecotServer]:
    """A running Dovecot of our own until the block ends; its mail is deleted then.

    The log is written to `log_path`, which is kept. The rest lives in a directory of its
    own under the system temp dir, since pytest's are closed to the unprivileged mail user.
    """
    root = Path(tempfile.mkdtemp(prefix="omnicrm-dovecot-"))
    try:
        server = DovecotServer(root, log_path)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """One Dovecot for the whole test session; tests keep apart through `add_user`."""
    try:
        for program in ("dovecot", "doveadm"):
            _program(program)
    except DovecotMissing as missing:
        unavailable(str(missing))
    with dovecot_server(tmp_path_factory.mktemp("dovecot") / "dovecot.log") as server:
        yield server


# --- SMTP -------------------------------------------------------------------------------

Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes  # as received, CRLF line ends
    message: EmailMessage
    login: str | None  # the AUTH user name, None when the client did not authenticate


@dataclass(frozen=True)
class _Scripted:
    stage: Stage
    reply: str | None  # None: close the connection without answering
    delay: float


class SmtpServer:
    """aiosmtpd on a free loopback port in the running event loop; no TLS.

    The handle_* methods are aiosmtpd's hooks, not for tests to call.
    """

    host = HOST

    def __init__(self) -> None:
        self.port = 0  # chosen by the system at start()
        self.messages: list[ReceivedMail] = []
        self._credentials: tuple[str, str] | None = None
        self._script: deque[_Scripted] = deque()
        self._arrived = asyncio.Condition()
        self._connections: list[SMTP] = []
        self._server: asyncio.Server | None = None

    def require_auth(self, username: str, password: str) -> None:
        """From now on MAIL needs AUTH (PLAIN or LOGIN) with exactly these credentials.

        Without this, AUTH with any credentials is accepted and recorded in `login`.
        """
        self._credentials = (username, password)

    def fail_next(
        self, count: int = 1, code: int = 451, text: str | None = None, stage: Stage = "data"
    ) -> None:
        """Answer the next `count` transactions with `code` at `stage` (at "rcpt": the next
        `count` recipients) instead of accepting them."""
        if not 400 <= code <= 599:
            raise ValueError(f"a failure reply is 4xx or 5xx, not {code}")
        default = "4.3.0 Try again later" if code < 500 else "5.7.1 Rejected"
        reply = f"{code} {text or default} (scripted)"
        self._script.extend(_Scripted(stage, reply, 0.0) for _ in range(count))

    def drop_next(self, count: int = 1, stage: Stage = "data", after: float = 0.0) -> None:
        """At `stage` of the next `count` transactions, stay silent `after` seconds, then
        close the connection without answering (silence longer than a client's timeout
        is a timeout for it)."""
        self._script.extend(_Scripted(stage, None, after) for _ in range(count))

    # A bounded wait is what tests ask for; asyncio.timeout around it would only add noise.
    async def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:  # noqa: ASYNC109
        """Wait until at least `count` messages were accepted; return all of them."""
        async with self._arrived:
            try:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: len(self.messages) >= count), timeout
                )
            except TimeoutError:
                raise TimeoutError(
                    f"SMTP server got {len(self.messages)} message(s), expected {count}"
                ) from None
        return list(self.messages)

    async def start(self) -> None:
        self._server = await asyncio.get_running_loop().create_server(self._new_connection, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every connection still open, and let their tasks end."""
        if self._server is None:
            return
        self._server.close()
        for connection in self._connections:
            if isinstance(connection.transport, asyncio.Transport):
                connection.transport.abort()
        # aiosmtpd runs each connection in a task that it cancels when the connection is
        # lost; waiting for them keeps "Task was destroyed but it is pending" away.
        await asyncio.gather(
            *(c._handler_coroutine for c in self._connections if c._handler_coroutine),
            return_exceptions=True,
        )
        await self._server.wait_closed()
        self._server = None

    def _new_connection(self) -> SMTP:
        connection = SMTP(
            self,
            hostname="smtp.test",  # the default, getfqdn(), can wait on DNS
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )
        self._connections.append(connection)
        return connection

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given = (data.login.decode(), data.password.decode())
        accepted = self._credentials is None or given == self._credentials
        return AuthResult(success=accepted, handled=False, auth_data=data)

    async def _scripted_reply(self, stage: Stage, connection: SMTP) -> str | None:
        """The scripted answer if one is due at this stage ("" once the connection is gone)."""
        if not self._script or self._script[0].stage != stage:
            return None
        step = self._script.popleft()
        if step.reply is not None:
            return step.reply
        await asyncio.sleep(step.delay)
        if isinstance(connection.transport, asyncio.Transport):
            connection.transport.abort()
        return ""

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns without TLS.
        if self._credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        scripted = await self._scripted_reply("mail", server)
        if scripted is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        scripted = await self._scripted_reply("rcpt", server)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scripted = await self._scripted_reply("data", server)
        if scripted is not None:
            return scripted
        raw = envelope.original_content or b""
        auth = session.auth_data
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=BytesParser(policy=default_policy).parsebytes(raw),
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
        )
        async with self._arrived:
            self.messages.append(mail)
            self._arrived.notify_all()
        return "250 OK: queued"


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """An SMTP server for one test; read what it accepted from `messages` / `wait_for`."""
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()

"""Email ingest: how long until N messages in a real IMAP mailbox are all interactions.

Starts a Dovecot of its own (Debian's dovecot-imapd, as the tests do), appends N generated
messages (default 5,000) to one mailbox, then measures, in the same run and on the same
server: the ceiling, a bare IMAP client fetching every message (no parsing, no storage); and
omnicrm's email channel importing them all, on SQLite and on PostgreSQL.

    python bench/email_ingest.py [--messages 5000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402 - the path is set up just above

from bench.common import database  # noqa: E402
from channels.base import ChannelServices  # noqa: E402
from channels.email.imap import ImapOptions  # noqa: E402
from channels.email.plugin import EmailChannel  # noqa: E402
from channels.pollers import PollerSupervisor  # noqa: E402
from channels.registry import ChannelRegistry, validated_settings  # noqa: E402
from core.audit import CLI  # noqa: E402
from core.channel_accounts import create_account  # noqa: E402
from core.credentials import CredentialCipher  # noqa: E402
from core.db import make_engine, make_session_factory, transaction  # noqa: E402
from core.events import EventBus, session_info  # noqa: E402
from core.ingest import IngestPolicy  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import Interaction  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.storage import MemoryStore  # noqa: E402
from tests.mailservers import DovecotServer, MailUser, dovecot_server  # noqa: E402


def make_messages(count: int) -> list[bytes]:
    """Plausible support mail: 1 in 10 senders writes again, every message has a Message-ID."""
    messages = []
    for number in range(count):
        sender = f"customer{number % max(1, count // 10)}@example.com"
        body = f"Hello,\r\n\r\nwhere is my order {10000 + number}? " + "Thanks! " * 60
        messages.append(
            (
                f"From: Customer {number} <{sender}>\r\n"
                f"To: support@shop.example\r\n"
                f"Subject: Order {10000 + number}\r\n"
                f"Message-ID: <bench-{number}@example.com>\r\n"
                f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode()
        )
    return messages


def bare_fetch(server: DovecotServer, user: MailUser, count: int) -> float:
    """Seconds for one plain IMAP connection to fetch every message body: the ceiling."""
    started = time.perf_counter()
    connection = imaplib.IMAP4(server.host, server.port)
    try:
        connection.login(user.login, user.password)
        connection.select("INBOX", readonly=True)
        fetched = 0
        for first in range(1, count + 1, 200):
            last = min(count, first + 199)
            status, data = connection.uid("FETCH", f"{first}:{last}", "(BODY.PEEK[])")
            if status != "OK":
                raise RuntimeError(f"FETCH failed: {data!r}")
            fetched += sum(1 for item in data if isinstance(item, tuple))
        if fetched != count:
            raise RuntimeError(f"fetched {fetched} of {count} messages")
    finally:
        connection.logout()
    return time.perf_counter() - started


async def omnicrm_import(
    server: DovecotServer, user: MailUser, count: int, database_url: str
) -> float:
    """Seconds from starting the email channel's poller until all `count` messages are
    interactions."""
    await upgrade(database_url)
    cipher = CredentialCipher("the email benchmark's credentials key")
    engine = make_engine(database_url)
    bus = EventBus()
    sessions = make_session_factory(engine)
    sessions.configure(info=session_info(bus))
    channel = EmailChannel(ImapOptions(batch_size=50))
    try:
        async with transaction(sessions) as session:
            await create_account(
                session,
                CLI,
                channel="email",
                name="bench",
                settings=validated_settings(
                    channel,
                    {
                        "address": "support@shop.example",
                        "imap_host": server.host,
                        "imap_port": server.port,
                        "imap_tls": "none",
                        "imap_user": user.login,
                        "imap_password": user.password,
                        "smtp_host": "127.0.0.1",
                        "smtp_tls": "none",
                        "poll_seconds": 1,
                    },
                ),
                secret_fields=channel.secret_fields,
                cipher=cipher,
            )
        services = ChannelServices(
            sessions=sessions,
            bus=bus,
            store=MemoryStore(),
            policy=IngestPolicy(reopen_window=timedelta(days=7)),
            cipher=cipher,
            settings=Settings(database_url=database_url),
        )
        supervisor = PollerSupervisor(ChannelRegistry([channel]), services)
        started = time.perf_counter()
        await supervisor.start()
        try:
            while True:
                async with sessions() as session:
                    stored = await session.scalar(select(func.count()).select_from(Interaction))
                if stored == count:
                    return time.perf_counter() - started
                await asyncio.sleep(0.1)
        finally:
            await supervisor.stop()
    finally:
        await engine.dispose()


async def run(count: int, backends: list[str]) -> None:
    messages = make_messages(count)
    with (
        tempfile.TemporaryDirectory() as folder,
        dovecot_server(Path(folder) / "dovecot.log") as server,
    ):
        user = server.add_user("bench")
        started = time.perf_counter()
        await asyncio.to_thread(server.append_many, user, messages)
        print(f"appended {count} messages to Dovecot in {time.perf_counter() - started:.1f}s")
        print(f"{'target':<34}{'seconds':>10}{'messages/s':>14}{'of bare':>10}")
        ceiling = await asyncio.to_thread(bare_fetch, server, user, count)
        print(
            f"{'bare IMAP fetch (no storage)':<34}{ceiling:>10.2f}{count / ceiling:>14.0f}{'—':>10}"
        )
        for backend in backends:
            async with database(backend) as database_url:
                seconds = await omnicrm_import(server, user, count, database_url)
            print(
                f"{f'omnicrm email channel ({backend})':<34}{seconds:>10.2f}"
                f"{count / seconds:>14.0f}{ceiling / seconds:>10.1%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if set(backends) - {"sqlite", "postgresql"} or args.messages < 1:
        parser.error("backends are sqlite and/or postgresql; messages must be at least 1")
    asyncio.run(run(args.messages, backends))


if __name__ == "__main__":
    main()

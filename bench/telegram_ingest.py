"""Telegram webhook throughput: omnicrm against a bare aiohttp handler, in the same run.

For each backend (SQLite, PostgreSQL) it starts `omnicrm serve` on a fresh database with one
Telegram bot in webhook mode (added as an admin would: getMe checks the token against the Bot
API stand-in of tests/telegram_standin.py, which runs in this process and takes the server's
setWebhook), and a bare aiohttp server that checks the same `X-Telegram-Bot-Api-Secret-Token`
in constant time and parses the JSON (this file, `--serve-bare`) as the ceiling. Then it posts
Telegram Updates (text messages from a pool of customers, each in their own private chat, every
message id new) to each for a fixed time with a fixed number of concurrent clients, and prints
requests per second, the ratio to the ceiling, and p50/p99 latency. Every answer is checked (a
200 with `{"status": "ok"}`, else an error); afterwards the database must hold each accepted
update exactly once, also after a sample of them is delivered again (Telegram's retries).

    python bench/telegram_ingest.py [--seconds 10] [--concurrency 16] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import sys
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import distinct, func, select

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import LOAD_HEADER, Figures, database, load, load_row, session_on  # noqa: E402
from channels.accounts import add_account  # noqa: E402
from channels.registry import ChannelRegistry, default_channels  # noqa: E402
from channels.telegram.settings import webhook_secret  # noqa: E402
from core.audit import CLI  # noqa: E402 - the path is set up just above
from core.clock import utcnow  # noqa: E402
from core.credentials import CredentialCipher  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import Interaction  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests import telegram_standin as tg  # noqa: E402
from tests.servers import omnicrm_server  # noqa: E402

PUBLIC = "https://crm.example.com"
ACCOUNT = "bench"
PATH = f"/hooks/telegram/{ACCOUNT}/update"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
SECRET_KEY = "bench-secret-key"  # noqa: S105 - the bench server's own throwaway key
CUSTOMERS = 500
REDELIVERED = 20  # updates posted again after the run: nothing new may be stored
FIRST_USER = 6_100_000_000
NAMES = [
    ("Olga", "Smirnova", "ru"),
    ("Jonas", "Weber", "de"),
    ("Kim", "Lee", "en"),
    ("Ana", "Silva", "pt-br"),
    ("Mehmet", None, "tr"),
    ("Sofia", "Rossi", "it"),
    ("Liam", "Murphy", None),
]
TEXTS = [
    "Hello! Where is my order {n}? It was due yesterday.",
    "Hi, the parcel {n} arrived damaged, the box was wet. What should I do?",
    "Can I still change the delivery address for order {n}?",
    "Добрый день! Заказ {n} до сих пор не пришёл, подскажите, пожалуйста, что с ним.",  # noqa: RUF001
    "Hallo, ich möchte die Bestellung {n} stornieren. Geht das noch?",
    "I was charged twice for order {n} 😕 please check",
    "Is the blue one back in stock? I'd take two (order {n} was the first)",
    "Thanks, got it! 👍",
]


@dataclass
class Run:
    """One backend's run: the ceiling, omnicrm, and what the database holds afterwards."""

    backend: str
    ceiling: Figures
    figures: Figures
    accepted: int  # updates omnicrm answered 200
    stored: int  # Telegram messages in the database
    distinct: int  # of which distinct (bot, chat, message)
    redelivered: int  # updates posted a second time
    stored_after_redelivery: int

    @property
    def ok(self) -> bool:
        return (
            self.figures.errors == 0
            and self.ceiling.errors == 0
            and self.stored == self.distinct == self.accepted == self.stored_after_redelivery
        )


class Updates:
    """Realistic text-message Updates, every one new: update ids and message ids from
    counters, customers (user id = private chat id) from a pool."""

    def __init__(self) -> None:
        self._update_ids = itertools.count(tg.FIRST_UPDATE_ID)
        self._message_ids = itertools.count(1)

    def next(self, number: int, sent: int) -> dict[str, Any]:
        customer = (number * 7919 + sent) % CUSTOMERS
        first_name, last_name, language = NAMES[customer % len(NAMES)]
        text = TEXTS[(number + sent) % len(TEXTS)].format(n=40_000 + customer)
        update = tg.text_message(
            FIRST_USER + customer,
            text,
            first_name=first_name,
            last_name=last_name,
            username=f"{first_name.lower()}_{customer}",
            language_code=language,
            message_id=next(self._message_ids),
            date=int(utcnow().timestamp()),
        )
        return {"update_id": next(self._update_ids), **update}


def body_of(update: dict[str, Any]) -> bytes:
    """As Telegram sends it: compact JSON, UTF-8."""
    return json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()


async def post(http: aiohttp.ClientSession, url: str, body: bytes, secret: str) -> bool:
    headers = {"Content-Type": "application/json", SECRET_HEADER: secret}
    async with http.post(url, data=body, headers=headers) as response:
        answer = await response.read()
        return response.status == 200 and json.loads(answer) == {"status": "ok"}


async def hammer(
    url: str, secret: str, seconds: float, concurrency: int, name: str
) -> tuple[Figures, list[bytes]]:
    """Post new Updates from `concurrency` clients for `seconds`; the figures, and the bodies
    that were accepted."""
    updates = Updates()
    accepted: list[bytes] = []

    async def send(http: aiohttp.ClientSession, number: int, sent: int) -> bool:
        body = body_of(updates.next(number, sent))
        if await post(http, url, body, secret):
            accepted.append(body)
            return True
        return False

    return await load(send, seconds, concurrency, name), accepted


async def redeliver(url: str, secret: str, bodies: Sequence[bytes]) -> int:
    """Post `bodies` again, as Telegram does when it missed our answer; how many were 200."""
    async with aiohttp.ClientSession() as http:
        return sum([await post(http, url, body, secret) for body in bodies])


def bare_app(secret: str) -> web.Application:
    """What any Telegram webhook endpoint must do: check the secret header in constant time and
    read the Update's JSON; nothing omnicrm does (parsing, identity, storage, the commit before
    the answer)."""
    expected = secret.encode()

    async def update(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected):
            return web.json_response({"error": "forbidden"}, status=403)
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "malformed"}, status=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.json_response({"error": "malformed"}, status=400)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/hooks/telegram/{account}/update", update)
    return app


def bare_server(secret: str) -> AbstractAsyncContextManager[str]:
    return common.bare_server(lambda port: [str(HERE), "--serve-bare", str(port), secret], PATH)


async def prepare(database_url: str, standin: tg.TelegramStandIn) -> None:
    """The database migrated and the bot added, as `omnicrm channel add telegram` does it."""
    await upgrade(database_url)
    cipher = CredentialCipher.from_settings(
        Settings(database_url=database_url, secret_key=SECRET_KEY)
    )
    async with session_on(database_url) as session, session.begin():
        await add_account(
            session,
            CLI,
            ChannelRegistry(default_channels()),
            cipher,
            channel="telegram",
            name=ACCOUNT,
            settings={"token": tg.TOKEN, "mode": "webhook", "api_base_url": standin.url},
        )


async def count_stored(database_url: str) -> tuple[int, int]:
    """(Telegram messages stored, distinct external ids among them)."""
    async with session_on(database_url) as session:
        query = select(
            func.count(Interaction.id), func.count(distinct(Interaction.external_id))
        ).where(Interaction.channel == "telegram")
        row = (await session.execute(query)).one()
    return int(row[0]), int(row[1])


async def run_backend(backend: str, seconds: float, concurrency: int) -> Run:
    secret = webhook_secret(tg.TOKEN)
    async with bare_server(secret) as bare_url:
        ceiling, _ = await hammer(f"{bare_url}{PATH}", secret, seconds, concurrency, "bare aiohttp")
    async with database(backend) as database_url, tg.running() as standin:
        await prepare(database_url, standin)
        environment = {
            "OMNICRM_PUBLIC_URL": PUBLIC,
            "OMNICRM_SECRET_KEY": SECRET_KEY,
            "OMNICRM_LOG_LEVEL": "WARNING",
        }
        async with omnicrm_server(database_url, environment) as server:
            url = f"{server.url}{PATH}"
            figures, accepted = await hammer(
                url, secret, seconds, concurrency, f"omnicrm ({backend})"
            )
            stored, distinct = await count_stored(database_url)
            sample = accepted[:: max(1, len(accepted) // REDELIVERED)][:REDELIVERED]
            redelivered = await redeliver(url, secret, sample)
            after, _ = await count_stored(database_url)
    return Run(backend, ceiling, figures, len(accepted), stored, distinct, redelivered, after)


async def run(seconds: float, concurrency: int, backends: Sequence[str]) -> list[Run]:
    print(f"Telegram webhook updates, {seconds:g}s per target, {concurrency} concurrent clients")
    print(LOAD_HEADER)
    results = []
    for backend in backends:
        result = await run_backend(backend, seconds, concurrency)
        print(load_row(result.ceiling, None))
        print(load_row(result.figures, result.ceiling))
        print(
            f"  stored {result.stored} messages ({result.distinct} distinct) for "
            f"{result.accepted} accepted updates; {result.redelivered} delivered again, "
            f"{result.stored_after_redelivery} stored after"
            + ("" if result.ok else "  <-- MISMATCH")
        )
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    # The ceiling's own process: PORT SECRET (started by the run).
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "SECRET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        port, secret = args.serve_bare
        web.run_app(bare_app(secret), host="127.0.0.1", port=int(port), access_log=None, print=None)
        return []
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return asyncio.run(run(args.seconds, args.concurrency, backends))


if __name__ == "__main__":
    sys.exit(0 if all(result.ok for result in main()) else 1)

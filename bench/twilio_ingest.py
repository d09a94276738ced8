"""Twilio SMS webhook throughput: omnicrm against a bare aiohttp handler, in the same run.

For each backend (SQLite, PostgreSQL) it starts `omnicrm serve` on a fresh database with one
Twilio account, and a bare aiohttp server that validates the same signature and answers empty
TwiML (bench/twilio_bare_server.py) as the ceiling. Then it posts signed "message comes in"
webhooks (each a new MessageSid, from a pool of customers) to each for a fixed time with a
fixed number of concurrent clients, and prints requests per second, the ratio to the
ceiling, and p50/p99 latency. Every answer is checked: a 200 with TwiML, else an error.

    python bench/twilio_ingest.py [--seconds 10] [--concurrency 16] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import LOAD_HEADER, Figures, database, load, load_row, session_on  # noqa: E402
from core.audit import CLI  # noqa: E402 - the path is set up just above
from core.channel_accounts import create_account  # noqa: E402
from core.credentials import CredentialCipher  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.servers import omnicrm_server  # noqa: E402
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, Signer, inbound  # noqa: E402

PUBLIC = "https://crm.example.com"
PATH = "/hooks/twilio/bench/message"
SECRET_KEY = "bench-secret-key"  # noqa: S105 - the bench server's own throwaway key
CUSTOMERS = 500


async def hammer(url: str, seconds: float, concurrency: int, name: str) -> Figures:
    """Post signed webhooks from `concurrency` clients for `seconds`."""
    signer = Signer(AUTH_TOKEN)

    async def send(http: aiohttp.ClientSession, number: int, sent: int) -> bool:
        customer = f"+1415555{(number * 7919 + sent) % CUSTOMERS:04d}"
        params = inbound(customer, f"Where is my order {number}-{sent}? " * 3)
        body, headers = signer.form(f"{PUBLIC}{PATH}", params)
        async with http.post(url, data=body, headers=headers) as response:
            return response.status == 200 and is_twiml(await response.text())

    return await load(send, seconds, concurrency, name)


def is_twiml(text: str) -> bool:
    """Whether `text` is a TwiML document (its root a <Response>), however it is spelled."""
    try:
        return ElementTree.fromstring(text).tag == "Response"  # noqa: S314 - our own server's answer
    except ElementTree.ParseError:
        return False


def bare_server() -> AbstractAsyncContextManager[str]:
    script = str(ROOT / "bench" / "twilio_bare_server.py")
    return common.bare_server(lambda port: [script, str(port), PUBLIC, AUTH_TOKEN], PATH)


async def prepare(database_url: str) -> None:
    await upgrade(database_url)
    cipher = CredentialCipher.from_settings(
        Settings(database_url=database_url, secret_key=SECRET_KEY)
    )
    async with session_on(database_url) as session, session.begin():
        await create_account(
            session,
            CLI,
            channel="twilio",
            name="bench",
            settings={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_numbers": ["+15005550006"],
                "api_base_url": "https://api.twilio.com",
                "templates": [],
            },
            secret_fields=["auth_token"],
            cipher=cipher,
        )


async def run(seconds: float, concurrency: int, backends: list[str]) -> int:
    print(f"Twilio SMS webhooks, {seconds:g}s per target, {concurrency} concurrent clients")
    print(LOAD_HEADER)
    failed = False
    for backend in backends:
        async with bare_server() as bare_url:
            ceiling = await hammer(f"{bare_url}{PATH}", seconds, concurrency, "bare aiohttp")
        async with database(backend) as database_url:
            await prepare(database_url)
            environment = {
                "OMNICRM_PUBLIC_URL": PUBLIC,
                "OMNICRM_SECRET_KEY": SECRET_KEY,
                "OMNICRM_LOG_LEVEL": "WARNING",
            }
            async with omnicrm_server(database_url, environment) as server:
                figures = await hammer(
                    f"{server.url}{PATH}", seconds, concurrency, f"omnicrm ({backend})"
                )
        print(load_row(ceiling, None))
        print(load_row(figures, ceiling))
        failed = failed or figures.errors > 0 or ceiling.errors > 0
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return asyncio.run(run(args.seconds, args.concurrency, backends))


if __name__ == "__main__":
    sys.exit(main())

"""Web-form ingest throughput: omnicrm against a bare aiohttp handler, in the same run.

For each backend (SQLite, PostgreSQL) it starts `omnicrm serve` on a fresh database with one
form, and a bare aiohttp server (bench/bare_server.py) as the ceiling; then it posts web forms
to each for a fixed time with a fixed number of concurrent clients and prints requests per
second, the ratio to the ceiling, and p50/p99 latency.

    python bench/ingest.py [--seconds 10] [--concurrency 16] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import Figures, database, load  # noqa: E402
from core.audit import CLI  # noqa: E402 - the path is set up just above
from core.db import make_engine, make_session_factory, transaction  # noqa: E402
from core.forms import create_form  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from tests.servers import omnicrm_server  # noqa: E402


async def hammer(url: str, seconds: float, concurrency: int, name: str) -> Figures:
    """Post forms from `concurrency` clients for `seconds`; every post is a new submission."""

    async def send(http: aiohttp.ClientSession, number: int, sent: int) -> bool:
        form = {
            "name": f"Bench Client {number}",
            "email": f"bench{number}-{sent % 50}@example.com",
            "message": "Where is my order? " * 5,
            "submission_id": f"{number}-{sent}-{secrets.token_hex(4)}",
        }
        async with http.post(url, data=form, allow_redirects=False) as response:
            await response.read()
            return response.status < 400

    return await load(send, seconds, concurrency, name)


def bare_server() -> AbstractAsyncContextManager[str]:
    return common.bare_server(
        lambda port: [str(ROOT / "bench" / "bare_server.py"), str(port)], "/forms/x", 100
    )


async def prepare(database_url: str) -> None:
    await upgrade(database_url)
    engine = make_engine(database_url)
    try:
        async with transaction(make_session_factory(engine)) as session:
            await create_form(session, CLI, slug="bench", required_fields=["email"])
    finally:
        await engine.dispose()


def report(figures: Figures, ceiling: Figures | None) -> str:
    ratio = f"{figures.rate / ceiling.rate:6.1%}" if ceiling else "   —  "
    return (
        f"{figures.name:<28}{figures.rate:>10.0f}/s{ratio:>10}"
        f"{figures.percentile(0.5):>10.1f} ms{figures.percentile(0.99):>10.1f} ms"
        f"{figures.requests:>10}{figures.errors:>8}"
    )


async def run(seconds: float, concurrency: int, backends: list[str], workers: int | None) -> int:
    header = (
        f"{'target':<28}{'rate':>12}{'of bare':>10}{'p50':>13}{'p99':>13}"
        f"{'requests':>10}{'errors':>8}"
    )
    print(f"web-form ingest, {seconds:g}s per target, {concurrency} concurrent clients")
    print(header)
    failed = False
    for backend in backends:
        async with bare_server() as bare_url:
            ceiling = await hammer(f"{bare_url}/forms/bench", seconds, concurrency, "bare aiohttp")
        async with database(backend) as database_url:
            await prepare(database_url)
            environment = {
                "OMNICRM_FORM_RATE_LIMIT_PER_MINUTE": "100000000",
                "OMNICRM_LOG_LEVEL": "WARNING",
            }
            # As `omnicrm serve` runs by default (a web process per core and a worker on
            # PostgreSQL, one process on SQLite), unless --workers says otherwise.
            processes = (workers or os.cpu_count() or 1) if backend == "postgresql" else 1
            environment["OMNICRM_WORKERS"] = str(processes)
            name = f"omnicrm ({backend}, {processes} web)"
            async with omnicrm_server(database_url, environment) as server:
                figures = await hammer(f"{server.url}/forms/bench", seconds, concurrency, name)
        print(report(ceiling, None))
        print(report(figures, ceiling))
        failed = failed or figures.errors > 0
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workers", type=int, help="web processes on PostgreSQL (default: one per core)"
    )
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    sys.exit(asyncio.run(run(args.seconds, args.concurrency, backends, args.workers)))


if __name__ == "__main__":
    main()

"""What the benchmarks share: a fresh database of each backend for one run, and for the
ingest benchmarks the load loop (`load`: concurrent clients posting for a fixed time) and
the bare server they are measured against (`bare_server`: a process of its own)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

POSTGRES_ADMIN = os.environ.get(
    "OMNICRM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@asynccontextmanager
async def database(backend: str, admin: str = POSTGRES_ADMIN) -> AsyncIterator[str]:
    """A fresh database of `backend` for the block; PostgreSQL's is made (and dropped after)
    through `admin`, a `postgresql://` login that may create databases."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite+aiosqlite:///{folder}/bench.db"
        return
    import asyncpg  # only the PostgreSQL run needs it

    name = f"omnicrm_bench_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(admin)
    await connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{name}"
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


@dataclass
class Figures:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


# One request of a client: (the session, the client's number, its request's number) -> whether
# it was answered as it should be.
Send = Callable[[aiohttp.ClientSession, int, int], Awaitable[bool]]


async def load(send: Send, seconds: float, concurrency: int, name: str) -> Figures:
    """`concurrency` clients each sending one request after another for `seconds`: how many,
    how many failed, and how long each took."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def client(http: aiohttp.ClientSession, number: int) -> None:
        nonlocal errors
        sent = 0
        while time.perf_counter() < deadline:
            sent += 1
            started = time.perf_counter()
            if not await send(http, number, sent):
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(client(http, n) for n in range(concurrency)))
    return Figures(name, len(latencies), errors, time.perf_counter() - started, latencies)


@asynccontextmanager
async def bare_server(
    argv: Callable[[int], Sequence[str]], probe_path: str, attempts: int = 200
) -> AsyncIterator[str]:
    """The ceiling's server: `python <argv(port)>` on a free port, its address once it answers
    a POST to `probe_path` (whatever it answers), stopped when the block ends."""
    from tests.servers import free_port

    port = free_port()
    process = await asyncio.create_subprocess_exec(sys.executable, *argv(port))
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(attempts):
                try:
                    async with http.post(f"{url}{probe_path}", data=b"") as response:
                        await response.read()
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()

"""What the benchmarks share: a fresh database of each backend for one run
(`database`; `postgresql_unreachable` says why PostgreSQL cannot be had) and a session on it
(`session_on`); percentiles; for the ingest benchmarks the load loop (`load`: concurrent
clients posting for a fixed time, printed with `LOAD_HEADER` and `load_row`) and the bare
server they are measured against (`bare_server`, or `bare_processes` for its processes too: a
process of its own, or several on one port, `wait_listening` telling when all of them are
there); and what an engine sent while a block ran (`statements_of`, `counted`: the routing
benchmark and tests count them)."""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.procfs import tree_cpu
from core.db import make_engine, make_session_factory
from tests.servers import free_port, wait_ready

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


async def postgresql_unreachable(admin: str = POSTGRES_ADMIN) -> str | None:
    """Why PostgreSQL cannot be had through `admin`, or None when it can."""
    import asyncpg

    try:
        connection = await asyncpg.connect(admin, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = make_url(admin).render_as_string(hide_password=True)
        return f"not reachable at {shown}: {exc}"
    await connection.close()
    return None


@asynccontextmanager
async def session_on(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session on `database_url` for the block, on an engine of its own that is disposed of
    after it (`async with session_on(url) as session, session.begin():` to write)."""
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which `share` of `values` lie (NaN for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def nearest_rank(values: Sequence[float], percent: float) -> float:
    """The `percent` percentile of `values` by nearest rank (NaN for none): of 30 values p99 is
    the largest, of 100 the second largest (the reports and timeline benchmarks)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent * len(ordered) / 100) - 1)]


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
        """In milliseconds."""
        return percentile(self.latencies, share) * 1000


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


# The table `load_row` makes rows of (bench/telegram_ingest.py's, bench/twilio_ingest.py's).
LOAD_HEADER = (
    f"{'target':<28}{'rate':>12}{'of bare':>10}{'p50':>13}{'p99':>13}{'requests':>10}{'errors':>8}"
)


def load_row(figures: Figures, ceiling: Figures | None) -> str:
    """`load`'s figures as a row under LOAD_HEADER, the rate as a share of `ceiling`'s."""
    ratio = f"{figures.rate / ceiling.rate:6.1%}" if ceiling else "   —  "
    return (
        f"{figures.name:<28}{figures.rate:>10.0f}/s{ratio:>10}"
        f"{figures.percentile(0.5):>10.1f} ms{figures.percentile(0.99):>10.1f} ms"
        f"{figures.requests:>10}{figures.errors:>8}"
    )


@asynccontextmanager
async def bare_processes(
    argv: Callable[[int], Sequence[str]],
    probe_path: str,
    processes: int = 1,
    within: float = 30,
) -> AsyncIterator[tuple[str, list[asyncio.subprocess.Process]]]:
    """The ceiling's server: `python <argv(port)>` on a free port, its address and its
    processes once it answers a POST to `probe_path` (whatever it answers), stopped when the
    block ends. With `processes` > 1, that many copies share the port (they must listen with
    SO_REUSEPORT) and the block starts once all of them listen. RuntimeError if one exits
    before, TimeoutError if it does not answer within `within` seconds."""
    port = free_port()
    started = [
        await asyncio.create_subprocess_exec(sys.executable, *argv(port)) for _ in range(processes)
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        name = Path(argv(port)[0]).name
        await wait_ready(
            url,
            started,
            method="POST",
            path=probe_path,
            accept=None,  # whatever it answers: it is up
            name=name,
            within=within,
            interval=0.05,
        )
        if processes > 1:
            await wait_listening(port, processes, alive=started)
        yield url, started
    finally:
        for process in started:
            if process.returncode is None:
                process.terminate()
        for process in started:
            await process.wait()


@asynccontextmanager
async def bare_server(
    argv: Callable[[int], Sequence[str]], probe_path: str, processes: int = 1
) -> AsyncIterator[str]:
    """`bare_processes`' address alone."""
    async with bare_processes(argv, probe_path, processes) as (url, _):
        yield url


def listeners(port: int) -> int | None:
    """How many sockets listen on `port`; None where that cannot be seen (no /proc/net)."""
    count = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        count = count or 0
        for row in rows:
            fields = row.split()
            # local_address is ADDRESS:PORT in hex; state 0A is LISTEN.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def wait_listening(
    port: int,
    count: int,
    within: float = 60,
    alive: Sequence[asyncio.subprocess.Process] = (),
) -> None:
    """Until `count` sockets listen on `port`: a server of several processes answers as soon
    as its first one does, and a run started then would load that one alone for a while.
    (Where listening sockets cannot be seen, it returns at once.)"""
    deadline = time.monotonic() + within
    while (found := listeners(port)) is not None and found < count:
        if any(process.returncode is not None for process in alive):
            raise RuntimeError(f"a server process on port {port} exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found} of {count} processes listen on port {port}")
        await asyncio.sleep(0.05)


async def wait_quiet(
    pid: int, busy: float = 0.1, interval: float = 0.5, within: float = 180
) -> float:
    """Seconds until process `pid` and its descendants use less than `busy` of a core over
    `interval` (at most `within`): a server answers a burst before it has done all the
    burst's work (routing, the consoles' events), and what follows should not be charged
    with that backlog. 0 where CPU time cannot be seen."""
    started = time.monotonic()
    last = tree_cpu(pid)
    while last is not None and time.monotonic() - started < within:
        await asyncio.sleep(interval)
        now = tree_cpu(pid)
        if now is None or (now - last) / interval < busy:
            return time.monotonic() - started
        last = now
    return 0.0 if last is None else time.monotonic() - started


@contextmanager
def _listening(engine: AsyncEngine, record: Callable[..., None]) -> Iterator[None]:
    """`record(connection, cursor, statement, parameters, context, executemany)` called for
    every statement the engine sends while the block runs (SQLite's BEGIN included)."""
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@contextmanager
def statements_of(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The statements and their parameters sent while the block runs."""
    sent: list[tuple[str, Any]] = []
    with _listening(engine, lambda *args: sent.append((args[2], args[3]))):
        yield sent


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """The texts of the statements sent while the block runs."""
    texts: list[str] = []
    with _listening(engine, lambda *args: texts.append(args[2])):
        yield texts

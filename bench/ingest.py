"""Web-form ingest: omnicrm's rate against bare aiohttp ceilings, and its latency on the clock.

For each backend (SQLite, PostgreSQL), in one run:

1. **Closed loop, with wrk** (`wrk -t1 -cN`, bench/wrk_form.lua: every post a new submission,
   emails from a pool so customers repeat): the most each target answers, against
   - the **empty** bare handler (bench/bare_server.py: parse the form, answer 303),
   - the **durable-write** bare handler (the same plus one committed
     `INSERT … ON CONFLICT DO NOTHING`: asyncpg on PostgreSQL, aiosqlite with omnicrm's
     pragmas on SQLite), the floor of any ingest that stores before it answers,
   - omnicrm (`omnicrm serve` on a fresh database: one form routed to a queue whose
     operators have their consoles open, so routing and the console fan-out run too).
   The bare handlers run as many processes as omnicrm's web processes (one on SQLite; one per
   core on PostgreSQL, where omnicrm also runs its worker process), on one port with
   SO_REUSEPORT as omnicrm's do.
2. **Open loop** (bench/open_loop.py, a process of its own): omnicrm at half its wrk rate for
   `--open-loop-seconds`, latency from each request's scheduled time, so a stall is charged to
   every request that queued behind it (wrk times from the actual send and hides that); and
   the same pacer against the empty bare handler at the same rate, to show it keeps the pace.
   omnicrm answers a burst before it has done all of the burst's work (routing, the consoles'
   events), so the open loop starts only once omnicrm's processes are quiet again; how long
   that took, and how long they stayed busy after the open loop, are printed.

Every answer must be a 303; each database must hold what was answered (wrk abandons the
requests in flight when it stops, so up to one per connection may be stored unanswered; the
open loop waits for every answer, so there the counts must be equal). Verdicts against issue
17's targets are printed, not enforced: the exit status is 1 only for errors (wrong answers,
counts that disagree, a server that failed) and 2 when wrk is missing.

    python bench/ingest.py [--seconds 10] [--concurrency 16] [--backends sqlite,postgresql]
                           [--open-loop-seconds 60] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bare_server as bare  # noqa: E402 - the path is set up just above
from bench import common  # noqa: E402
from bench.common import database, session_on, wait_listening, wait_quiet  # noqa: E402
from bench.form_queue import CONSOLE_PASSWORD, FORM_PATH, seed  # noqa: E402
from bench.open_loop import Paced  # noqa: E402
from core.models import Interaction  # noqa: E402
from tests.servers import omnicrm_server  # noqa: E402

EXPECTED = 303  # a browser's form post, stored: "see the thank-you page"
WRK_SCRIPT = ROOT / "bench" / "wrk_form.lua"
PACER = ROOT / "bench" / "open_loop.py"
WRK_TIMEOUT = "10s"  # an answer slower than this is a wrk timeout (an error)
CONSOLES = 4  # operators of the form's queue with the console open
# Issue 17's targets: omnicrm's rate as a share of the durable-write bare handler's, and the
# open loop's p99 at half omnicrm's rate.
TARGET_OF_DURABLE = {"postgresql": 0.50, "sqlite": 0.25}
TARGET_P99_MS = 50.0
# The pacer's check against the empty handler: half the open loop, at most this long (enough
# to show that it keeps the pace).
PACER_CHECK_SECONDS = 10.0
# Below this share of the asked rate (or with this share of late starts) the pacer did not
# keep the pace, and the open loop's figures say more about the pacer than about the server.
PACER_KEPT_PACE = 0.98


@dataclass
class Closed:
    """One target under wrk's closed loop."""

    name: str
    requests: int  # answered (wrk does not count those in flight when it stops)
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int  # connect, read, write and timeout errors
    timeouts: int
    non_2xx_3xx: int  # wrk's own count: statuses above 399
    unexpected: int  # answers other than 303 (those above included)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def acknowledged(self) -> int:
        return self.requests - self.unexpected

    @property
    def errors(self) -> int:
        return self.socket_errors + self.unexpected


@dataclass
class Run:
    """One backend's run: the ceilings, omnicrm closed and open loop, and what was stored."""

    backend: str
    processes: int  # omnicrm's web processes, and each bare handler's processes
    concurrency: int
    empty: Closed
    durable: Closed
    durable_stored: int  # rows of the durable-write handler
    omnicrm: Closed
    omnicrm_stored: int  # interactions after wrk
    open_loop: Paced  # omnicrm, on the clock
    open_loop_stored: int  # interactions the open loop added
    pacer_check: Paced  # the empty handler at the same rate
    heard: Counter[str] = field(default_factory=Counter)  # the consoles' events, by type
    # How long omnicrm kept working after each loop's last answer (its backlog: routing and
    # the consoles' events); the open loop starts once the closed loop's backlog is done.
    busy_after_closed: float = 0.0
    busy_after_open: float = 0.0

    @property
    def of_empty(self) -> float:
        return _share(self.omnicrm.rate, self.empty.rate)

    @property
    def of_durable(self) -> float:
        return _share(self.omnicrm.rate, self.durable.rate)

    @property
    def target_of_durable(self) -> float:
        return TARGET_OF_DURABLE[self.backend]

    @property
    def meets_rate(self) -> bool:
        return self.of_durable >= self.target_of_durable

    @property
    def meets_p99(self) -> bool:
        return self.open_loop.errors == 0 and self.open_loop.p99_ms <= TARGET_P99_MS

    @property
    def pacer_kept_pace(self) -> bool:
        return all(
            paced.share_sent >= PACER_KEPT_PACE
            and paced.late <= (1 - PACER_KEPT_PACE) * paced.scheduled
            for paced in (self.pacer_check, self.open_loop)
        )

    def stored_as_answered(self, closed: Closed, stored: int) -> bool:
        """Every 303 is stored; besides, at most the requests wrk left in flight (one per
        connection) and those it gave up on (socket errors) may be."""
        slack = self.concurrency + closed.socket_errors
        return closed.acknowledged <= stored <= closed.acknowledged + slack

    @property
    def ok(self) -> bool:
        return (
            all(closed.errors == 0 for closed in (self.empty, self.durable, self.omnicrm))
            and self.pacer_check.errors == 0
            and self.open_loop.errors == 0
            and self.stored_as_answered(self.durable, self.durable_stored)
            and self.stored_as_answered(self.omnicrm, self.omnicrm_stored)
            and self.open_loop_stored == self.open_loop.answered
            and self.heard["interaction.created"] > 0
        )


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def wrk_missing() -> str | None:
    """One line saying how to get wrk when it is not on PATH, else None."""
    if shutil.which("wrk"):
        return None
    return (
        "wrk is not installed (not on PATH): bench/ingest.py drives its load with it; "
        "install it with `apt-get install wrk` (Debian/Ubuntu)"
    )


async def closed_loop(url: str, seconds: int, concurrency: int, name: str) -> Closed:
    """wrk posting new submissions to `url` over `concurrency` connections for `seconds`."""
    argv = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        secrets.token_hex(4),  # the submission ids' prefix: new in every run
        str(concurrency),
        str(EXPECTED),
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("WRK_RESULT ")]
    if process.returncode != 0 or not lines:
        said = (err or out).decode().strip()
        raise RuntimeError(f"wrk failed (exit {process.returncode}) against {url}: {said}")
    result = json.loads(lines[-1].removeprefix("WRK_RESULT "))
    errors = ("connect", "read", "write", "timeout")
    return Closed(
        name=name,
        requests=int(result["requests"]),
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p90_ms=result["p90_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        max_ms=result["max_us"] / 1000,
        socket_errors=sum(int(result[kind]) for kind in errors),
        timeouts=int(result["timeout"]),
        non_2xx_3xx=int(result["status"]),
        unexpected=int(result["unexpected"]),
    )


async def open_loop(url: str, rate: float, seconds: float, clients: int) -> Paced:
    """bench/open_loop.py, in a process of its own, pacing `rate` posts a second to `url`."""
    argv = [
        str(PACER),
        url,
        f"--rate={rate:.3f}",
        f"--seconds={seconds:g}",
        f"--token={secrets.token_hex(4)}",
        f"--clients={clients}",
        f"--expect={EXPECTED}",
    ]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0 or not out.strip():
        raise RuntimeError(f"the open-loop pacer failed (exit {process.returncode}) at {url}")
    return Paced(**json.loads(out.decode().strip().splitlines()[-1]))


def bare_target(database_url: str) -> str:
    """What bench/bare_server.py takes for a bench database: a DSN for asyncpg, or a path."""
    if database_url.startswith("sqlite"):
        return database_url.split(":///", 1)[1]
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def bare_server(processes: int, database: str | None = None) -> AbstractAsyncContextManager[str]:
    script = str(ROOT / "bench" / "bare_server.py")
    extra = ["--database", database] if database else []
    return common.bare_server(lambda port: [script, str(port), *extra], "/forms/x", processes)


@asynccontextmanager
async def consoles(url: str, emails: Sequence[str]) -> AsyncIterator[Counter[str]]:
    """The operators signed in with their consoles' live events open (GET /ws) for the block,
    so every ingest is fanned out to them as in a working contact center; what they heard, by
    event type, fills in as the block runs."""
    heard: Counter[str] = Counter()

    async def listen(socket: aiohttp.ClientWebSocketResponse) -> None:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                heard[str(json.loads(message.data).get("type"))] += 1

    async with AsyncExitStack() as stack:
        tasks = []
        for email in emails:
            jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
            browser = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=jar))
            login = {"email": email, "password": CONSOLE_PASSWORD}
            async with browser.post(f"{url}/api/v1/auth/login", json=login) as response:
                if response.status != 200:
                    raise RuntimeError(f"{email} could not sign in: {await response.text()}")
            socket = await stack.enter_async_context(
                browser.ws_connect(f"{url}/ws", origin=url, heartbeat=30)
            )
            tasks.append(asyncio.create_task(listen(socket)))
        try:
            yield heard
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def count_interactions(database_url: str) -> int:
    async with session_on(database_url) as session:
        query = select(func.count(Interaction.id)).where(Interaction.channel == "webform")
        return int(await session.scalar(query) or 0)


async def settled(count: Callable[[], Awaitable[int]]) -> int:
    """A count once it stops moving: the server may still be committing what wrk abandoned."""
    last = await count()
    while True:
        await asyncio.sleep(0.3)
        now = await count()
        if now == last:
            return now
        last = now


async def run_backend(
    backend: str, seconds: int, concurrency: int, open_seconds: float, workers: int | None
) -> Run:
    # As `omnicrm serve` runs by default (a web process per core and a worker on PostgreSQL,
    # one process on SQLite), unless --workers says otherwise; the ceilings get as many.
    processes = (workers or os.cpu_count() or 1) if backend == "postgresql" else 1
    async with bare_server(processes) as url:
        empty = await closed_loop(f"{url}{FORM_PATH}", seconds, concurrency, "bare aiohttp, empty")
    driver = "asyncpg" if backend == "postgresql" else "aiosqlite"
    async with database(backend) as database_url:
        target = bare_target(database_url)
        await bare.create_table(target)
        async with bare_server(processes, target) as url:
            durable = await closed_loop(
                f"{url}{FORM_PATH}", seconds, concurrency, f"bare aiohttp + {driver} write"
            )
        durable_stored = await settled(lambda: bare.count_rows(target))
    async with database(backend) as database_url:
        emails = (await seed(database_url, CONSOLES)).consoles
        environment = {
            "OMNICRM_FORM_RATE_LIMIT_PER_MINUTE": "100000000",
            "OMNICRM_LOG_LEVEL": "WARNING",
            "OMNICRM_WORKERS": str(processes),
        }
        async with omnicrm_server(database_url, environment) as server:
            port = urlsplit(server.url).port or 0
            await wait_listening(port, processes, alive=[server.process])
            pid = server.process.pid
            async with consoles(server.url, emails) as heard:
                await wait_quiet(pid)  # started, the consoles signed in
                omnicrm = await closed_loop(
                    f"{server.url}{FORM_PATH}", seconds, concurrency, f"omnicrm ({backend})"
                )
                busy_after_closed = await wait_quiet(pid)
                omnicrm_stored = await settled(lambda: count_interactions(database_url))
                rate = max(1.0, omnicrm.rate / 2)
                paced = await open_loop(f"{server.url}{FORM_PATH}", rate, open_seconds, concurrency)
                busy_after_open = await wait_quiet(pid)
                after = await settled(lambda: count_interactions(database_url))
    async with bare_server(processes) as url:
        check_seconds = min(open_seconds / 2, PACER_CHECK_SECONDS)
        check = await open_loop(f"{url}{FORM_PATH}", rate, check_seconds, concurrency)
    return Run(
        backend,
        processes,
        concurrency,
        empty,
        durable,
        durable_stored,
        omnicrm,
        omnicrm_stored,
        paced,
        after - omnicrm_stored,
        check,
        Counter(heard),
        busy_after_closed,
        busy_after_open,
    )


HEADER = (
    f"{'target':<34}{'rate':>10}{'of empty':>10}{'of durable':>11}{'p50':>11}{'p99':>11}"
    f"{'requests':>10}{'errors':>8}{'non-303':>9}"
)


def row(closed: Closed, empty: Closed | None, durable: Closed | None) -> str:
    def ratio(ceiling: Closed | None) -> str:
        return f"{_share(closed.rate, ceiling.rate):.1%}" if ceiling else "—"

    return (
        f"{closed.name:<34}{closed.rate:>8.0f}/s{ratio(empty):>10}{ratio(durable):>11}"
        f"{closed.p50_ms:>8.1f} ms{closed.p99_ms:>8.1f} ms"
        f"{closed.requests:>10}{closed.socket_errors:>8}{closed.unexpected:>9}"
    )


def paced_line(name: str, paced: Paced) -> str:
    return (
        f"  {name:<24}{paced.seconds:>4g} s: sent {paced.sent_rate:.1f}/s "
        f"({paced.share_sent:.1%} of asked), answered {paced.answered_rate:.1f}/s; "
        f"p50 {paced.p50_ms:.1f} ms, p99 {paced.p99_ms:.1f} ms, max {paced.max_ms:.1f} ms; "
        f"late {paced.late}, errors {paced.errors}"
        + (f" (first: {paced.first_error})" if paced.first_error else "")
    )


def print_run(run: Run) -> None:
    web = "process" if run.processes == 1 else "processes"
    beside = (
        "with its background work (routing included) on the same loop"
        if run.processes == 1
        else "beside its worker process (routing, outbox)"
    )
    print()
    print(
        f"{run.backend}: omnicrm serves from {run.processes} web {web} {beside}; "
        f"each bare handler from {run.processes} {web} on one port"
    )
    print(HEADER)
    print(row(run.empty, None, None))
    print(row(run.durable, run.empty, None))
    print(row(run.omnicrm, run.empty, run.durable))
    durable_ok = run.stored_as_answered(run.durable, run.durable_stored)
    omnicrm_ok = run.stored_as_answered(run.omnicrm, run.omnicrm_stored)
    print(
        f"  stored: bare {run.durable_stored} rows for {run.durable.acknowledged} answered 303"
        + ("" if durable_ok else "  <-- MISMATCH")
        + f"; omnicrm {run.omnicrm_stored} interactions for {run.omnicrm.acknowledged}"
        + ("" if omnicrm_ok else "  <-- MISMATCH")
        + f" (wrk leaves up to {run.concurrency} in flight unanswered)"
    )
    print(
        f"  consoles: {CONSOLES} operators of the form's queue heard {sum(run.heard.values())} "
        f"events ({run.heard['interaction.created']} interaction.created)"
        + ("" if run.heard["interaction.created"] else "  <-- NONE")
    )
    print(
        f"  backlog: omnicrm kept working {run.busy_after_closed:.1f} s after wrk's last answer "
        "(routing, the consoles' events); the open loop started after that"
    )
    print(
        f"open loop (bench/open_loop.py, its own process; latency from the scheduled time), "
        f"{run.open_loop.asked_rate:.1f}/s asked (half omnicrm's wrk rate):"
    )
    print(paced_line("bare aiohttp, empty", run.pacer_check))
    print(paced_line(f"omnicrm ({run.backend})", run.open_loop))
    stored_ok = run.open_loop_stored == run.open_loop.answered
    print(
        f"  stored: {run.open_loop_stored} interactions for {run.open_loop.answered} answered"
        + ("" if stored_ok else "  <-- MISMATCH")
        + f"; omnicrm kept working {run.busy_after_open:.1f} s after the last answer"
    )
    print(f"verdicts ({run.backend}):")
    print(
        f"  rate: omnicrm at {run.of_durable:.1%} of the durable-write bare handler "
        f"({run.of_empty:.1%} of the empty one): "
        f"{'PASS' if run.meets_rate else 'MISS'} (target ≥ {run.target_of_durable:.0%})"
    )
    caveat = "" if run.pacer_kept_pace else " (the pacer did not keep the pace: see above)"
    print(
        f"  latency: open-loop p99 {run.open_loop.p99_ms:.1f} ms at "
        f"{run.open_loop.asked_rate:.1f}/s for {run.open_loop.seconds:g} s: "
        f"{'PASS' if run.meets_p99 else 'MISS'} (target ≤ {TARGET_P99_MS:g} ms){caveat}"
    )
    if not run.ok:
        print(f"  ERRORS in the {run.backend} run: see the counts above")


async def run(
    seconds: int,
    concurrency: int,
    backends: Sequence[str],
    workers: int | None,
    open_seconds: float,
) -> list[Run]:
    print(
        f"web-form ingest: wrk -t1 -c{concurrency}, {seconds} s per target (closed loop); "
        f"then omnicrm paced open-loop for {open_seconds:g} s at half its wrk rate"
    )
    results = []
    for backend in backends:
        result = await run_backend(backend, seconds, concurrency, open_seconds, workers)
        print_run(result)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="per wrk run (whole seconds: wrk's unit)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="wrk's connections")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workers", type=int, help="web processes on PostgreSQL (default: one per core)"
    )
    parser.add_argument(
        "--open-loop-seconds",
        type=float,
        help="omnicrm's open loop (default 60; as long as --seconds when that is under 10)",
    )
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    missing = wrk_missing()
    if missing:
        print(missing, file=sys.stderr)
        raise SystemExit(2)
    seconds = max(1, round(args.seconds))
    open_seconds = args.open_loop_seconds
    if open_seconds is None:
        # A quick run (--seconds under the default) checks the open loop works, no more.
        open_seconds = 60.0 if args.seconds >= 10 else float(seconds)
    if open_seconds <= 0:
        parser.error("--open-loop-seconds must be positive")
    return asyncio.run(run(seconds, args.concurrency, backends, args.workers, open_seconds))


if __name__ == "__main__":
    sys.exit(0 if all(result.ok for result in main()) else 1)

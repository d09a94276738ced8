"""Live events to many consoles: how long an event takes to reach every open `/ws`, and RSS.

Issue 17 asks that with 1,000 consoles connected an event reach all of them with p99 ≤ 100 ms,
and that the memory it takes be reported. For each backend (SQLite, PostgreSQL), in one run:

1. **Ceiling**: bench/bare_ws_server.py (a process of its own) holds as many websockets and
   broadcasts as many small JSON messages, each on a trigger request, at the same pace, to the
   same client processes on the same clock: what aiohttp on this machine, at that moment,
   takes to push a message to that many sockets.
2. **omnicrm**: `omnicrm serve` as it runs by default (SQLite: one process; PostgreSQL: a web
   process per core on one port plus the worker process; events cross them by LISTEN/NOTIFY)
   on a fresh database with `--consoles` operators in a few team queues, all of them members
   of the web form's queue too and available, each signed in with their session cookie and
   holding the console's websocket open (with the server's Origin, offering
   permessage-deflate as browsers do). The events alternate between two kinds that every
   console may see (`--kind` runs one alone):
   - `operator.presence` (audience: everyone): one of a set of signed-in operators without a
     console sets their own presence (PUT /api/v1/operators/me/presence), each once;
   - `conversation.created` (audience: the conversation's queue, by its labels): a new
     customer posts the web form, which also sends `contact.created`, `interaction.created`
     and routing's events to the consoles (counted as messages, not timed).

The consoles live in `--clients` processes of bench/ws_clients.py, so the load generator is
not the limit; they report how late their own event loops ran, which is printed beside the
latencies. Each event's latency, per console, runs from the moment its trigger request was
sent (the send time, on this process's monotonic clock, which the client processes share) to
its arrival; the trigger's own answer time is printed too. Triggers go one at a time, on a
schedule of `--rate` a second (a trigger is sent late when the previous one answered late);
the default, one a second, is modest on purpose: a form post is some 6,000 messages with
1,000 consoles, and a pace the server cannot keep would measure its queue, not its latency.
Printed: per target, the latencies over every (event, console) pair (p50, p99, max), the
median and worst of the per-event p99s over the consoles, missed deliveries, the server's
CPU per event and per message sent, the client processes' loop lag, and the resident memory
(VmRSS) of each server process started and quiet, and with the consoles open after the
events. The verdict is the p99 against 100 ms; a MISS is a printed fact. The exit status is 1
only for errors (a sign-in or a websocket that failed, a console that missed an event it
should have had, a trigger answered wrongly).

Operators sign in with cheap password hashes, as the test suite's servers do
(`passwords.CHEAP` for the hashes bench/form_queue.py makes, and `tests.run_cli`, which
installs the same parameters, runs the server): a thousand sign-ins with production's argon2
would take about a thousand seconds of the CPU the benchmark measures.

    python bench/websockets.py [--consoles 1000] [--events 100] [--rate 1] [--clients 2]
                               [--backends sqlite,postgresql] [--workers N]
                               [--kind both|presence|form] [--no-deflate] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402 - the path is set up just above
    bare_processes,
    database,
    percentile,
    session_on,
    wait_listening,
    wait_quiet,
)
from bench.form_queue import CONSOLE_PASSWORD, FORM_PATH, seed  # noqa: E402
from bench.procfs import (  # noqa: E402
    load_average,
    process_cpu,
    process_tree,
    rss_kib,
    tree_cpu,
)
from bench.websockets_report import (  # noqa: E402
    Clients,
    Delivery,
    Run,
    ServerProcess,
    Target,
    print_run,
)
from bench.ws_clients import Signed, sign_in  # noqa: E402
from core.event_types import CONVERSATION_CREATED, OPERATOR_PRESENCE  # noqa: E402
from core.models import Conversation, Presence  # noqa: E402
from tests.servers import omnicrm_server  # noqa: E402

CLIENT = ROOT / "bench" / "ws_clients.py"
BARE = ROOT / "bench" / "bare_ws_server.py"
TEAMS = 4  # team queues the console operators are spread over
# After the last trigger, arrivals are awaited until every one is in, or until none came in
# for this long (then the rest count as missed).
SETTLE_SECONDS = 10.0
# A trigger started this much after its time on the schedule counts as late.
LATE_AFTER = 0.010
# Before the events, the server's CPU use with every console open is measured for this long
# (the consoles' own background work: each records that it is still there).
IDLE_SECONDS = 5.0
# omnicrm's two kinds of trigger (--kind), in the order of their rows.
KINDS = ("presence", "form")
QUICK = {"consoles": 50, "events": 20, "rate": 10.0, "backends": "sqlite"}


# --- processes and memory -------------------------------------------------------------------


def role_of(pid: int, root: int, single: bool) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return "gone"
    if pid == root:
        return "serve (web and background)" if single else "serve (supervisor)"
    if "worker" in words:
        return "worker"
    return "web" if "web" in words else " ".join(words[-3:]).strip()


def server_processes_of(pid: int, single: bool) -> list[ServerProcess]:
    return [
        ServerProcess(f"{role_of(member, pid, single)} [{member}]", member, rss_kib(member))
        for member in process_tree(pid)
    ]


def update_loaded(processes: list[ServerProcess]) -> None:
    for item in processes:
        item.loaded_kib = rss_kib(item.pid)


# --- the consoles' processes ----------------------------------------------------------------


class ClientProcess:
    """One bench/ws_clients.py, spoken to in lines of JSON."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, job: dict[str, Any]) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CLIENT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,  # the arrivals come back as one line
        )
        client = cls(process)
        client.send(json.dumps(job))
        return client

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"a console process ended (exit {await self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return await self.answer()

    async def finish(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@asynccontextmanager
async def console_processes(
    url: str,
    processes: int,
    track: list[dict[str, Any]],
    count: int,
    deflate: bool,
    emails: Sequence[str] = (),
) -> AsyncIterator[tuple[list[ClientProcess], list[dict[str, Any]]]]:
    """`count` consoles (signed in as `emails` when given) over `processes` client
    processes, open for the block; their ready answers."""
    shares = [list(range(count))[part::processes] for part in range(processes)]
    started: list[ClientProcess] = []
    try:
        for share in shares:
            job: dict[str, Any] = {
                "url": url,
                "track": track,
                "count": len(share),
                "deflate": deflate,
            }
            if emails:
                job |= {
                    "emails": [emails[index] for index in share],
                    "password": CONSOLE_PASSWORD,
                }
            started.append(await ClientProcess.start(job))
        ready = [await client.answer() for client in started]
        yield started, ready
    finally:
        await asyncio.gather(*(client.finish() for client in started))


# --- triggers and timing --------------------------------------------------------------------

# A trigger: sends its request, True if it was answered as it should be.
Fire = Callable[[], Awaitable[bool]]


@dataclass
class Fired:
    kind: int  # index into the deliveries
    key: str  # how the consoles name the event it causes ("" until known)
    sent: float = 0.0
    answered: float = 0.0
    ok: bool = False
    late: bool = False


async def fire_all(triggers: Sequence[tuple[Fired, Fire]], rate: float) -> None:
    """Each trigger at its time on the schedule, one at a time."""
    start = time.monotonic() + 0.2
    for number, (fired, fire) in enumerate(triggers):
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        fired.late = delay < -LATE_AFTER
        fired.sent = time.monotonic()
        fired.ok = await fire()
        fired.answered = time.monotonic()


async def settle(clients: Sequence[ClientProcess], expected: int) -> None:
    """Until every tracked arrival is in, or none came in for SETTLE_SECONDS."""
    last, quiet_since = -1, time.monotonic()
    while True:
        answers = [await client.ask("count") for client in clients]
        received = sum(int(answer["received"]) for answer in answers)
        if received >= expected:
            return
        if received != last:
            last, quiet_since = received, time.monotonic()
        elif time.monotonic() - quiet_since > SETTLE_SECONDS:
            return
        await asyncio.sleep(0.2)


async def measure(
    name: str,
    kinds: Sequence[str],
    triggers: Sequence[tuple[Fired, Fire]],
    clients: Sequence[ClientProcess],
    ready: Sequence[dict[str, Any]],
    server_pid: int,
    rate: float,
    processes: list[ServerProcess],
    idle_cpu_share: float | None = None,
    keys_after: Callable[[], Awaitable[None]] | None = None,
) -> Target:
    """Fire the triggers at the consoles' server and time every arrival."""
    opened = sum(int(answer["ready"]) for answer in ready)
    failures = [text for answer in ready for text in answer["failures"]]
    failed = sum(int(answer["failed"]) for answer in ready)
    if failed > len(failures):
        failures.append(f"… {failed} consoles failed in all")
    for client in clients:
        client.send("go")
    client_cpu = [process_cpu(client.process.pid) for client in clients]
    cpu_before = tree_cpu(server_pid)
    each_before = [process_cpu(item.pid) for item in processes]
    began = time.monotonic()
    await fire_all(triggers, rate)
    await settle(clients, opened * len(triggers))
    seconds = time.monotonic() - began
    cpu_after = tree_cpu(server_pid)
    for item, before in zip(processes, each_before, strict=True):
        after = process_cpu(item.pid)
        item.cpu_seconds = None if before is None or after is None else after - before
    client_share = [
        ((process_cpu(client.process.pid) or 0.0) - (before or 0.0)) / seconds
        for client, before in zip(clients, client_cpu, strict=True)
    ]
    update_loaded(processes)
    answers = [await client.ask("stop") for client in clients]
    if keys_after is not None:
        await keys_after()
    # Every console's arrivals, by the key of the event.
    consoles: list[dict[str, float]] = []
    for answer in answers:
        keys = answer["keys"]
        for was_opened, times in zip(answer["opened"], answer["times"], strict=True):
            if was_opened:
                consoles.append(
                    {key: at for key, at in zip(keys, times, strict=True) if at is not None}
                )
    deliveries = []
    for kind, kind_name in enumerate(kinds):
        mine = [fired for fired, _ in triggers if fired.kind == kind]
        if not mine:
            continue  # a run of the other kind alone (--kind)
        latencies: list[float] = []
        after_answer: list[float] = []
        per_event: list[float] = []
        missed = 0
        for fired in mine:
            arrived = [seen[fired.key] for seen in consoles if fired.key in seen]
            these = [(at - fired.sent) * 1000 for at in arrived]
            missed += len(consoles) - len(these)
            latencies.extend(these)
            after_answer.extend((at - fired.answered) * 1000 for at in arrived)
            if these:
                per_event.append(percentile(these, 0.99))
        deliveries.append(
            Delivery(
                kind_name,
                len(mine),
                len(consoles),
                latencies,
                per_event,
                missed,
                [(fired.answered - fired.sent) * 1000 for fired in mine],
                after_answer,
                sum(not fired.ok for fired in mine),
                sum(fired.late for fired in mine),
            )
        )
    return Target(
        name,
        deliveries,
        Clients(
            len(clients),
            opened,
            max(float(answer["seconds"]) for answer in ready),
            sum(int(answer["messages"]) for answer in answers),
            sum(int(answer["duplicates"]) for answer in answers),
            sum(int(answer["resyncs"]) for answer in answers),
            sum(int(answer["closed"]) for answer in answers),
            max(float(answer["lag_p99_ms"]) for answer in answers),
            max(float(answer["lag_max_ms"]) for answer in answers),
            client_share,
            failures,
        ),
        processes,
        seconds,
        None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        idle_cpu_share,
    )


# --- the ceiling ----------------------------------------------------------------------------


@asynccontextmanager
async def bare_ws_server() -> AsyncIterator[tuple[str, int]]:
    """bench/bare_ws_server.py on a free port: its address and pid, once it answers."""
    async with bare_processes(lambda port: [str(BARE), str(port)], "/ping") as (url, started):
        yield url, started[0].pid


async def run_ceiling(
    consoles: int, events: int, rate: float, processes: int, deflate: bool
) -> Target:
    async with bare_ws_server() as (url, pid), aiohttp.ClientSession() as http:
        bare = [ServerProcess(f"bare_ws_server [{pid}]", pid, rss_kib(pid))]
        track = [{"type": "bench", "by": "seq"}]
        async with console_processes(url, processes, track, consoles, deflate) as (
            clients,
            ready,
        ):

            def broadcast(seq: int) -> Fire:
                async def fire() -> bool:
                    async with http.post(f"{url}/broadcast/{seq}") as response:
                        return response.status == 204

                return fire

            triggers = [(Fired(0, f"bench:{seq}"), broadcast(seq)) for seq in range(events)]
            return await measure(
                "bare aiohttp broadcast", ["bench"], triggers, clients, ready, pid, rate, bare
            )


# --- omnicrm --------------------------------------------------------------------------------


async def conversation_ids(database_url: str) -> list[int]:
    async with session_on(database_url) as session:
        return list(await session.scalars(select(Conversation.id).order_by(Conversation.id)))


async def run_omnicrm(
    backend: str,
    consoles: int,
    events: int,
    rate: float,
    processes: int,
    web_processes: int,
    deflate: bool,
    kind: str,
) -> Target:
    # Which trigger makes each event: alternately (both), or one kind alone.
    kinds = [KINDS.index(kind) if kind != "both" else number % 2 for number in range(events)]
    presence_events = kinds.count(0)
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(database(backend))
        staff = await seed(database_url, consoles, teams=TEAMS, triggers=presence_events)
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        log = Path(folder) / "omnicrm.log"
        environment = {
            "OMNICRM_FORM_RATE_LIMIT_PER_MINUTE": "100000000",
            # Sign-ins come from one address, many at once: a success takes its count back,
            # but those in flight count meanwhile.
            "OMNICRM_LOGIN_FAILURES_PER_ADDRESS": "100000",
            "OMNICRM_LOG_LEVEL": "WARNING",
            "OMNICRM_WORKERS": str(web_processes),
        }
        try:
            server = await stack.enter_async_context(
                omnicrm_server(database_url, environment, log_path=log)
            )
            url = server.url
            pid = server.process.pid
            await wait_listening(urlsplit(url).port or 0, web_processes, alive=[server.process])
            await wait_quiet(pid)
            server_processes = server_processes_of(pid, backend == "sqlite")
            http = await stack.enter_async_context(
                aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            )
            signed = [await sign_in(http, url, email, CONSOLE_PASSWORD) for email in staff.triggers]
            track: list[dict[str, Any]] = [
                {
                    "type": OPERATOR_PRESENCE,
                    "by": "operator",
                    "only": [item.operator_id for item in signed],
                },
                {"type": CONVERSATION_CREATED, "by": "conversation"},
            ]
            clients, ready = await stack.enter_async_context(
                console_processes(url, processes, track, consoles, deflate, staff.consoles)
            )
            # The consoles' own background work, before any event.
            await asyncio.sleep(1.0)
            idle_before = tree_cpu(pid)
            each_before = [process_cpu(item.pid) for item in server_processes]
            await asyncio.sleep(IDLE_SECONDS)
            idle_after = tree_cpu(pid)
            for item, before in zip(server_processes, each_before, strict=True):
                after = process_cpu(item.pid)
                if before is not None and after is not None:
                    item.idle_cpu_share = (after - before) / IDLE_SECONDS
            idle_share = (
                None
                if idle_before is None or idle_after is None
                else (idle_after - idle_before) / IDLE_SECONDS
            )

            def presence(who: Signed) -> Fire:
                async def fire() -> bool:
                    headers = {"Cookie": who.cookie, "X-CSRF-Token": who.csrf, "Origin": url}
                    async with http.put(
                        f"{url}/api/v1/operators/me/presence",
                        json={"presence": Presence.AWAY},
                        headers=headers,
                    ) as response:
                        await response.read()
                        return response.status == 200

                return fire

            token = secrets.token_hex(4)

            def form(number: int) -> Fire:
                async def fire() -> bool:
                    fields = {
                        "name": f"Customer {number}",
                        "email": f"customer{number}-{token}@example.com",
                        "message": "Where is my order? " * 5,
                        "submission_id": f"{token}-{number}",
                    }
                    async with http.post(
                        f"{url}{FORM_PATH}", data=fields, allow_redirects=False
                    ) as response:
                        await response.read()
                        return response.status == 303

                return fire

            triggers: list[tuple[Fired, Fire]] = []
            for number, made_by in enumerate(kinds):
                if made_by == 0:
                    who = signed[kinds[:number].count(0)]
                    key = f"{OPERATOR_PRESENCE}:{who.operator_id}"
                    triggers.append((Fired(0, key), presence(who)))
                else:
                    triggers.append((Fired(1, ""), form(number)))

            async def name_conversations() -> None:
                # The forms were posted one at a time, so their conversations' ids rise in the
                # order of the posts.
                made = await conversation_ids(database_url)
                forms = [fired for fired, _ in triggers if fired.kind == 1]
                for fired, conversation in zip(forms, made, strict=False):
                    fired.key = f"{CONVERSATION_CREATED}:{conversation}"

            return await measure(
                f"omnicrm ({backend})",
                [
                    f"{OPERATOR_PRESENCE} (everyone)",
                    f"{CONVERSATION_CREATED} (form's queue)",
                ],
                triggers,
                clients,
                ready,
                pid,
                rate,
                server_processes,
                idle_share,
                name_conversations,
            )
        except Exception:
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-20:]
                print("omnicrm's log, last lines:", *tail, sep="\n  ", file=sys.stderr)
            raise
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


async def run_backend(backend: str, options: Options) -> Run:
    web_processes = (options.workers or os.cpu_count() or 1) if backend == "postgresql" else 1
    consoles, events, rate = options.consoles, options.events, options.rate
    ceiling = await run_ceiling(consoles, events, rate, options.clients, options.deflate)
    omnicrm = await run_omnicrm(
        backend,
        consoles,
        events,
        rate,
        options.clients,
        web_processes,
        options.deflate,
        options.kind,
    )
    return Run(backend, web_processes, consoles, rate, ceiling, omnicrm)


@dataclass(frozen=True)
class Options:
    consoles: int
    events: int
    rate: float
    clients: int
    backends: tuple[str, ...]
    workers: int | None
    deflate: bool
    kind: str = "both"


async def run(options: Options) -> list[Run]:
    print(
        f"live events to {options.consoles} websocket consoles: {options.events} events at "
        f"{options.rate:g}/s per target, consoles in {options.clients} client processes"
        f"{'' if options.deflate else ' without permessage-deflate'}"
        f"{'' if options.kind == 'both' else f'; {options.kind} events only'}; load average "
        f"{load_average()}"
    )
    results = []
    for backend in options.backends:
        result = await run_backend(backend, options)
        print_run(result)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> list[Run]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--consoles", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="triggers per target")
    parser.add_argument("--rate", type=float, default=1.0, help="triggers per second")
    parser.add_argument("--clients", type=int, default=2, help="console processes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workers", type=int, help="web processes on PostgreSQL (default: one per core)"
    )
    parser.add_argument(
        "--no-deflate",
        action="store_true",
        help="consoles do not offer permessage-deflate (browsers do)",
    )
    parser.add_argument(
        "--kind",
        choices=["both", *KINDS],
        default="both",
        help="omnicrm's events: presence changes and form posts in turn, or one kind alone",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 consoles, 20 events at 10/s, SQLite only (the options above override it)",
    )
    if parser.parse_args(argv).quick:
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    if args.consoles < 1 or args.events < 2 or args.rate <= 0 or args.clients < 1:
        parser.error("--consoles and --clients must be at least 1, --events 2, --rate above 0")
    options = Options(
        args.consoles,
        args.events,
        args.rate,
        args.clients,
        backends,
        args.workers,
        not args.no_deflate,
        args.kind,
    )
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(0 if all(result.ok for result in main()) else 1)

"""The consoles of bench/websockets.py: one process holding many websockets, timing arrivals.

bench/websockets.py starts a few of these, so that the load generator is not what limits the
figures: each process signs its share of the operators in, opens their `/ws` with the
server's Origin and offering permessage-deflate, as a browser does (unless the job says
`"deflate": false`; aiohttp's client offers nothing by default), and notes when each tracked
event reaches each socket, on `time.monotonic()`, the machine-wide CLOCK_MONOTONIC on Linux,
so the driver can subtract the send times it noted in its own process.

A timestamp is taken when this process's event loop hands the message over, so a busy loop
would make deliveries look late. The loop's own lateness is measured beside them (a task that
sleeps 5 ms at a time and notes how much later it woke), and the driver prints it next to the
latencies: a lag far below them means these processes kept up.

It talks with the driver in lines of JSON. stdin: first the job (`url`, `password` and
`emails` to sign in with, or `count` sockets to open without signing in; `deflate`; `track`:
which event types to time, by which id, optionally only some ids), then commands: `go` (the
measured part starts), `count` (answers how many tracked arrivals so far), `stop` (answers
with every arrival, closes the sockets and ends). stdout: `{"ready": …}` once every socket
is open and greeted, then one answer per command.

    python bench/ws_clients.py < job-and-commands
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# Sign-ins at once per process: the server checks each password in a small pool anyway.
SIGN_IN_CONCURRENCY = 8
# The lag probe's sleep.
PROBE_SECONDS = 0.005
# How long a socket may take to say hello (its sign-in and handshake done) before it counts
# as failed.
HELLO_TIMEOUT = 60.0


@dataclass(frozen=True)
class Tracked:
    """An event type whose arrivals are timed, told apart by `ids[by]`; `only` those ids
    when given."""

    type: str
    by: str
    only: frozenset[int] | None


@dataclass
class Arrivals:
    """What reached the sockets: per socket, the time of each tracked event by key."""

    sockets: list[dict[str, float]] = field(default_factory=list)
    received: int = 0  # tracked arrivals
    messages: int = 0  # every text message after the hello
    duplicates: int = 0  # a tracked event that reached a socket twice
    resyncs: int = 0  # "reload": the server dropped events for that socket
    closed: int = 0  # sockets the server closed while the run went on
    lags: list[float] = field(default_factory=list)  # the probe's lateness, seconds

    def note(self, index: int, at: float, text: str, tracked: dict[str, Tracked]) -> None:
        self.messages += 1
        data = json.loads(text)
        kind = data.get("type")
        if kind == "resync":
            self.resyncs += 1
            return
        rule = tracked.get(kind)
        if rule is None:
            return
        value = data.get("ids", {}).get(rule.by)
        if not isinstance(value, int) or (rule.only is not None and value not in rule.only):
            return
        key = f"{kind}:{value}"
        seen = self.sockets[index]
        if key in seen:
            self.duplicates += 1
            return
        seen[key] = at
        self.received += 1


@dataclass
class Signed:
    """A new session of an operator: the Cookie header, and what a request that changes
    something also needs (their id, the CSRF token)."""

    operator_id: int
    cookie: str
    csrf: str


async def sign_in(http: aiohttp.ClientSession, url: str, email: str, password: str) -> Signed:
    """Sign `email` in (RuntimeError if refused)."""
    login = {"email": email, "password": password}
    async with http.post(
        f"{url}/api/v1/auth/login", json=login, headers={"Origin": url}
    ) as response:
        if response.status != 200:
            text = await response.text()
            raise RuntimeError(f"{email} could not sign in ({response.status}): {text}")
        body = await response.json()
        cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())
    return Signed(int(body["operator"]["id"]), cookie, str(body["csrf_token"]))


async def open_socket(
    http: aiohttp.ClientSession, url: str, cookie: str | None, deflate: bool
) -> aiohttp.ClientWebSocketResponse:
    """A console's websocket, once the server has greeted it. With `deflate` it offers
    permessage-deflate (15-bit window) as browsers do, so the server compresses each message
    for each socket as it does for real consoles."""
    headers = {"Cookie": cookie} if cookie else {}
    socket = await http.ws_connect(
        f"{url}/ws", origin=url, headers=headers, autoping=True, compress=15 if deflate else 0
    )
    hello = await socket.receive(timeout=HELLO_TIMEOUT)
    if hello.type != aiohttp.WSMsgType.TEXT or json.loads(hello.data).get("type") != "hello":
        await socket.close()
        raise RuntimeError(f"no hello on the websocket: {hello.type.name} {hello.data!r}"[:200])
    return socket


async def listen(
    socket: aiohttp.ClientWebSocketResponse,
    index: int,
    arrivals: Arrivals,
    tracked: dict[str, Tracked],
    stopping: asyncio.Event,
) -> None:
    async for message in socket:
        at = time.monotonic()
        if message.type == aiohttp.WSMsgType.TEXT:
            arrivals.note(index, at, message.data, tracked)
    if not stopping.is_set():
        arrivals.closed += 1


async def probe_lag(arrivals: Arrivals) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(PROBE_SECONDS)
        arrivals.lags.append(loop.time() - before - PROBE_SECONDS)


def say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def percentile_ms(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def run(job: dict[str, Any], commands: asyncio.StreamReader) -> None:
    url: str = job["url"]
    emails: list[str] = job.get("emails") or []
    count = len(emails) if emails else int(job["count"])
    tracked = {
        rule["type"]: Tracked(
            rule["type"],
            rule["by"],
            None if rule.get("only") is None else frozenset(rule["only"]),
        )
        for rule in job["track"]
    }
    arrivals = Arrivals(sockets=[{} for _ in range(count)])
    stopping = asyncio.Event()
    started = time.monotonic()
    failures: list[str] = []
    gate = asyncio.Semaphore(SIGN_IN_CONCURRENCY)
    # One connection pool for all, without a shared cookie jar: each socket sends its own
    # operator's cookie.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:

        async def connect(index: int) -> aiohttp.ClientWebSocketResponse | None:
            try:
                async with gate:
                    cookie = None
                    if emails:
                        cookie = (await sign_in(http, url, emails[index], job["password"])).cookie
                    return await open_socket(http, url, cookie, bool(job.get("deflate", True)))
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"console {index}: {exc}")
                return None

        opened = await asyncio.gather(*(connect(index) for index in range(count)))
        sockets = [socket for socket in opened if socket is not None]
        listeners = [
            asyncio.create_task(listen(socket, index, arrivals, tracked, stopping))
            for index, socket in enumerate(opened)
            if socket is not None
        ]
        say(
            {
                "ready": len(sockets),
                "failures": failures[:10],
                "failed": len(failures),
                "seconds": time.monotonic() - started,
            }
        )
        probe: asyncio.Task[None] | None = None
        while line := (await commands.readline()).decode().strip():
            if line == "go":
                arrivals.received = arrivals.messages = 0
                probe = asyncio.create_task(probe_lag(arrivals))
            elif line == "count":
                say({"received": arrivals.received, "closed": arrivals.closed})
            elif line == "stop":
                break
        stopping.set()
        if probe is not None:
            probe.cancel()
        keys = sorted({key for seen in arrivals.sockets for key in seen})
        say(
            {
                "keys": keys,
                "times": [[seen.get(key) for key in keys] for seen in arrivals.sockets],
                "opened": [socket is not None for socket in opened],
                "messages": arrivals.messages,
                "duplicates": arrivals.duplicates,
                "resyncs": arrivals.resyncs,
                "closed": arrivals.closed,
                "lag_p99_ms": percentile_ms(arrivals.lags, 0.99),
                "lag_max_ms": percentile_ms(arrivals.lags, 1.0),
            }
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True),
                10,
            )
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


async def main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    job = json.loads(await commands.readline())
    await run(job, commands)


if __name__ == "__main__":
    asyncio.run(main())

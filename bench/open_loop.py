"""Open-loop pacing for bench/ingest.py: web forms posted on a fixed schedule, latency from it.

A closed-loop load generator (wrk, or `bench.common.load`) sends a client's next request only
when the previous one was answered, and times each from when it went out: while the server
stalls, nobody sends, so the stall shows up in one request's latency instead of in every
request that should have been sent meanwhile (coordinated omission). wrk 4 cannot pace by the
clock either (its Lua has no wall clock to time a schedule with). So this process posts
request i at t0 + i/rate, each as its own task at its time whatever became of the earlier
ones, and times it from that scheduled time to its answer: a server that falls behind is
charged for the queue it builds.

It runs as a process of its own, started by bench/ingest.py, so nothing else on its event
loop delays the schedule; when it cannot keep up anyway (its loop woke late, or every
connection of its generous limit was busy) it counts those requests as late, and it reports
the rate it achieved next to the rate asked for. One line of JSON on stdout is the result.

    python bench/open_loop.py URL --rate 200 --seconds 60 [--token T] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import aiohttp

# A request whose task started this much after its scheduled time counts as late.
LATE_AFTER = 0.010
# Connections open at once at most: far more than a server answering in time needs (rate
# times latency), so the limit only bites when the server is already far behind.
CONNECTIONS = 512
# A request not answered in this long is an error (and its latency is this long at least).
REQUEST_TIMEOUT = 60.0


@dataclass
class Paced:
    """What an open-loop run achieved; latencies in ms from each request's scheduled time."""

    asked_rate: float
    seconds: float
    scheduled: int
    sent_rate: float  # requests started per second over the schedule's span
    answered_rate: float  # answers per second, from t0 to the last answer
    answered: int  # with the expected status
    errors: int  # another status, a broken connection, a timeout
    late: int  # started more than LATE_AFTER after their time, or waited for a connection
    max_lag_ms: float  # the latest start after a scheduled time
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    first_error: str = ""

    @property
    def share_sent(self) -> float:
        return self.sent_rate / self.asked_rate if self.asked_rate else 0.0


def form_body(token: str, number: int, clients: int) -> bytes:
    """The fields bench/ingest.py's clients post; customers repeat as theirs do (50 each)."""
    client = number % clients
    return urlencode(
        {
            "name": f"Bench Client {client}",
            "email": f"bench{client}-{number // clients % 50}@example.com",
            "message": "Where is my order? " * 5,
            "submission_id": f"{token}-{number}",
        }
    ).encode()


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def pace(
    url: str,
    rate: float,
    seconds: float,
    *,
    token: str,
    clients: int = 16,
    expected: int = 303,
    connections: int = CONNECTIONS,
) -> Paced:
    """Post `rate` forms a second to `url` for `seconds`, on the clock."""
    loop = asyncio.get_running_loop()
    total = max(1, round(rate * seconds))
    latencies: list[float] = []
    errors = 0
    late = 0
    max_lag = 0.0
    in_flight = 0
    first_error = ""
    last_answer = 0.0
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def fire(http: aiohttp.ClientSession, number: int, scheduled: float) -> None:
        nonlocal errors, in_flight, first_error, last_answer
        body = form_body(token, number, clients)
        try:
            async with http.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                await response.read()
                if response.status != expected:
                    errors += 1
                    first_error = first_error or f"status {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors += 1
            first_error = first_error or repr(exc)
        finally:
            in_flight -= 1
            last_answer = loop.time()
            latencies.append(last_answer - scheduled)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks: set[asyncio.Task[None]] = set()
        t0 = loop.time() + 0.1
        number = 0
        last_start = t0
        while number < total:
            now = loop.time()
            # Every request whose time has come starts now, however many that is.
            while number < total and t0 + number / rate <= now:
                scheduled = t0 + number / rate
                lag = now - scheduled
                max_lag = max(max_lag, lag)
                if lag > LATE_AFTER or in_flight >= connections:
                    late += 1
                in_flight += 1
                task = asyncio.create_task(fire(http, number, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                number += 1
                last_start = now
            if number < total:
                await asyncio.sleep(max(0.0, t0 + number / rate - loop.time()))
        if tasks:
            await asyncio.gather(*tasks)
    span = max(last_start - t0, 0.0) + 1 / rate
    ordered = sorted(latencies)
    return Paced(
        asked_rate=rate,
        seconds=seconds,
        scheduled=total,
        sent_rate=total / span,
        answered_rate=(total - errors) / max(last_answer - t0, 1e-9),
        answered=total - errors,
        errors=errors,
        late=late,
        max_lag_ms=max_lag * 1000,
        p50_ms=percentile(ordered, 0.5),
        p90_ms=percentile(ordered, 0.9),
        p99_ms=percentile(ordered, 0.99),
        max_ms=ordered[-1] * 1000 if ordered else float("nan"),
        first_error=first_error,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--token", default=secrets.token_hex(4), help="submission ids' prefix")
    parser.add_argument("--clients", type=int, default=16, help="the email pool: 50 per client")
    parser.add_argument("--expect", type=int, default=303, help="the status of a stored post")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    result = asyncio.run(
        pace(
            args.url,
            args.rate,
            args.seconds,
            token=args.token,
            clients=args.clients,
            expected=args.expect,
            connections=args.connections,
        )
    )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main(sys.argv[1:])

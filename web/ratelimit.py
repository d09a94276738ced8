"""Rate limits per client: in memory per server process (sliding windows), and for what must
hold across processes (`enforce_shared`: the web forms) counted in the database on PostgreSQL,
where several processes serve (core/rate_limits.py)."""

from __future__ import annotations

import json
import math
import os
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from core import rate_limits
from core.clock import utcnow
from web.api import error_body
from web.keys import ENGINE, SETTINGS
from web.origins import client_address

Clock = Callable[[], float]


class SlidingWindowLimiter:
    """At most `limit` hits per key within any `window` seconds."""

    def __init__(self, limit: int, window: float = 60.0, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window

    def hit(self, key: str) -> float | None:
        """Count a hit; None if allowed, else the seconds until the next one would be."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        return None

    def _sweep(self, now: float) -> None:
        # Forget clients that have been quiet for a whole window, so memory stays bounded.
        for key in [key for key, hits in self._hits.items() if hits[-1] <= now - self.window]:
            del self._hits[key]
        self._next_sweep = now + self.window


# One limiter per application and purpose: tests run several applications in one process.
_limiters: weakref.WeakKeyDictionary[web.Application, dict[str, SlidingWindowLimiter]] = (
    weakref.WeakKeyDictionary()
)


def limiter_for(
    app: web.Application, purpose: str, limit: int, window: float = 60.0
) -> SlidingWindowLimiter:
    """The application's limiter for `purpose`: at most `limit` hits per `window` seconds."""
    limiters = _limiters.setdefault(app, {})
    if purpose not in limiters:
        limiters[purpose] = SlidingWindowLimiter(limit, window)
    return limiters[purpose]


async def enforce_shared(request: web.Request, purpose: str, per_minute: int) -> None:
    """429 with Retry-After when the client's address has used up its allowance, counted
    across every server process: in the database on PostgreSQL, where several processes may
    serve (`rate_limits.SharedLimit`); in memory on SQLite, which serves from one."""
    key = client_address(request)
    settings = request.app[SETTINGS]
    if not settings.is_postgresql:
        enforce_key(request, purpose, per_minute, key)
        return
    shared = _shared.setdefault(request.app, {})
    limit = shared.get(purpose)
    if limit is None:
        processes = settings.workers or os.cpu_count() or 1  # as `omnicrm serve` runs
        window = timedelta(seconds=60)
        limit = rate_limits.SharedLimit(request.app[ENGINE], purpose, per_minute, window, processes)
        shared[purpose] = limit
    _refuse(await limit.hit(key, utcnow()))


_shared: weakref.WeakKeyDictionary[web.Application, dict[str, rate_limits.SharedLimit]] = (
    weakref.WeakKeyDictionary()
)


def enforce_key(
    request: web.Request, purpose: str, limit: int, key: str, window: float = 60.0
) -> None:
    """429 with Retry-After once `key` (an address, a visitor) has made `limit` requests
    for `purpose` within `window` seconds."""
    _refuse(limiter_for(request.app, purpose, limit, window).hit(key))


def _refuse(retry_after: float | None) -> None:
    if retry_after is not None:
        seconds = max(1, math.ceil(retry_after))
        raise web.HTTPTooManyRequests(
            headers={"Retry-After": str(seconds)},
            text=json.dumps(
                error_body("rate_limited", f"too many requests; try again in {seconds} seconds")
            ),
            content_type="application/json",
        )

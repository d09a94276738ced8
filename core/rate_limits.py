"""Rate limits every server process shares: hits counted in the database per fixed window.

`SharedLimit` spares the database the clients far below the limit: a process admits a key's
first hits of a window on its own count, up to its share (`limit // (2 * processes)`), and
from then on counts every hit in the database together with those it kept. So almost every
visitor of a form (a post or two a minute) costs no round trip, and only clients that post
more than a share in a window get a row; a client gets at most `limit` plus every process's
unwritten share, under 1.5 times `limit`, per window.

`hit` is the database's side: one statement (an upsert that returns the window's count) on a
connection of its own, autocommitted on PostgreSQL (one round trip), so a hit counts whatever
becomes of the request and no transaction of the request waits on it. A key's first write in
a window also clears its purpose's windows that ended before the previous one, so the table
holds about two windows of clients. Fixed windows allow up to twice the limit across a
window's edge; the in-memory limiter (web/ratelimit.py) slides.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.models import RateLimitCount
from core.sql import dialect_insert

MAX_KEY = 200


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window `now` falls in (windows are aligned on the epoch)."""
    seconds = window.total_seconds()
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    started = (now - epoch).total_seconds() // seconds * seconds
    return epoch + timedelta(seconds=started)


class SharedLimit:
    """At most `limit` hits of a key per `window` for `purpose`, across `processes` server
    processes sharing `engine`'s database (see the module's docstring)."""

    def __init__(
        self, engine: AsyncEngine, purpose: str, limit: int, window: timedelta, processes: int
    ) -> None:
        self._engine = engine
        self._purpose = purpose
        self._limit = limit
        self._window = window
        self._share = limit // (2 * max(1, processes))
        self._started: datetime | None = None
        # This window's hits admitted on this process's own count, not written yet, and the
        # keys past their share, whose every hit is counted in the database.
        self._kept: dict[str, int] = {}
        self._written: set[str] = set()

    async def hit(self, key: str, now: datetime) -> float | None:
        """Count a hit of `key`; None if allowed, else the seconds until its window ends."""
        started = window_start(now, self._window)
        if started != self._started:
            # What was kept counted a window that is over.
            self._started, self._kept, self._written = started, {}, set()
        if key not in self._written:
            hits = self._kept.get(key, 0) + 1
            if hits <= self._share:
                self._kept[key] = hits
                return None
            self._kept.pop(key, None)
            self._written.add(key)
        else:
            hits = 1
        return await hit(
            self._engine, self._purpose, key, self._limit, self._window, now, count=hits
        )


async def hit(
    engine: AsyncEngine,
    purpose: str,
    key: str,
    limit: int,
    window: timedelta,
    now: datetime,
    *,
    count: int = 1,
) -> float | None:
    """Count `count` hits of `key` for `purpose` in the database; None if within `limit` hits
    per `window`, else the seconds until its window ends."""
    started = window_start(now, window)
    upsert = (
        dialect_insert(engine.dialect.name)(RateLimitCount)
        .values(purpose=purpose, key=key[:MAX_KEY], window_started_at=started, hits=count)
        .on_conflict_do_update(
            index_elements=["purpose", "key", "window_started_at"],
            set_={"hits": RateLimitCount.hits + count},
        )
        .returning(RateLimitCount.hits)
    )
    ended = delete(RateLimitCount).where(
        RateLimitCount.purpose == purpose, RateLimitCount.window_started_at < started - window
    )
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            hits = await _count(autocommit, upsert, ended, count)
    else:  # SQLite's transactions begin IMMEDIATE (core/db.py): a plain one, committed
        async with engine.begin() as connection:
            hits = await _count(connection, upsert, ended, count)
    if hits <= limit:
        return None
    return (started + window - now).total_seconds()


async def _count(connection: AsyncConnection, upsert: Any, ended: Any, count: int) -> int:
    hits = int(await connection.scalar(upsert) or 0)
    if hits == count:  # the key's first write in this window
        await connection.execute(ended)
    return hits

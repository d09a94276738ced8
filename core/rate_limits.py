"""Rate limits every server process shares: hits counted in the database per fixed window.

One statement a hit (an upsert that returns the window's count) on a connection of its own,
autocommitted on PostgreSQL (one round trip), so a hit counts whatever becomes of the request
and no transaction of the request waits on it. A client's first hit in a window also clears
its purpose's windows that ended before the previous one, so the table holds about two
windows of clients. Fixed windows allow up to twice the limit across a window's edge; the
in-memory limiter (web/ratelimit.py) slides.
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


async def hit(
    engine: AsyncEngine, purpose: str, key: str, limit: int, window: timedelta, now: datetime
) -> float | None:
    """Count a hit of `key` for `purpose`; None if within `limit` hits per `window`, else the
    seconds until its window ends."""
    started = window_start(now, window)
    upsert = (
        dialect_insert(engine.dialect.name)(RateLimitCount)
        .values(purpose=purpose, key=key[:MAX_KEY], window_started_at=started, hits=1)
        .on_conflict_do_update(
            index_elements=["purpose", "key", "window_started_at"],
            set_={"hits": RateLimitCount.hits + 1},
        )
        .returning(RateLimitCount.hits)
    )
    ended = delete(RateLimitCount).where(
        RateLimitCount.purpose == purpose, RateLimitCount.window_started_at < started - window
    )
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            hits = await _count(autocommit, upsert, ended)
    else:  # SQLite's transactions begin IMMEDIATE (core/db.py): a plain one, committed
        async with engine.begin() as connection:
            hits = await _count(connection, upsert, ended)
    if hits <= limit:
        return None
    return (started + window - now).total_seconds()


async def _count(connection: AsyncConnection, upsert: Any, ended: Any) -> int:
    hits = int(await connection.scalar(upsert) or 0)
    if hits == 1:  # the client's first hit in this window
        await connection.execute(ended)
    return hits

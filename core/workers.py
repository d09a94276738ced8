"""Background loops that stop between units of work, never in the middle of one.

A worker's `run(stop)` does one unit (a routing pass, an outbox batch, a round of media
downloads), then waits for its wake-up, its poll interval or `stop`, whichever comes first,
and returns once `stop` is set. Cancelling a task in the middle of a database transaction can
leave its connection neither returned to the pool nor closed (on SQLite the orphan then holds
the database's write lock for whoever comes next), so the application stops its workers with
`stop_task`: set `stop`, give the unit under way a grace period, cancel only if it overruns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0


async def wait_for_any(*events: asyncio.Event, seconds: float) -> None:
    """Return when one of `events` is set or `seconds` have passed."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def stop_task(
    task: asyncio.Task[None], stop: asyncio.Event, grace: float = STOP_GRACE_SECONDS
) -> None:
    """Ask the worker running in `task` to stop after its current unit; cancel it if that
    takes longer than `grace` seconds."""
    stop.set()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("a background worker did not stop within %s s; cancelling it", grace)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

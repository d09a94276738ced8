"""Which operators have a console open in this process, told to routing in one statement.

Routing counts an operator whose console has been gone for a grace as away (and later offline),
from `operator.console_seen_at`. A process refreshes that column for every operator with a
console open on it in one `UPDATE … WHERE id IN (…)` every interval, instead of a transaction
per console: with a thousand consoles open that was 67 transactions a second and all of an idle
process's work (bench/websockets.py). A console that opens or closes is told to routing at once
(`routing.manual.console_seen`, which also undoes an automatic away), and so is an operator
found away by an automatic rule while their console is still open here (a stalled process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update

from core.db import SessionFactory
from core.models import Operator, Presence
from routing.manual import console_seen
from routing.service import AUTO_REASONS

log = logging.getLogger(__name__)


class OpenConsoles:
    """The operators with a console open in this process (a count each: several tabs)."""

    def __init__(
        self, sessions: SessionFactory, interval: float, clock: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._clock = clock
        self._open: Counter[int] = Counter()
        # The openings and closings being written: a console's handler may be cancelled (a
        # server shutting down) but its write is not cut off mid-transaction, and the app
        # waits for them before it closes the database (`settle`).
        self._writes: set[asyncio.Task[None]] = set()

    async def opened(self, operator_id: int) -> None:
        self._open[operator_id] += 1
        await self._write(operator_id)

    async def closed(self, operator_id: int) -> None:
        """The last sign of life: routing's auto-away grace counts from here."""
        self._open[operator_id] -= 1
        if self._open[operator_id] <= 0:
            del self._open[operator_id]
        await self._write(operator_id)

    async def settle(self) -> None:
        """Wait for the openings and closings being written (before the database closes)."""
        while self._writes:
            await asyncio.wait(set(self._writes))

    async def _write(self, operator_id: int) -> None:
        task = asyncio.create_task(self._seen_one(operator_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    async def refresh(self) -> None:
        """Every open console's operator seen now, in one statement; an automatic away of
        one of them (their console is open after all) undone."""
        ids = list(self._open)
        if not ids:
            return
        now = self._clock()
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Operator).where(Operator.id.in_(ids)).values(console_seen_at=now)
            )
            undo = await session.scalars(
                select(Operator.id).where(
                    Operator.id.in_(ids),
                    Operator.presence != Presence.AVAILABLE,
                    Operator.presence_reason.in_(AUTO_REASONS),
                )
            )
            for operator_id in list(undo):
                await console_seen(session, operator_id, now)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every interval until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if stop.is_set():
                break
            try:
                await self.refresh()
            except Exception:
                log.exception("could not record the open consoles as seen")

    async def _seen_one(self, operator_id: int) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await console_seen(session, operator_id, self._clock())
        except Exception:
            log.exception("could not record the console as seen")

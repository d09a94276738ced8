"""The routing engine: runs routing passes when something changes, and when a timer is due.

Event-driven: every committed event that can change a routing outcome (new or reopened work,
presence, offers answered, transfers, rules edited, tasks; from this process or, on
PostgreSQL, from others) wakes it; between events it sleeps until the earliest persisted
deadline (offer timeout, SLA due time, overflow, presence grace, a task's due time) the last
pass reported. The deadlines live in the database, so a restarted process picks them up with
its first pass.

A message in a conversation that already exists (`interaction.created` without
`conversation.created` or `conversation.reopened`) changes no decision at once: the
conversation is already assigned or waiting, and what the message can change (an offline
operator's unanswered work to put back in its queue) has a grace of minutes. Such events only
shorten the sleep to `LATER_SECONDS`, so a stream of messages in open conversations costs one
pass a second, not one per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from core.db import SessionFactory
from core.enrichment import Enricher
from core.event_types import (
    CONVERSATION_ASSIGNED,
    CONVERSATION_CREATED,
    CONVERSATION_REOPENED,
    CONVERSATION_UPDATED,
    INTERACTION_CREATED,
    LEAD_CREATED,
    OFFER_UPDATED,
    OPERATOR_CREATED,
    OPERATOR_PRESENCE,
    OPERATOR_UPDATED,
    QUEUE_CREATED,
    QUEUE_UPDATED,
    RESYNC,
    ROUTING_RULES,
    TASK_UPDATED,
)
from core.events import Event, EventBus
from core.models import utcnow
from core.workers import wait_for_any
from routing.new_work import NEW_WORK_BATCH, NewWork, enrich, find_new_work
from routing.service import PassReport, RoutingOptions, run_pass
from routing.setup import queue_rules

log = logging.getLogger(__name__)

# Events whose commit may change what routing would decide.
WAKING_EVENTS = frozenset(
    {
        CONVERSATION_CREATED,
        CONVERSATION_REOPENED,
        CONVERSATION_UPDATED,
        CONVERSATION_ASSIGNED,
        OPERATOR_PRESENCE,
        OPERATOR_UPDATED,
        OPERATOR_CREATED,
        OFFER_UPDATED,
        QUEUE_CREATED,
        QUEUE_UPDATED,
        ROUTING_RULES,
        LEAD_CREATED,
        # A callback to give an owner, a new due time or owner to remind of.
        TASK_UPDATED,
        RESYNC,
    }
)
# Events that need a pass, but not at once (see the module docstring).
LATER_EVENTS = frozenset({INTERACTION_CREATED})
LATER_SECONDS = 1.0
# A safety net: even with no event and no deadline, look again this often.
IDLE_SECONDS = 30.0
# Events arriving together (a burst of ingest) are handled by one pass.
SETTLE_SECONDS = 0.02
RETRY_SECONDS = 5.0


class RoutingEngine:
    def __init__(
        self,
        sessions: SessionFactory,
        bus: EventBus,
        options: RoutingOptions | None = None,
        enrichers: Sequence[Enricher] = (),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._options = options or RoutingOptions()
        self._enrichers = tuple(enrichers)
        self._clock = clock
        self._wake = asyncio.Event()
        self._later = asyncio.Event()
        self._stop = asyncio.Event()
        self.passes = 0
        bus.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type in WAKING_EVENTS:
            self._wake.set()
        elif event.type in LATER_EVENTS:
            self._later.set()

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> PassReport:
        """One pass now: new work's facts gathered first, outside the routing lock."""
        enrichers: Sequence[Enricher] = ()
        async with self._sessions() as session:
            found: list[NewWork] = await find_new_work(session)
            if found and self._enrichers:
                rules = await queue_rules(session)
                # Facts no rule reads are not gathered.
                enrichers = self._enrichers if rules is not None and rules.asks_enrichers else ()
        new_work = await enrich(found, enrichers, self._options.enricher_timeout)
        async with self._sessions() as session, session.begin():
            report = await run_pass(session, self._clock(), self._options, new_work)
        self.passes += 1
        if len(found) == NEW_WORK_BATCH:
            report.more = True  # more new work than one batch: go on at once
        return report

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Pass after pass until `stop` is set (between passes; see core.workers) or
        cancelled; a failing pass is logged and retried."""
        self._stop = stop or asyncio.Event()
        while not self._stop.is_set():
            self._wake.clear()
            self._later.clear()
            try:
                report = await self.run_once()
            except Exception:
                log.exception("routing pass failed; retrying in %s s", RETRY_SECONDS)
                await self._sleep(RETRY_SECONDS)
                continue
            if report.more:
                continue
            delay = IDLE_SECONDS
            if report.next_due is not None:
                delay = min(delay, max(0.0, (report.next_due - self._clock()).total_seconds()))
            await self._sleep(delay)
            await wait_for_any(self._stop, seconds=SETTLE_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        """Until woken or stopped, or `seconds` have passed; an event of LATER_EVENTS (also one
        that came during the last pass) cuts what is left to at most LATER_SECONDS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        await wait_for_any(self._wake, self._stop, self._later, seconds=seconds)
        if self._later.is_set() and not self._wake.is_set():
            left = min(deadline - loop.time(), LATER_SECONDS)
            await wait_for_any(self._wake, self._stop, seconds=max(0.0, left))

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

Passes are incremental: a pass re-reads the waiting backlog only when something it reads may
have changed. After a pass that left no waiting work it could give (`PassReport.undecided`
False), the next one runs with `settled=True` (the waiting step only if the pass itself changes
something: new work, presence, offers, SLAs, overflow) unless, since then:

- an event of `WAITING_EVENTS` came (room, membership, presence, queues and rules, new or
  reopened work, offers answered, transfers): whatever can make waiting work decidable
  commits one of these;
- a deadline of the waiting step came (`PassReport.waiting_due`: a queue opening, a sticky
  wait ending); the deadlines of the other steps (offer expiry, SLAs, overflow, presence
  grace) are the pass's own business: a pass that acts on one runs the waiting step;
- `COMPLETE_PASS_SECONDS` passed: the safety net for changes no event announces (the CLI
  beside a SQLite server), as `IDLE_SECONDS` is for the engine's sleep.

So correctness never rests on a cache: a skipped waiting step leaves everything as the last
complete one left it, and the state kept is three facts about what happened (an event seen,
when a complete pass ended, its earliest deadline); a failed pass forgets them.

A waiting step that runs is scoped too: it reads the explained work only of the queues, and
the kinds of work, that the changes since the engine's last look at them may have made
decidable (`routing/scope.py`, the engine's `QueueMarks`); at least every `FULL_SECONDS` a
step reads everything, and the engine wakes for it. A failed pass forgets the marks as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

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
    ROUTING_DECISION,
    ROUTING_RULES,
    TASK_UPDATED,
)
from core.events import Event, EventBus
from core.models import utcnow
from core.workers import wait_for_any
from routing.new_work import NEW_WORK_BATCH, NewWork, enrich, find_new_work
from routing.scope import QueueMarks
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
# Events after which the waiting work is looked at again (see the module docstring): all the
# waking ones but leads and tasks, which no waiting work's decision reads.
WAITING_EVENTS = WAKING_EVENTS - {LEAD_CREATED, TASK_UPDATED}
# Decisions that leave work waiting, explained (`routing/scope.py`: another process's).
EXPLAINED_KINDS = frozenset({"none", "wait"})
# Events that need a pass, but not at once (see the module docstring).
LATER_EVENTS = frozenset({INTERACTION_CREATED})
LATER_SECONDS = 1.0
# A safety net: even with no event and no deadline, look again this often.
IDLE_SECONDS = 30.0
# A complete pass (the waiting work looked at again) at least this often.
COMPLETE_PASS_SECONDS = 30.0
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
        # What the next pass needs to know to skip the waiting step (see the module docstring).
        self._changed = True
        self._settled_at: datetime | None = None
        self._waiting_due: datetime | None = None
        self._marks = QueueMarks()
        bus.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if (
            event.type == ROUTING_DECISION
            and not event.origin_is_local
            and event.labels.get("kind") in EXPLAINED_KINDS
        ):
            queues = event.labels.get("queues", "")
            self._marks.explained_elsewhere([int(id_) for id_ in queues.split(",") if id_])
        if event.type in WAITING_EVENTS:
            self._changed = True
        if event.type in WAKING_EVENTS:
            self._wake.set()
        elif event.type in LATER_EVENTS:
            self._later.set()

    def wake(self) -> None:
        self._wake.set()

    def settled(self, now: datetime) -> bool:
        """Whether the waiting work stands as the last complete pass left it, with nothing
        it could give (see the module docstring)."""
        return (
            not self._changed
            and self._settled_at is not None
            and now - self._settled_at < timedelta(seconds=COMPLETE_PASS_SECONDS)
            and (self._waiting_due is None or now < self._waiting_due)
        )

    async def run_next(self) -> PassReport:
        """The engine's next pass: the waiting step skipped when nothing it reads changed."""
        now = self._clock()
        # A full step when one is due, even with nothing announced (routing/scope.py).
        settled = self.settled(now) and not self._marks.full_due(now)
        self._changed = False  # events from now on are for the next pass
        try:
            report = await self.run_once(settled=settled, marks=self._marks)
        except BaseException:
            self._changed = True
            self._marks.forget()
            raise
        if report.undecided is not None:
            self._settled_at = None if report.undecided else now
            self._waiting_due = report.waiting_due
        elif self._waiting_due is not None:
            report.due(self._waiting_due)  # the skipped step's deadline still stands
        return report

    async def run_once(
        self, *, settled: bool = False, marks: QueueMarks | None = None
    ) -> PassReport:
        """One pass now: new work's facts gathered first, outside the routing lock.
        `settled`, `marks`: see `routing.service.run_pass` (the engine's own passes:
        `run_next`)."""
        enrichers: Sequence[Enricher] = ()
        async with self._sessions() as session:
            found: list[NewWork] = await find_new_work(session)
            if found and self._enrichers:
                rules = await queue_rules(session)
                # Facts no rule reads are not gathered.
                enrichers = self._enrichers if rules is not None and rules.asks_enrichers else ()
        new_work = await enrich(found, enrichers, self._options.enricher_timeout)
        async with self._sessions() as session, session.begin():
            report = await run_pass(
                session, self._clock(), self._options, new_work, settled=settled, marks=marks
            )
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
                report = await self.run_next()
            except Exception:
                log.exception("routing pass failed; retrying in %s s", RETRY_SECONDS)
                await self._sleep(RETRY_SECONDS)
                continue
            if report.more:
                continue
            delay = IDLE_SECONDS
            now = self._clock()
            if report.next_due is not None:
                delay = min(delay, max(0.0, (report.next_due - now).total_seconds()))
            if self._settled_at is not None:
                # The safety net's complete pass comes on time, not at the next wake after it.
                complete = self._settled_at + timedelta(seconds=COMPLETE_PASS_SECONDS)
                delay = min(delay, max(0.0, (complete - now).total_seconds()))
            full = self._marks.next_full
            if full is not None:
                # And so does the full step (routing/scope.py).
                delay = min(delay, max(0.0, (full - now).total_seconds()))
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

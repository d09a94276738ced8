"""The routing benchmark's measured scenarios (bench/routing.py), on a built contact center
(bench/routing_center.py), with the simulated `Clock`:

- `drain`: routing passes, each in its own transaction as the engine runs them, until a pass
  decides nothing more; offers are accepted at once;
- `idle`: passes while the backlog waits and nothing can change, complete ones and
  incremental ones (`run_pass(settled=True)`);
- `trickle`: one `arrival` committed with one resolution at a time, each followed by a pass
  timed from that commit, scoped as the engine scopes it (`routing/scope.py`); after every
  second one a VIP's, with room freed for it;
- `bare_writes`: the ceiling, a bare UPDATE and INSERT per decision, committed every 500.

`Probes` time `routing.strategies.decide` and the service's writes inside the passes;
`Figures` hold one backend's results, which `run_backend` measures in that order.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import counted, database
from bench.routing_center import (
    ARRIVAL_CHANNELS,
    ARRIVAL_TEXTS,
    BEFORE_VIP_RULE,
    CONTACT_LANGUAGES,
    START,
    Center,
    Sizes,
    build,
    pick,
    vip_queue,
)
from core.audit import Actor
from core.db import SessionFactory, make_engine, make_session_factory
from core.events import EventBus, session_info
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.migrate import upgrade
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    IdentityKind,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    QueueMember,
    Role,
    RoutingDecision,
)
from routing import strategies, waiting, waiting_writes
from routing.manual import accept_offer
from routing.new_work import find_new_work
from routing.scope import QueueMarks
from routing.service import PassReport, RoutingOptions, run_pass
from routing.strategies import Decision

OPTIONS = RoutingOptions()
BARE_COMMIT_EVERY = OPTIONS.max_decisions_per_pass
IDLE_PASSES = 3
VIP_TEXT = "Hello, where is my order? It should have arrived yesterday."


@dataclass
class Clock:
    now: datetime = START

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Probes:
    """Timings taken inside the passes, by wrapping the service's decide and its writes."""

    decide_cpu: list[float] = field(default_factory=list)
    # decide() plus the writes of the decision (offer or assignment, log, events), per decision.
    decision: list[float] = field(default_factory=list)
    # decide() plus the "why nobody" note, per conversation that keeps waiting.
    wait: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    # Wall-clock seconds spent in decide(), in the decisions' writes and in the notes' writes.
    deciding: float = 0.0
    giving: float = 0.0
    noting: float = 0.0
    # The step's writes made together at its end (routing/waiting_writes.py: Writes.made).
    batched: float = 0.0
    _last_decide: float = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        real_decide = strategies.decide
        real_give = waiting_writes.give
        real_note = waiting_writes.note

        def timed_decide(*args: Any, **kwargs: Any) -> Decision:
            cpu, wall = time.thread_time(), time.perf_counter()
            decision = real_decide(*args, **kwargs)
            self._last_decide = time.perf_counter() - wall
            self.deciding += self._last_decide
            self.decide_cpu.append(time.thread_time() - cpu)
            self.outcomes[decision.outcome] = self.outcomes.get(decision.outcome, 0) + 1
            return decision

        async def timed_give(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            await real_give(*args, **kwargs)
            writing = time.perf_counter() - started
            self.giving += writing
            self.decision.append(self._last_decide + writing)
            self._last_decide = 0.0

        async def timed_note(*args: Any, **kwargs: Any) -> int:
            started = time.perf_counter()
            noted = await real_note(*args, **kwargs)
            writing = time.perf_counter() - started
            self.noting += writing
            if noted:
                self.wait.append(self._last_decide + writing)
            self._last_decide = 0.0
            return noted

        real_made = waiting_writes.Writes.made

        async def timed_made(writes: Any, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            await real_made(writes, *args, **kwargs)
            self.batched += time.perf_counter() - started

        with (
            mock.patch.object(waiting_writes.Writes, "made", timed_made),
            mock.patch.object(waiting, "decide", timed_decide),
            mock.patch.object(waiting, "give", timed_give),
            mock.patch.object(waiting, "note", timed_note),
        ):
            yield


@dataclass
class Figures:
    """One backend's results."""

    backend: str
    center: Center
    build_seconds: float
    probes: Probes = field(default_factory=Probes)
    idle_probes: Probes = field(default_factory=Probes)
    trickle_probes: Probes = field(default_factory=Probes)
    passes: list[float] = field(default_factory=list)
    reports: list[PassReport] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    idle_statements: float = 0.0
    # Passes after one that left nothing it could give, nothing changed since (settled=True).
    incremental: list[float] = field(default_factory=list)
    incremental_statements: float = 0.0
    still_waiting: int = 0
    # Arrival commit to pass commit, by what the pass did with the arrival.
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    # The same for the arrivals there was room for (VIPs, with a slot freed for them).
    room_arrivals: dict[str, list[float]] = field(default_factory=dict)
    # Full waiting steps the engine ran on its own timer during the trickle (untimed).
    full_steps: int = 0
    bare: list[float] = field(default_factory=list)
    bare_seconds: float = 0.0

    @property
    def assigned(self) -> int:
        return sum(report.assigned for report in self.reports)

    @property
    def offered(self) -> int:
        return sum(report.offered for report in self.reports)

    @property
    def decisions(self) -> int:
        return self.assigned + self.offered

    @property
    def drain_seconds(self) -> float:
        return sum(self.passes)

    @property
    def given_seconds(self) -> float:
        """The drain until the pass that gave the last work: what the operators wait for
        (the passes after it only explain why the rest waits)."""
        last = max(
            (
                number
                for number, report in enumerate(self.reports)
                if report.assigned or report.offered
            ),
            default=-1,
        )
        return sum(self.passes[: last + 1])


async def routing_pass(
    sessions: SessionFactory,
    now: datetime,
    *,
    settled: bool = False,
    marks: QueueMarks | None = None,
) -> PassReport:
    """One pass as RoutingEngine.run_once runs it (no enrichers)."""
    async with sessions() as session:
        new_work = await find_new_work(session)
    async with sessions() as session, session.begin():
        return await run_pass(session, now, OPTIONS, new_work, settled=settled, marks=marks)


async def accept_pending(sessions: SessionFactory, now: datetime) -> int:
    """Every operator accepts what they were offered (so nothing times out meanwhile)."""
    async with sessions() as session, session.begin():
        offers = list(
            await session.scalars(select(Offer).where(Offer.status == OfferStatus.PENDING))
        )
        for offer in offers:
            actor = Actor(f"operator-{offer.operator_id}", Role.OPERATOR, offer.operator_id)
            await accept_offer(session, actor, offer.id, now)
    return len(offers)


async def count_waiting(sessions: SessionFactory) -> int:
    async with sessions() as session:
        pending_offer = select(Offer.id).where(
            Offer.conversation_id == Conversation.id, Offer.status == OfferStatus.PENDING
        )
        return int(
            await session.scalar(
                select(func.count()).where(
                    Conversation.status == ConversationStatus.OPEN,
                    Conversation.assignee_id.is_(None),
                    ~pending_offer.exists(),
                )
            )
            or 0
        )


async def drain(sessions: SessionFactory, clock: Clock, figures: Figures) -> None:
    """Passes until one decides nothing: everything that fits is given out."""
    while True:
        now = clock.tick()
        started = time.perf_counter()
        report = await routing_pass(sessions, now)
        figures.passes.append(time.perf_counter() - started)
        figures.reports.append(report)
        # Operators answer their offers within seconds: none times out during the drain.
        await accept_pending(sessions, now)
        if report.assigned + report.offered == 0 and not report.more:
            return


async def idle(
    sessions: SessionFactory, clock: Clock, figures: Figures, *, settled: bool = False
) -> None:
    """Passes with nothing to do but look at the backlog again (`settled`: passes that know
    nothing changed since, as the engine runs them, which skip the backlog)."""
    times = figures.incremental if settled else figures.idle
    for _ in range(IDLE_PASSES):
        now = clock.tick()
        started = time.perf_counter()
        await routing_pass(sessions, now, settled=settled)
        times.append(time.perf_counter() - started)


async def held_by(sessions: SessionFactory, queue_id: int | None) -> list[tuple[int, str]]:
    """Open work available operators hold, (id, channel); only members of `queue_id`'s with
    it given (None: everyone's)."""
    statement = (
        select(Conversation.id, Conversation.channel)
        .join(Operator, Operator.id == Conversation.assignee_id)
        .where(
            Conversation.status == ConversationStatus.OPEN,
            Operator.presence == Presence.AVAILABLE,
        )
        .order_by(Conversation.id)
    )
    if queue_id is not None:
        members = select(QueueMember.operator_id).where(QueueMember.queue_id == queue_id)
        statement = statement.where(Conversation.assignee_id.in_(members))
    async with sessions() as session:
        return [(row.id, row.channel) for row in await session.execute(statement)]


async def trickle(
    sessions: SessionFactory, clock: Clock, figures: Figures, sizes: Sizes, vip: int | None
) -> None:
    """One arrival and one resolution per second; time each arrival's pass. After every
    second one, a VIP arrives as a VIP-queue member's work on its channel is resolved."""
    rng = random.Random(sizes.seed + 1)
    deadline = time.perf_counter() + sizes.trickle_seconds
    async with sessions() as session:
        held = list(
            await session.scalars(
                select(Conversation.id).where(
                    Conversation.assignee_id.is_not(None),
                    Conversation.status == ConversationStatus.OPEN,
                )
            )
        )
    rng.shuffle(held)
    vip_held = await held_by(sessions, vip) if vip is not None else []
    # A VIP arrives on the channel of the work resolved for them, so on one the VIP rule
    # decides (a call goes to Sales, where no slot was freed).
    vip_held = [(id_, channel) for id_, channel in vip_held if channel not in BEFORE_VIP_RULE]
    rng.shuffle(vip_held)
    done: set[int] = set()
    # What the engine's waiting steps saw of each queue (routing/scope.py), as the engine
    # keeps it from pass to pass.
    marks = QueueMarks()
    for serial in range(sizes.arrivals):
        if time.perf_counter() > deadline:
            return
        channel = pick(rng, ARRIVAL_CHANNELS)
        resolved = held.pop() if held else None
        done.add(resolved or 0)
        await arrival(sessions, clock, figures, marks, serial, channel, rng, resolved)
        while vip_held and vip_held[-1][0] in done:
            vip_held.pop()
        if serial % 2 and vip_held:
            resolved, channel = vip_held.pop()
            done.add(resolved)
            if resolved in held:
                held.remove(resolved)
            await arrival(sessions, clock, figures, marks, serial, channel, rng, resolved, vip=True)


async def arrival(
    sessions: SessionFactory,
    clock: Clock,
    figures: Figures,
    marks: QueueMarks,
    serial: int,
    channel: str,
    rng: random.Random,
    resolved: int | None,
    *,
    vip: bool = False,
) -> None:
    """One arrival committed with one resolution, then a pass as the engine runs it (with
    its `marks`), timed from that commit. When the engine's full step is due (every
    `routing.scope.FULL_SECONDS` of the simulated clock) it runs first, untimed, as the
    engine runs it on its own timer."""
    outcomes = figures.room_arrivals if vip else figures.arrivals
    now = clock.tick()
    if marks.full_due(now):
        await routing_pass(sessions, now, marks=marks)
        await accept_pending(sessions, now)
        figures.full_steps += 1
    name = f"vip-arrival-{serial}" if vip else f"arrival-{serial}"
    async with sessions() as session, session.begin():
        if resolved is not None:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == resolved)
                .values(status=ConversationStatus.RESOLVED, resolved_at=now, updated_at=now)
            )
        arrived = await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=name,
                addresses=[Address(IdentityKind.EMAIL, f"{name}@bench.test")],
                subject="",
                # A VIP's question the rules before the VIP rule (money) do not take.
                text=VIP_TEXT if vip else rng.choice(ARRIVAL_TEXTS),
                language=pick(rng, CONTACT_LANGUAGES),
                occurred_at=now,
            ),
        )
        # It arrived at the simulated time, not the machine's.
        await session.execute(
            update(Conversation)
            .where(Conversation.id == arrived.conversation_id)
            .values(created_at=now, updated_at=now)
        )
        if vip:
            await session.execute(
                update(Contact).where(Contact.id == arrived.contact_id).values(priority_tier="vip")
            )
    started = time.perf_counter()
    await routing_pass(sessions, now, marks=marks)
    elapsed = time.perf_counter() - started
    async with sessions() as session:
        conversation = await session.get(Conversation, arrived.conversation_id)
        offered = await session.scalar(
            select(Offer.id).where(
                Offer.conversation_id == arrived.conversation_id,
                Offer.status == OfferStatus.PENDING,
            )
        )
    assert conversation is not None
    if conversation.assignee_id is not None or offered is not None:
        outcome = "given"
    elif conversation.routing_note is not None:
        outcome = "waits"
    else:
        outcome = "undecided"
    outcomes.setdefault(outcome, []).append(elapsed)
    await accept_pending(sessions, now)


async def bare_writes(engine: AsyncEngine, count: int, now: datetime, figures: Figures) -> None:
    """The least a decision costs to store: UPDATE the conversation, INSERT a log row."""
    async with engine.connect() as connection:
        ids = list(
            (
                await connection.execute(
                    select(Conversation.id).order_by(Conversation.id).limit(count)
                )
            ).scalars()
        )
        operator_id = await connection.scalar(select(Operator.id).limit(1))
        await connection.commit()
        started = time.perf_counter()
        transaction = await connection.begin()
        for number, conversation_id in enumerate(ids, start=1):
            one = time.perf_counter()
            await connection.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(assignee_id=operator_id, routing_note=None, updated_at=now)
            )
            await connection.execute(
                insert(RoutingDecision).values(
                    conversation_id=conversation_id,
                    kind="assign",
                    operator_id=operator_id,
                    reason=f"assigned to operator {operator_id}",
                    details={"winner_id": operator_id},
                    created_at=now,
                )
            )
            figures.bare.append(time.perf_counter() - one)
            if number % BARE_COMMIT_EVERY == 0:
                await transaction.commit()
                transaction = await connection.begin()
        await transaction.commit()
        figures.bare_seconds = time.perf_counter() - started


async def analyzed(engine: AsyncEngine) -> None:
    """PostgreSQL's statistics as a running database has them: autovacuum analyzes a table
    after enough changes (the center built, the drain's notes), within a minute. Without
    this the planner's view depends on whether autovacuum came round during the run."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()


@asynccontextmanager
async def opened(database_url: str) -> AsyncIterator[tuple[AsyncEngine, SessionFactory]]:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    sessions.configure(info=session_info(EventBus()))
    try:
        yield engine, sessions
    finally:
        await engine.dispose()


async def run_backend(backend: str, sizes: Sizes) -> Figures:
    async with database(backend) as database_url:
        await upgrade(database_url)
        async with opened(database_url) as (engine, sessions):
            started = time.perf_counter()
            center = await build(engine, sizes)
            figures = Figures(backend, center, time.perf_counter() - started)
            await analyzed(engine)
            # As omnicrm's processes do once started (web/serve.py): what lives as long as
            # the process (modules, the center's ids) out of the collector's sight.
            gc.collect()
            gc.freeze()
            clock = Clock()
            with figures.probes.installed():
                await drain(sessions, clock, figures)
            figures.still_waiting = await count_waiting(sessions)
            await analyzed(engine)
            with figures.idle_probes.installed(), counted(engine) as statements:
                await idle(sessions, clock, figures)
            figures.idle_statements = len(statements) / max(1, len(figures.idle))
            with counted(engine) as statements:
                await idle(sessions, clock, figures, settled=True)
            figures.incremental_statements = len(statements) / max(1, len(figures.incremental))
            with figures.trickle_probes.installed():
                await trickle(sessions, clock, figures, sizes, vip_queue(center, sizes))
            await bare_writes(engine, max(1, figures.decisions), clock.tick(), figures)
    return figures

"""Routing at scale: how fast the routing service decides, on SQLite and on PostgreSQL.

For each backend it builds a fresh database (bulk inserts): 1,000 operators (most available,
some away, busy or offline; capacities such as messaging 5 / email 20, a voice seat for some, a
total cap for others) working in 20 queues (50-100 members each, every operator in one or two),
and 10,000 conversations waiting in those queues over mixed channels, more than the operators
have room for. The queues use the strategy chains people configure: least busy, round robin,
skills match with a required-skills expression, sticky; most assign directly, a few make offers;
one keeps business hours, one overflows. Then, in the same run:

1. the drain: routing passes, each in its own transaction as the engine runs them, until a pass
   decides nothing more; the rest of the work waits, each with its "nobody has room" note;
   `routing.strategies.decide` and the service's writes are timed per decision;
2. idle passes: what one pass costs while that backlog waits and nothing can change, both a
   complete one (as after an event, and the engine's safety net every 30 s) and an
   incremental one (nothing changed since a pass that left nothing it could give: the engine
   skips the waiting work, `run_pass(settled=True)`);
3. a trickle: one conversation arrives (ingest, queue rules) and one is resolved at a time, and a
   pass runs: the time from the arrival's commit to the pass's commit, which either gives the
   work to an operator or explains why it waits; offers are accepted at once, outside the timing.
   The room a random resolution frees goes to older, higher-priority work, so these arrivals
   mostly wait; every second arrival is followed by one that can be given: a VIP customer's
   (priority 50, above the backlog's, through the VIP queue rule) committed with the resolution
   of work a VIP-queue member holds on the same channel, timed to the pass that offers it;
4. the ceiling: a bare UPDATE of the conversation and INSERT of a decision log row per decision,
   with the same driver, committed every 500 as a pass does.

    python bench/routing.py [--operators 1000] [--conversations 10000] [--queues 20]
                            [--arrivals 200] [--trickle-seconds 300]
                            [--backend sqlite|postgresql|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, update  # noqa: E402 - the path is set up just above
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine  # noqa: E402

from bench.common import POSTGRES_ADMIN, counted, database  # noqa: E402
from core.audit import Actor  # noqa: E402
from core.db import SessionFactory, make_engine, make_session_factory  # noqa: E402
from core.events import EventBus, session_info  # noqa: E402
from core.identity import Address  # noqa: E402
from core.ingest import InboundEvent, ingest  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import (  # noqa: E402
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    InteractionKind,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    Queue,
    QueueMember,
    Role,
    RoutingDecision,
    RoutingSetting,
)
from routing import strategies, waiting  # noqa: E402
from routing.config import parse_queue_config  # noqa: E402
from routing.manual import accept_offer  # noqa: E402
from routing.new_work import find_new_work  # noqa: E402
from routing.rules import parse_rule_set  # noqa: E402
from routing.service import PassReport, RoutingOptions, run_pass  # noqa: E402
from routing.setup import QUEUE_RULES  # noqa: E402
from routing.strategies import Decision  # noqa: E402

# A Monday morning; the simulated clock starts here and moves one second per pass.
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OPTIONS = RoutingOptions()
BARE_COMMIT_EVERY = OPTIONS.max_decisions_per_pass
IDLE_PASSES = 3
VIP_KIND = "VIP"
VIP_TEXT = "Hello, where is my order? It should have arrived yesterday."
MESSAGING_CHANNELS = ("whatsapp", "webform", "telegram", "sms", "api")


# --- the contact center ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueKind:
    """A kind of queue: its routing configuration and the channels its work comes in on."""

    name: str
    config: dict[str, Any]
    channels: dict[str, float]
    # How much of the waiting work lands here, relative to other queues.
    weight: float = 1.0


ALWAYS_OPEN = {"timezone": "Europe/Berlin", "weekly": "24/7"}
# The first few kinds cover every feature, so a run with few queues (--quick) still has them.
QUEUE_KINDS: tuple[QueueKind, ...] = (
    QueueKind(
        "Chat Support",
        {"strategies": ["least_busy", "round_robin"], "sla": {"first_response_minutes": 5}},
        {"whatsapp": 0.4, "webform": 0.25, "telegram": 0.2, "sms": 0.15},
        weight=1.6,
    ),
    QueueKind(
        "Billing",
        {"strategies": ["skills_match", "least_busy"], "required_skills": "billing >= 1"},
        {"email": 0.6, "webform": 0.2, "whatsapp": 0.2},
    ),
    QueueKind(
        "Sales",
        {"strategies": ["round_robin"], "offer_timeout_seconds": 30},
        {"whatsapp": 0.5, "webform": 0.3, "voice": 0.2},
    ),
    QueueKind("Email Support", {"strategies": ["least_busy"]}, {"email": 1.0}, weight=1.4),
    QueueKind(
        "Key Accounts",
        {
            "strategies": ["sticky", "least_busy", "round_robin"],
            "sticky_max_wait_seconds": 120,
        },
        {"email": 0.5, "whatsapp": 0.3, "voice": 0.2},
        weight=0.6,
    ),
    QueueKind(
        "Technical",
        {
            "strategies": ["skills_match", "round_robin"],
            "required_skills": "technical >= 1 and languages has language",
            "business_hours": ALWAYS_OPEN,
            "sla": {"first_response_minutes": 60, "resolution_minutes": 1440},
        },
        {"email": 0.5, "telegram": 0.2, "whatsapp": 0.3},
    ),
    QueueKind(
        "Returns", {"strategies": ["round_robin"]}, {"email": 0.5, "webform": 0.3, "sms": 0.2}
    ),
    QueueKind(
        "Messenger",
        {"strategies": ["least_busy"], "sla": {"first_response_minutes": 15}},
        {"whatsapp": 0.5, "telegram": 0.3, "sms": 0.2},
        weight=1.4,
    ),
    QueueKind(
        "VIP",
        {
            "strategies": ["skills_match", "least_busy"],
            "required_skills": 'sales >= 1 or priority_tier == "vip"',
            "offer_timeout_seconds": 20,
        },
        {"whatsapp": 0.4, "email": 0.4, "voice": 0.2},
        weight=0.5,
    ),
    QueueKind(
        # Overflows into the first queue (max_wait_seconds and overflow_queue_id set later).
        "General",
        {"strategies": ["least_busy", "round_robin"]},
        {"api": 0.3, "email": 0.4, "webform": 0.3},
    ),
)
OVERFLOWING_KIND = "General"

# Capacity profiles: (share of operators, capacity, total cap).
CAPACITIES: tuple[tuple[float, dict[str, int], int | None], ...] = (
    (0.65, {"messaging": 5, "email": 20}, None),
    (0.20, {"voice": 1, "messaging": 3, "email": 10}, None),
    (0.15, {"messaging": 6, "email": 8}, 10),
)
PRESENCES: tuple[tuple[Presence, float], ...] = (
    (Presence.AVAILABLE, 0.80),
    (Presence.BUSY, 0.05),
    (Presence.AWAY, 0.08),
    (Presence.OFFLINE, 0.07),
)
CONTACT_LANGUAGES = {"en": 0.55, "de": 0.30, "fr": 0.10, "es": 0.05}
ARRIVAL_CHANNELS = {
    "email": 0.4,
    "whatsapp": 0.25,
    "webform": 0.15,
    "telegram": 0.1,
    "sms": 0.05,
    "voice": 0.05,
}
ARRIVAL_TEXTS = (
    "Hello, where is my order? It should have arrived yesterday.",
    "I was charged twice, please check the invoice and refund me.",
    "The app shows an error after login and then it crashes.",
    "I would like to return the shoes and exchange them for a larger size.",
    "Do you offer a discount for 50 units? We are a school.",
    "Can someone call me back about my contract?",
)


def pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def before(seconds: float) -> datetime:
    return START - timedelta(seconds=seconds)


@dataclass(frozen=True)
class Sizes:
    operators: int
    conversations: int
    queues: int
    arrivals: int
    # The trickle stops after this long even if fewer arrivals were measured.
    trickle_seconds: float = 300.0
    seed: int = 4


@dataclass
class Center:
    """What was built: ids, and counts to print."""

    operator_ids: list[int]
    queue_ids: list[int]
    available: int
    memberships: int
    waiting: int
    held: int


def operator_row(number: int, rng: random.Random) -> dict[str, Any]:
    roll, share = rng.random(), 0.0
    capacity, total = CAPACITIES[-1][1], CAPACITIES[-1][2]
    for profile_share, profile_capacity, profile_total in CAPACITIES:
        share += profile_share
        if roll < share:
            capacity, total = profile_capacity, profile_total
            break
    presence = rng.choices(
        [presence for presence, _ in PRESENCES], weights=[weight for _, weight in PRESENCES]
    )[0]
    skills = {
        name: rng.randint(1, 3)
        for name, chance in (("billing", 0.4), ("technical", 0.35), ("sales", 0.3))
        if rng.random() < chance
    }
    languages = {"en": rng.randint(2, 3)}
    for code, chance in (("de", 0.4), ("fr", 0.15), ("es", 0.1)):
        if rng.random() < chance:
            languages[code] = rng.randint(1, 3)
    return {
        "email": f"operator{number:05d}@bench.example",
        "name": f"Operator {number}",
        "role": Role.OPERATOR,
        "password_hash": None,
        "active": True,
        "skills": skills,
        "languages": languages,
        "capacity": capacity,
        "total_capacity": total,
        "presence": presence,
        "presence_since": before(rng.uniform(60, 4 * 3600)),
        "last_assigned_at": None if rng.random() < 0.3 else before(rng.uniform(1, 3600)),
        "created_at": before(90 * 86400),
    }


async def inserted_ids(
    connection: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert `rows` in one executemany; their ids in the order of `rows`."""
    if not rows:
        return []
    statement = insert(model).returning(model.id, sort_by_parameter_order=True)
    return list((await connection.execute(statement, list(rows))).scalars())


async def build(engine: AsyncEngine, sizes: Sizes) -> Center:
    """The contact center, in one transaction of bulk inserts."""
    rng = random.Random(sizes.seed)
    kinds = [QUEUE_KINDS[index % len(QUEUE_KINDS)] for index in range(sizes.queues)]
    async with engine.begin() as connection:
        operator_rows = [operator_row(number, rng) for number in range(sizes.operators)]
        operator_ids = await inserted_ids(connection, Operator, operator_rows)

        queue_rows = []
        for index, kind in enumerate(kinds):
            parse_queue_config(kind.config)  # a typo here must fail loudly, not route nothing
            queue_rows.append(
                {"name": f"{kind.name} {index // len(QUEUE_KINDS) + 1}", "config": kind.config}
            )
        queue_ids = await inserted_ids(connection, Queue, queue_rows)
        for queue_id, kind in zip(queue_ids, kinds, strict=True):
            if kind.name == OVERFLOWING_KIND and queue_ids[0] != queue_id:
                config = {
                    **kind.config,
                    "max_wait_seconds": 7200,
                    "overflow_queue_id": queue_ids[0],
                }
                parse_queue_config(config, queue_id=queue_id, known_queue_ids=set(queue_ids))
                await connection.execute(
                    update(Queue).where(Queue.id == queue_id).values(config=config)
                )

        # Everyone works one or two queues; every queue has someone.
        members: dict[int, list[int]] = {index: [] for index in range(sizes.queues)}
        queues_of: dict[int, list[int]] = {}
        for operator_id in operator_ids:
            count = min(sizes.queues, 1 if rng.random() < 0.6 else 2)
            queues_of[operator_id] = rng.sample(range(sizes.queues), count)
            for index in queues_of[operator_id]:
                members[index].append(operator_id)
        for index, member_ids in members.items():
            if not member_ids:
                operator_id = rng.choice(operator_ids)
                member_ids.append(operator_id)
                queues_of[operator_id].append(index)
        await connection.execute(
            insert(QueueMember),
            [
                {"queue_id": queue_ids[index], "operator_id": operator_id}
                for index, member_ids in members.items()
                for operator_id in member_ids
            ],
        )

        # Work the available operators hold already: a few chats, a few emails.
        held: list[dict[str, Any]] = []
        for operator_id, row in zip(operator_ids, operator_rows, strict=True):
            if row["presence"] != Presence.AVAILABLE:
                continue
            channels = [rng.choice(MESSAGING_CHANNELS) for _ in range(rng.randint(0, 2))]
            if row["capacity"].get("email"):
                channels += ["email"] * rng.randint(0, 4)
            for channel in channels:
                started = before(rng.uniform(600, 7200))
                pending = rng.random() < 0.3
                held.append(
                    {
                        "channel": channel,
                        "status": ConversationStatus.PENDING
                        if pending
                        else ConversationStatus.OPEN,
                        "queue_id": queue_ids[rng.choice(queues_of[operator_id])],
                        "assignee_id": operator_id,
                        "subject": "Earlier question",
                        "created_at": started,
                        "updated_at": started,
                        "last_inbound_at": started,
                        "last_outbound_at": started + timedelta(minutes=2) if pending else None,
                        "first_response_at": started + timedelta(minutes=2) if pending else None,
                        "queue_entered_at": started,
                    }
                )

        # The waiting work, and who it comes from.
        weights = [kind.weight for kind in kinds]
        waiting: list[dict[str, Any]] = []
        contacts: list[dict[str, Any]] = []
        for _ in range(sizes.conversations):
            index = rng.choices(range(sizes.queues), weights=weights)[0]
            entered = before(rng.uniform(0, 45 * 60))
            waiting.append(
                {
                    "channel": pick(rng, kinds[index].channels),
                    "status": ConversationStatus.OPEN,
                    "queue_id": queue_ids[index],
                    "priority": rng.choices([0, 1, 5], weights=[90, 8, 2])[0],
                    "subject": "Question about my order",
                    "created_at": entered - timedelta(seconds=rng.uniform(0, 5)),
                    "updated_at": entered,
                    "last_inbound_at": entered,
                    "queue_entered_at": entered,
                }
            )
            contacts.append(
                {
                    "display_name": f"Customer {len(contacts)}",
                    "language": pick(rng, CONTACT_LANGUAGES),
                    "priority_tier": "vip" if rng.random() < 0.05 else "standard",
                    "owner_id": rng.choice(operator_ids) if rng.random() < 0.05 else None,
                    "created_at": before(30 * 86400),
                    "updated_at": before(30 * 86400),
                }
            )
        contacts += [
            {
                "display_name": f"Customer {len(contacts) + n}",
                "language": "en",
                "priority_tier": "standard",
                "owner_id": None,
                "created_at": before(30 * 86400),
                "updated_at": before(30 * 86400),
            }
            for n in range(len(held))
        ]
        contact_ids = await inserted_ids(connection, Contact, contacts)
        await connection.execute(
            insert(Identity),
            [
                {
                    "contact_id": contact_id,
                    "kind": IdentityKind.EMAIL,
                    "address": f"c{n}@bench.test",
                }
                for n, contact_id in enumerate(contact_ids)
            ],
        )
        for row, contact_id in zip(
            [*waiting, *held], contact_ids[: len(waiting) + len(held)], strict=True
        ):
            row["contact_id"] = contact_id
        # Customers who wrote before: sticky routing's "last operator".
        history = []
        for row in waiting:
            if rng.random() < 0.3:
                index = queue_ids.index(row["queue_id"])
                ended = before(rng.uniform(86400, 20 * 86400))
                history.append(
                    {
                        "contact_id": row["contact_id"],
                        "channel": row["channel"],
                        "status": ConversationStatus.RESOLVED,
                        "queue_id": row["queue_id"],
                        "assignee_id": rng.choice(members[index]),
                        "created_at": ended - timedelta(hours=1),
                        "updated_at": ended,
                        "resolved_at": ended,
                        "queue_entered_at": ended - timedelta(hours=1),
                    }
                )
        if history:
            await connection.execute(insert(Conversation), history)
        if held:
            await connection.execute(insert(Conversation), held)
        waiting_ids = await inserted_ids(connection, Conversation, waiting)
        await connection.execute(
            insert(Interaction),
            [
                {
                    "conversation_id": conversation_id,
                    "contact_id": row["contact_id"],
                    "kind": InteractionKind.MESSAGE,
                    "direction": Direction.IN,
                    "channel": row["channel"],
                    "external_id": f"bench-{conversation_id}",
                    "subject": row["subject"],
                    "text": rng.choice(ARRIVAL_TEXTS),
                    "occurred_at": row["created_at"],
                    "created_at": row["created_at"],
                }
                for conversation_id, row in zip(waiting_ids, waiting, strict=True)
            ],
        )
        await connection.execute(
            insert(RoutingSetting),
            [{"name": QUEUE_RULES, "value": queue_rules(queue_ids, kinds)}],
        )
    available = sum(1 for row in operator_rows if row["presence"] == Presence.AVAILABLE)
    return Center(
        operator_ids,
        queue_ids,
        available,
        sum(len(member_ids) for member_ids in members.values()),
        len(waiting),
        len(held),
    )


def queue_rules(queue_ids: Sequence[int], kinds: Sequence[QueueKind]) -> dict[str, Any]:
    """Where new work goes: by keyword, channel and language; the first queue takes the rest."""
    first: dict[str, int] = {}
    for queue_id, kind in zip(queue_ids, kinds, strict=True):
        first.setdefault(kind.name, queue_id)
    wanted: list[tuple[str, dict[str, Any]]] = [
        ("Billing", {"name": "money", "keywords": ["invoice", "refund", "charged"]}),
        ("Sales", {"name": "calls", "channels": ["voice"]}),
        ("VIP", {"name": "vip", "priority_tiers": ["vip"]}),
        ("Returns", {"name": "returns", "keywords": ["return", "exchange"]}),
        (
            "Technical",
            {"name": "tech", "languages": ["de"], "keywords": ["error", "crash", "login"]},
        ),
        ("Email Support", {"name": "email", "channels": ["email"]}),
        ("Messenger", {"name": "messengers", "channels": ["whatsapp", "telegram", "sms"]}),
    ]
    rules = [{**rule, "queue_id": first[name]} for name, rule in wanted if name in first]
    raw = {"default_queue_id": queue_ids[0], "rules": rules}
    return parse_rule_set(raw).model_dump(mode="json")


# --- measuring -------------------------------------------------------------------------------


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
    # The step's writes made together at its end (routing/waiting.py: _Writes.made).
    batched: float = 0.0
    _last_decide: float = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        real_decide = strategies.decide
        real_give = waiting._give
        real_note = waiting._note

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

        real_made = waiting._Writes.made

        async def timed_made(writes: Any, *args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            await real_made(writes, *args, **kwargs)
            self.batched += time.perf_counter() - started

        with (
            mock.patch.object(waiting._Writes, "made", timed_made),
            mock.patch.object(waiting, "decide", timed_decide),
            mock.patch.object(waiting, "_give", timed_give),
            mock.patch.object(waiting, "_note", timed_note),
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


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def routing_pass(
    sessions: SessionFactory, now: datetime, *, settled: bool = False
) -> PassReport:
    """One pass as RoutingEngine.run_once runs it (no enrichers)."""
    async with sessions() as session:
        new_work = await find_new_work(session)
    async with sessions() as session, session.begin():
        return await run_pass(session, now, OPTIONS, new_work, settled=settled)


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


def vip_queue(center: Center, sizes: Sizes) -> int | None:
    """The queue the VIP rule sends VIPs to (the first of its kind), if built."""
    for index, queue_id in enumerate(center.queue_ids):
        if QUEUE_KINDS[index % len(QUEUE_KINDS)].name == VIP_KIND:
            return queue_id
    return None


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
    rng.shuffle(vip_held)
    done: set[int] = set()
    for serial in range(sizes.arrivals):
        if time.perf_counter() > deadline:
            return
        channel = pick(rng, ARRIVAL_CHANNELS)
        resolved = held.pop() if held else None
        done.add(resolved or 0)
        await arrival(sessions, clock, figures.arrivals, serial, channel, rng, resolved)
        while vip_held and vip_held[-1][0] in done:
            vip_held.pop()
        if serial % 2 and vip_held:
            resolved, channel = vip_held.pop()
            done.add(resolved)
            if resolved in held:
                held.remove(resolved)
            await arrival(
                sessions, clock, figures.room_arrivals, serial, channel, rng, resolved, vip=True
            )


async def arrival(
    sessions: SessionFactory,
    clock: Clock,
    outcomes: dict[str, list[float]],
    serial: int,
    channel: str,
    rng: random.Random,
    resolved: int | None,
    *,
    vip: bool = False,
) -> None:
    """One arrival committed with one resolution, then a pass, timed from that commit."""
    now = clock.tick()
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
    await routing_pass(sessions, now)
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
            clock = Clock()
            with figures.probes.installed():
                await drain(sessions, clock, figures)
            figures.still_waiting = await count_waiting(sessions)
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


# --- reporting -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    if seconds != seconds:  # no values
        return "—"
    return f"{seconds * 1000:,.2f} ms" if seconds < 1 else f"{seconds * 1000:,.0f} ms"


def row(what: str, rate: float | None, ratio: float | None, values: Sequence[float]) -> str:
    rate_text = f"{rate:,.0f}/s" if rate else "—"
    ratio_text = f"{ratio:.1%}" if ratio else "—"
    return (
        f"{what:<48}{rate_text:>10}{ratio_text:>9}{ms(percentile(values, 0.5)):>13}"
        f"{ms(percentile(values, 0.99)):>13}{len(values):>8,}"
    )


def per_pass(probes: Probes, passes: int) -> str:
    """How many decide() calls a pass made, and how long they took, on average."""
    if not passes:
        return "no passes"
    calls = sum(probes.outcomes.values())
    return f"{calls / passes:,.0f} decide() calls per pass taking {probes.deciding / passes:.2f} s"


def report(figures: Figures) -> str:
    center, probes = figures.center, figures.probes
    drain_seconds = figures.drain_seconds
    drain_rate = figures.decisions / drain_seconds if drain_seconds else 0.0
    bare_rate = len(figures.bare) / figures.bare_seconds if figures.bare_seconds else 0.0
    decide_rate = len(probes.decide_cpu) / sum(probes.decide_cpu) if probes.decide_cpu else 0.0
    given = figures.arrivals.get("given", [])
    waits = figures.arrivals.get("waits", [])
    undecided = figures.arrivals.get("undecided", [])
    arrivals = len(given) + len(waits) + len(undecided)
    room_given = figures.room_arrivals.get("given", [])
    room_all = sum(len(times) for times in figures.room_arrivals.values())
    outcomes = ", ".join(f"{count:,} {name}" for name, count in sorted(probes.outcomes.items()))
    waiting = f"{figures.still_waiting:,} waiting"
    rest = drain_seconds - probes.deciding - probes.giving - probes.noting - probes.batched
    lines = [
        f"routing on {figures.backend}: {len(center.operator_ids):,} operators"
        f" ({center.available:,} available) in {len(center.queue_ids)} queues"
        f" ({center.memberships:,} memberships); {center.waiting:,} conversations waiting,"
        f" {center.held:,} held by operators; built in {figures.build_seconds:.1f} s",
        f"drain: {len(figures.passes)} passes in {drain_seconds:.1f} s:"
        f" {figures.assigned:,} assigned, {figures.offered:,} offered; decide() said {outcomes};"
        f" {waiting} after it",
        f"drain time: {probes.deciding:.1f} s in decide(), {probes.giving:.1f} s writing"
        f" decisions, {probes.noting:.1f} s writing notes, {probes.batched:.1f} s in the"
        f" batched writes, {rest:.1f} s the rest of the passes"
        " (queries, snapshots, commits)",
        f"idle: {len(figures.idle)} passes with {waiting} and nothing to give,"
        f" {per_pass(figures.idle_probes, len(figures.idle))},"
        f" {figures.idle_statements:.0f} statements per pass;"
        f" {len(figures.incremental)} incremental passes (nothing changed since),"
        f" {figures.incremental_statements:.0f} statements per pass",
        f"trickle: {arrivals:,} arrivals (one resolved per arrival) with {waiting}:"
        f" {len(given):,} given to an operator, {len(waits):,} told why they wait"
        + (f", {len(undecided):,} undecided" if undecided else "")
        + f"; {per_pass(figures.trickle_probes, arrivals + room_all)};"
        f" {room_all:,} VIP arrivals with a slot freed for them: "
        + ", ".join(
            f"{len(times):,} {'told why they wait' if name == 'waits' else name}"
            for name, times in sorted(figures.room_arrivals.items())
        ),
        "",
        f"{'':<48}{'rate':>10}{'of bare':>9}{'p50':>13}{'p99':>13}{'n':>8}",
        row("decide() CPU per call (drain)", decide_rate, None, probes.decide_cpu),
        row("decide() + writes per decision (drain)", None, None, probes.decision),
        row("decide() + note per explained wait (drain)", None, None, probes.wait),
        row(
            "drain: decisions/s incl. commit; pass time",
            drain_rate,
            drain_rate / bare_rate if bare_rate else None,
            figures.passes,
        ),
        row("bare UPDATE+INSERT per decision (ceiling)", bare_rate, None, figures.bare),
        row(f"idle pass ({waiting})", None, None, figures.idle),
        row("idle pass, incremental (nothing changed since)", None, None, figures.incremental),
        row("arrival commit -> assigned/offered, committed", None, None, given),
        row("arrival commit -> told why it waits, committed", None, None, waits),
        row("arrival with room commit -> given, committed", None, None, room_given),
    ]
    return "\n".join(lines)


async def postgresql_unreachable() -> str | None:
    """Why the PostgreSQL half cannot run, or None when it can."""
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"not reachable at {POSTGRES_ADMIN}: {exc}"
    await connection.close()
    return None


async def run(sizes: Sizes, backends: Sequence[str]) -> list[Figures]:
    results = []
    for backend in backends:
        if backend == "postgresql":
            problem = await postgresql_unreachable()
            if problem is not None:
                print(f"postgresql: skipped, {problem}")
                continue
        figures = await run_backend(backend, sizes)
        print(report(figures))
        print()
        results.append(figures)
    return results


def main(argv: Sequence[str] | None = None) -> list[Figures]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--operators", type=int, help="default 1000 (--quick: 60)")
    parser.add_argument("--conversations", type=int, help="waiting; default 10000 (--quick: 600)")
    parser.add_argument("--queues", type=int, help="default 20 (--quick: 10)")
    parser.add_argument("--arrivals", type=int, help="trickle arrivals; default 200 (--quick: 20)")
    parser.add_argument(
        "--trickle-seconds", type=float, default=300.0, help="stop the trickle after this long"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    small = args.quick
    sizes = Sizes(
        operators=args.operators or (60 if small else 1000),
        conversations=args.conversations or (600 if small else 10_000),
        queues=args.queues or (10 if small else 20),
        arrivals=args.arrivals if args.arrivals is not None else (20 if small else 200),
        trickle_seconds=args.trickle_seconds,
    )
    if min(sizes.operators, sizes.conversations, sizes.queues) < 1 or sizes.arrivals < 0:
        parser.error("operators, conversations and queues must be at least 1, arrivals 0 or more")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"routing bench: {sizes.operators:,} operators, {sizes.queues} queues,"
        f" {sizes.conversations:,} waiting conversations, {sizes.arrivals} arrivals"
        f" (at most {sizes.trickle_seconds:g} s)\n"
    )
    return asyncio.run(run(sizes, backends))


if __name__ == "__main__":
    main()

"""The routing benchmark's contact center (bench/routing.py): operators, queues and the
waiting work, built in bulk in one transaction.

`build` makes, from `Sizes` and a seeded random generator: operators (most available, some
away, busy or offline; per-channel capacities, a voice seat for some, a total cap for others;
skills and languages), queues of the `QUEUE_KINDS` (the strategy chains people configure:
least busy, round robin, skills match with a required-skills expression, sticky; direct
assignment and offers; business hours; one overflowing into the first queue), every operator
a member of one or two, the work the available operators hold already, the conversations
waiting in those queues (with their contacts, identities and first messages, and for some an
earlier conversation that sticky routing's "last operator" reads), and the queue rules that
send new work to a queue (`queue_rules`). It returns a `Center`: the ids and counts to print.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    InteractionKind,
    Operator,
    Presence,
    Queue,
    QueueMember,
    Role,
    RoutingSetting,
)
from routing.config import parse_queue_config
from routing.rules import parse_rule_set
from routing.setup import QUEUE_RULES

# A Monday morning; the simulated clock starts here and moves one second per pass.
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VIP_KIND = "VIP"
MESSAGING_CHANNELS = ("whatsapp", "webform", "telegram", "sms", "api")


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


# Channels a rule before the VIP rule takes whoever calls: a VIP's call goes to Sales.
BEFORE_VIP_RULE = frozenset({"voice"})


def vip_queue(center: Center, sizes: Sizes) -> int | None:
    """The queue the VIP rule sends VIPs to (the first of its kind), if built."""
    for index, queue_id in enumerate(center.queue_ids):
        if QUEUE_KINDS[index % len(QUEUE_KINDS)].name == VIP_KIND:
            return queue_id
    return None

"""Search latency: the full-text index against a naive LIKE scan of the same data, same run.

For each backend it migrates a fresh database, seeds a benchmark data set (by default 20,000
contacts with an email and a phone each, 40,000 conversations in 8 queues and 100,000
interactions whose texts come from ../shared/datasets/support-dialogs when it is there, else
generated, with Russian and Georgian messages mixed in), then times the search box's queries
(the conversations an operator of one queue finds, as `GET /api/v1/search` runs them, and
contacts) and the same words found with `LIKE '%word%'`, and prints p50/p99 in milliseconds.
The target is under 100 ms at p99 for the full-text queries.

    python bench/search.py [--contacts 20000] [--interactions 100000] [--queries 100]
                           [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, or_, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from bench.common import database, percentile  # noqa: E402
from core import contacts, search  # noqa: E402 - the path is set up just above
from core.audit import Actor  # noqa: E402
from core.db import make_engine, make_session_factory  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import (  # noqa: E402
    Contact,
    Conversation,
    Identity,
    Interaction,
    Operator,
    Queue,
    QueueMember,
    Role,
    utcnow,
)

DIALOGS = ROOT.parent / "shared" / "datasets" / "support-dialogs" / "bitext-customer-support.csv"
FIRST = ["Anna", "Jonas", "Maria", "Иван", "Ольга", "ნინო", "გიორგი", "Արամ", "李", "Kim", "Lukas"]
LAST = ["Novak", "Weber", "Keller", "Петров", "Смирнова", "ბერიძე", "Մելքոնյան", "Lee", "Schmidt"]
OTHER_TEXTS = [
    "Здравствуйте, моя посылка не пришла, номер заказа {n}",
    "Хочу вернуть товар и получить деньги обратно",
    "გამარჯობა, ჩემი შეკვეთა {n} ჯერ არ მოსულა",
    "Բարև, իմ պատվերը {n} դեռ չի եկել",
    "Guten Tag, meine Rechnung {n} ist falsch",
]
QUERIES = ["refund", "cancel order", "invoice", "посылка", "შეკვეთა", "deliv", "password reset"]
BATCH = 2000


@dataclass
class Timings:
    name: str
    latencies: list[float] = field(default_factory=list)
    found: int = 0

    def percentile(self, share: float) -> float:
        """In milliseconds."""
        return percentile(self.latencies, share) * 1000


def texts() -> list[str]:
    """Customer questions and answers of the support-dialogs data set, else generated ones."""
    found: list[str] = []
    if DIALOGS.exists():
        with DIALOGS.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                found += [row.get("instruction") or "", row.get("response") or ""]
    found = [text for text in found if text.strip()]
    if not found:
        words = [
            "order",
            "refund",
            "invoice",
            "delivery",
            "password",
            "account",
            "cancel",
            "payment",
            "address",
        ]
        rng = random.Random(1)
        found = [" ".join(rng.choices(words, k=20)) for _ in range(2000)]
    return found


async def seed(session: AsyncSession, n_contacts: int, n_interactions: int) -> Actor:
    """The data set; returns an operator of one of the eight queues."""
    rng = random.Random(42)
    bodies = texts()
    queues = [Queue(name=f"Queue {n}") for n in range(8)]
    operator = Operator(email="bench@example.com", name="Bench", role=Role.OPERATOR)
    session.add_all([*queues, operator])
    await session.flush()
    session.add(QueueMember(queue_id=queues[0].id, operator_id=operator.id))
    now = utcnow()
    for start in range(0, n_contacts, BATCH):
        await session.execute(
            insert(Contact),
            [
                {
                    "id": n + 1,
                    "display_name": f"{rng.choice(FIRST)} {rng.choice(LAST)} {n}",
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(n_contacts, start + BATCH))
            ],
        )
        await session.execute(
            insert(Identity),
            [
                row
                for n in range(start, min(n_contacts, start + BATCH))
                for row in (
                    {"contact_id": n + 1, "kind": "email", "address": f"person{n}@example.com"},
                    {"contact_id": n + 1, "kind": "phone", "address": f"+49151{n:08d}"},
                )
            ],
        )
    n_conversations = max(1, n_interactions // 2 // 5 * 2)
    for start in range(0, n_conversations, BATCH):
        await session.execute(
            insert(Conversation),
            [
                {
                    "id": n + 1,
                    "contact_id": rng.randint(1, n_contacts),
                    "channel": "email",
                    "status": rng.choice(["open", "pending", "resolved", "resolved"]),
                    "queue_id": queues[n % len(queues)].id,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(n_conversations, start + BATCH))
            ],
        )
    for start in range(0, n_interactions, BATCH):
        rows = []
        for n in range(start, min(n_interactions, start + BATCH)):
            conversation = rng.randint(1, n_conversations)
            if rng.random() < 0.1:
                text = rng.choice(OTHER_TEXTS).format(n=100000 + n)
            else:
                text = rng.choice(bodies)
            rows.append(
                {
                    "conversation_id": conversation,
                    "contact_id": rng.randint(1, n_contacts),
                    "kind": "message",
                    "direction": rng.choice(["in", "out"]),
                    "channel": "email",
                    "external_id": f"bench-{n}",
                    "subject": "",
                    "text": text,
                    "occurred_at": now,
                    "created_at": now,
                }
            )
        await session.execute(insert(Interaction), rows)
    return Actor("bench", Role.OPERATOR, operator.id)


def like_conversations(words: Sequence[str]) -> object:
    """The naive way: every word somewhere in the text, case-blind, by scanning."""
    return (
        select(Interaction.conversation_id, func.max(Interaction.id).label("hit"))
        .where(*[Interaction.text.ilike(f"%{word}%") for word in words])
        .group_by(Interaction.conversation_id)
        .order_by(func.max(Interaction.id).desc())
        .limit(20)
    )


def like_contacts(text: str) -> object:
    by_address = select(Identity.contact_id).where(Identity.address.ilike(f"%{text}%"))
    return (
        select(Contact.id)
        .where(or_(Contact.display_name.ilike(f"%{text}%"), Contact.id.in_(by_address)))
        .order_by(Contact.created_at.desc(), Contact.id.desc())
        .limit(20)
    )


async def timed(
    timings: Timings, runs: int, queries: Sequence[str], call: Callable[[str], Awaitable[int]]
) -> None:
    for n in range(runs):
        query = queries[n % len(queries)]
        started = time.perf_counter()
        timings.found += await call(query)
        timings.latencies.append(time.perf_counter() - started)


async def run(backend: str, n_contacts: int, n_interactions: int, runs: int) -> list[Timings]:
    async with database(backend) as url:
        await upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            operator = await seed(session, n_contacts, n_interactions)
        print(
            f"{backend}: seeded {n_contacts} contacts, {n_interactions} interactions "
            f"in {time.perf_counter() - started:.1f} s"
        )
        if backend == "postgresql":
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
        admin = Actor("bench-admin", Role.ADMIN)
        people = [f"{name}" for name in FIRST] + ["person123@example.com", "+4915100000042"]
        results = [
            Timings("fts conversations (admin)"),
            Timings("fts conversations (operator)"),
            Timings("fts contacts"),
            Timings("LIKE conversations"),
            Timings("LIKE contacts"),
            Timings("warm-up (cold first queries)"),
        ]
        async with sessions() as session:

            def conversations_as(actor: Actor) -> Callable[[str], Awaitable[int]]:
                async def call(query: str) -> int:
                    hits, _ = await search.search_conversations(
                        session, actor, query, cursor=None, limit=20
                    )
                    return len(hits)

                return call

            async def fts_contacts(query: str) -> int:
                rows, _ = await contacts.search_contacts(
                    session, query, default_region="DE", cursor=None, limit=20
                )
                return len(rows)

            async def like_conv(query: str) -> int:
                rows = await session.execute(like_conversations(search.tokens(query)))  # type: ignore[call-overload]
                return len(rows.all())

            async def like_cont(query: str) -> int:
                rows = await session.execute(like_contacts(query))  # type: ignore[call-overload]
                return len(rows.all())

            # The first query of each kind pays for cold caches and plans (a server that has
            # answered one search has paid it): timed apart, not in the percentiles.
            await timed(results[5], 5, QUERIES, conversations_as(admin))
            await timed(results[5], 5, people, fts_contacts)
            await timed(results[0], runs, QUERIES, conversations_as(admin))
            await timed(results[1], runs, QUERIES, conversations_as(operator))
            await timed(results[2], runs, people, fts_contacts)
            await timed(results[3], max(5, runs // 5), QUERIES, like_conv)
            await timed(results[4], max(5, runs // 5), people, like_cont)
        await engine.dispose()
        return results


def main(argv: Sequence[str] | None = None) -> dict[str, list[Timings]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100, help="runs of each kind")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    figures: dict[str, list[Timings]] = {}
    for backend in args.backends.split(","):
        results = asyncio.run(run(backend, args.contacts, args.interactions, args.queries))
        figures[backend] = results
        print(f"{'':2}{'query':32}{'p50 ms':>9}{'p99 ms':>9}{'runs':>6}{'hits':>8}")
        for timing in results:
            print(
                f"{'':2}{timing.name:32}{timing.percentile(0.5):9.1f}"
                f"{timing.percentile(0.99):9.1f}{len(timing.latencies):6}{timing.found:8}"
            )
        fts = max(timing.percentile(0.99) for timing in results[:3])
        print(f"  full-text p99 {'under' if fts < 100 else 'OVER'} the 100 ms target ({fts:.1f})")
    return figures


if __name__ == "__main__":
    main()

"""Reply suggestions: how often each engine's suggestions, as the console gets them, hold an
answer of the right intent, and how fast, at 10,000 and 100,000 indexed replies, on SQLite and
PostgreSQL, next to baselines and a ceiling measured in the same run.

The data are the real customer-support dialogues of ../shared/datasets/support-dialogs (one
question, one agent answer, 27 intents in 11 categories). They are split once, seeded and
stratified by intent: 80% (2,140) are the team's answered conversations, indexed; 20% (539) are
held out as questions of customers the index has never seen, taking turns by intent, so
`--queries N` asks the first N and the default 216 is eight of each intent.

For each database it builds the index in bulk, the way production holds it (the bench measures
the engines, not the conversation plumbing): one resolved conversation per reply, in the queue
of its category; one `SuggestionDoc` of kind `reply` per conversation (question = the
customer's message, answer = the agent's, language "en"); the lexical engine's full-text rows by
its own `index()`, in batches; for the semantic engine each question's vector (each distinct
question embedded once per run). The sizes are reached in turn (10,000, then 90,000 more).
Beyond the 2,140 indexed rows they repeat with light deterministic variations: each question in
four wordings (as written; a greeting before it; a closing after it; both, lower-cased), and
the same answer given again, addressed or signed with placeholders (its `answer_key` unchanged,
as the service counts a repeated answer once). So 100,000 documents hold 8,560 different
questions, each some 12 times. One repeated row in ten sits in a queue the bench's operator is
not a member of.

Each held-out question is a customer's message in an open conversation of its category's
queue. The asker is an operator, member of the 11 category queues, and each question is asked
as the console asks it (`GET /api/v1/conversations/{id}/suggestions`, less HTTP): a session
and transaction of its own running `SuggestionService.suggest` with three suggestions wanted,
that is reading the conversation and its question, detecting its language, the engine's
search under `core.visibility.suggestion_filter` of that operator (the subquery on
conversations and queue memberships every operator's search pays; a supervisor's condition
is `true`) for `CANDIDATES` hits, the ranking (`_rank`: the team's use of each answer, the
same queue's and the same language's bonuses, one suggestion per answer), filling the
placeholders and recording what was shown. A hit is the first suggestion (top-1) or one of
the three (top-3) being an answer of the held-out question's intent, as the data set defines
intents ("shown" is how many suggestions there were). Latency is p50/p99 of that request (for
the semantic engine it includes embedding the question); each engine's first requests (the
model, the vector cache, cold plans) are timed apart, not in the percentiles ("first ms"). The
engine alone is measured beside it on the same questions ("engine search only": its
`engine.search`, the first three different answers of its hits as the suggestions), to show
what the ranking and the rest of the request add.
Each size is measured on new connections, as by a server started on that index: a PostgreSQL
connection that ran the lexical engine's statements on 10,000 documents keeps the generic plan
it chose then, and on 100,000 searches about four times slower than a new one (p50 ~180 ms
against ~45 ms when this bench was written; `plan_cache_mode = force_custom_plan` avoids it).

In the same run, per database and size:
- baselines: random answers of the question's queue (its category; top-3: three different
  ones), and the answers of the most frequent intents (top-1: the first; top-3: three);
- the ceiling: an oracle, which finds the intent whenever the operator may be offered one of
  its answers; and the floors of latency: a `SELECT 1` round trip on the same kind of session,
  and for the semantic engine embedding the question alone (the model, without the database).
Each table gives the machine's load average when it was measured: the model's latency is the
most sensitive to other processes on the CPUs.

It ends with the engine recommended as the default: among the engines whose suggestion request
keeps its p99 under the budget (`--budget-ms`, 250) at every size on every database measured,
the best top-3 at the largest size (the mean over the databases). When none does, it says so,
where each missed, and which came closest (the lowest worst p99).

    python bench/suggestions.py [--sizes 10000,100000] [--databases sqlite,postgresql]
                                [--engines lexical,semantic] [--queries 216] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402 - the path is set up just above
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from bench.common import database, percentile, postgresql_unreachable  # noqa: E402
from core.audit import Actor  # noqa: E402
from core.db import SessionFactory, make_engine, make_session_factory  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.models import (  # noqa: E402
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Operator,
    Queue,
    QueueMember,
    Role,
    SuggestionDoc,
    SuggestionKind,
    utcnow,
)
from core.suggestions import semantic  # noqa: E402
from core.suggestions.base import Question, SuggestionEngine  # noqa: E402
from core.suggestions.lexical import LexicalEngine  # noqa: E402
from core.suggestions.service import CANDIDATES, SuggestionService  # noqa: E402
from core.suggestions.text import answer_key  # noqa: E402
from core.visibility import suggestion_filter  # noqa: E402

DIALOGS = ROOT.parent / "shared" / "datasets" / "support-dialogs" / "bitext-customer-support.csv"
SEED = 15
HELD_OUT = 0.2
BATCH = 2000
WARM_UP = 3
# Suggestions shown per question (the service's default), each a different answer.
SHOWN = 3
QUERIES = 216
BUDGET_MS = 250.0
ENGINES = ("lexical", "semantic")
OTHER_TEAM = "Other team"
# How the repeated rows are worded (see the module's docstring).
QUESTION_WORDINGS = 4
GREETINGS = ("hi", "hello", "good morning", "hey there", "dear support", "hello team")
CLOSINGS = ("thanks", "thank you", "please help", "asap please", "thanks in advance", "cheers")
SALUTATIONS = (
    "{answer}",
    "{{{{contact.first_name}}}},\n\n{answer}",
    "{answer}\n\n{{{{operator.first_name}}}}",
    "{{{{contact.name}}}},\n{answer}\n-- {{{{operator.name}}}}",
)


@dataclass(frozen=True)
class Dialog:
    question: str
    answer: str
    intent: str
    category: str


def load(path: Path = DIALOGS) -> list[Dialog]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Dialog(row["instruction"], row["response"], row["intent"], row["category"])
            for row in csv.DictReader(handle)
            if row["instruction"].strip() and row["response"].strip()
        ]


def split(dialogs: Sequence[Dialog], seed: int = SEED) -> tuple[list[Dialog], list[Dialog]]:
    """(indexed, held out): HELD_OUT of each intent's dialogues held out, chosen by `seed`. The
    held-out ones take turns by intent, so the first N asked cover the intents evenly."""
    rng = random.Random(seed)
    by_intent: dict[str, list[Dialog]] = defaultdict(list)
    for dialog in dialogs:
        by_intent[dialog.intent].append(dialog)
    indexed: list[Dialog] = []
    turns: list[list[Dialog]] = []
    for intent in sorted(by_intent):
        group = list(by_intent[intent])
        rng.shuffle(group)
        cut = max(1, round(len(group) * HELD_OUT))
        turns.append(group[:cut])
        indexed += group[cut:]
    rng.shuffle(indexed)
    rng.shuffle(turns)
    held_out = [
        group[turn] for turn in range(max(map(len, turns))) for group in turns if turn < len(group)
    ]
    return indexed, held_out


class Corpus:
    """The indexed documents of any size: document n (0-based; its id is n + 1) is the indexed
    dialogue n % rows, copy n // rows, worded by its copy."""

    def __init__(self, indexed: Sequence[Dialog]) -> None:
        self.rows = list(indexed)
        self.keys = [answer_key(row.answer) for row in self.rows]

    def dialog(self, n: int) -> Dialog:
        return self.rows[n % len(self.rows)]

    def answer_key(self, n: int) -> str:
        return self.keys[n % len(self.rows)]

    def copy(self, n: int) -> int:
        return n // len(self.rows)

    def question(self, n: int) -> str:
        row, wording = n % len(self.rows), self.copy(n) % QUESTION_WORDINGS
        asked = self.rows[row].question
        greeting = GREETINGS[(row + wording) % len(GREETINGS)]
        closing = CLOSINGS[(row * 7 + wording) % len(CLOSINGS)]
        if wording == 1:
            return f"{greeting.capitalize()}, {asked}"
        if wording == 2:
            return f"{asked} {closing}"
        if wording == 3:
            return f"{greeting} {asked.lower()}, {closing}"
        return asked

    def answer(self, n: int) -> str:
        """The same answer given again: addressed or signed with placeholders, which leave its
        `answer_key` as it was (the suggestion service shows it once)."""
        answer = self.dialog(n).answer
        return SALUTATIONS[self.copy(n) % len(SALUTATIONS)].format(answer=answer)

    def hidden(self, n: int) -> bool:
        """In the other team's queue: one repeated row in ten."""
        return self.copy(n) > 0 and (n + self.copy(n)) % 10 == 0

    def questions(self, size: int) -> set[str]:
        return {self.question(n) for n in range(size)}


@dataclass
class Scores:
    """Hits among the suggestions shown for each question: the intents of up to three
    different answers, best first."""

    asked: int = 0
    top1: int = 0
    top3: int = 0
    shown: int = 0

    def add(self, intent: str, found: Sequence[str]) -> None:
        self.asked += 1
        self.top1 += bool(found) and found[0] == intent
        self.top3 += intent in found[:SHOWN]
        self.shown += len(found[:SHOWN])

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.asked if self.asked else float("nan")

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.asked if self.asked else float("nan")

    @property
    def shown_mean(self) -> float:
        return self.shown / self.asked if self.asked else float("nan")


@dataclass
class Timed:
    latencies: list[float] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        """In milliseconds."""
        return percentile(self.latencies, share) * 1000


@dataclass
class EngineFigures:
    """An engine's figures: its suggestion requests, and its search alone beside them."""

    engine: str
    scores: Scores
    timed: Timed
    first: Timed  # the warm-up requests
    search_scores: Scores = field(default_factory=Scores)
    search_timed: Timed = field(default_factory=Timed)
    # Questions the service answered with the lexical engine (a language this one does not
    # read).
    other_engine: int = 0


@dataclass
class SizeFigures:
    database: str
    size: int
    build_seconds: float
    engines: list[EngineFigures]
    random_queue: Scores
    most_frequent: Scores
    oracle: Scores
    floor: Timed
    # The semantic engine's own floor: embedding the question, without the database.
    embedding: Timed | None
    load_average: float


@dataclass
class Result:
    sizes: list[SizeFigures]
    recommendation: str


@dataclass
class World:
    """What the bench creates around the documents: queues, the operator, one contact, and the
    open conversation of each held-out question."""

    queues: dict[str, int]  # category -> queue id
    other_queue: int
    contact: int
    operator: Actor
    asking: list[int] = field(default_factory=list)  # conversation ids, as the questions


async def create_world(
    sessions: SessionFactory, categories: Sequence[str], questions: Sequence[Dialog], first: int
) -> World:
    """The queues, the operator and the contact; each question a customer's message in an
    open conversation of its category's queue, with ids from `first` (above every indexed
    conversation's)."""
    async with sessions() as session, session.begin():
        queues = {name: Queue(name=name) for name in sorted(categories)}
        other = Queue(name=OTHER_TEAM)
        operator = Operator(email="bench@example.com", name="Bench Operator", role=Role.OPERATOR)
        contact = Contact(display_name="Bench Customer", language="en")
        session.add_all([*queues.values(), other, operator, contact])
        await session.flush()
        session.add_all(
            QueueMember(queue_id=queue.id, operator_id=operator.id) for queue in queues.values()
        )
        world = World(
            {name: queue.id for name, queue in queues.items()},
            other.id,
            contact.id,
            Actor("bench-operator", Role.OPERATOR, operator.id),
            [first + n for n in range(len(questions))],
        )
        now = utcnow()
        await session.execute(
            insert(Conversation),
            [
                {
                    "id": conversation_id,
                    "contact_id": contact.id,
                    "channel": "email",
                    "status": ConversationStatus.OPEN,
                    "queue_id": world.queues[question.category],
                    "subject": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for conversation_id, question in zip(world.asking, questions, strict=True)
            ],
        )
        await session.execute(
            insert(Interaction),
            [
                {
                    "conversation_id": conversation_id,
                    "contact_id": contact.id,
                    "kind": InteractionKind.MESSAGE,
                    "direction": Direction.IN,
                    "channel": "email",
                    "text": question.question,
                    "meta": {},
                    "attachments": [],
                    "occurred_at": now,
                    "created_at": now,
                }
                for conversation_id, question in zip(world.asking, questions, strict=True)
            ],
        )
        return world


async def fill(
    sessions: SessionFactory,
    corpus: Corpus,
    world: World,
    start: int,
    stop: int,
    vectors: dict[str, bytes] | None,
) -> float:
    """Documents start..stop-1 with their conversations and full-text rows (and vectors), a
    batch per transaction; the seconds the lexical engine's `index()` took."""
    lexical = LexicalEngine()
    indexing = 0.0
    base = utcnow() - timedelta(days=30)
    for first in range(start, stop, BATCH):
        numbers = range(first, min(stop, first + BATCH))
        conversations = []
        docs = []
        for n in numbers:
            dialog = corpus.dialog(n)
            queue = world.other_queue if corpus.hidden(n) else world.queues[dialog.category]
            # Distinct times, as replies indexed one by one have (the semantic engine's cache
            # reads what changed since its newest row).
            at = base + timedelta(seconds=n)
            question, answer = corpus.question(n), corpus.answer(n)
            conversations.append(
                {
                    "id": n + 1,
                    "contact_id": world.contact,
                    "channel": "email",
                    "status": ConversationStatus.RESOLVED,
                    "queue_id": queue,
                    "subject": "",
                    "created_at": at,
                    "updated_at": at,
                    "resolved_at": at,
                }
            )
            docs.append(
                {
                    "id": n + 1,
                    "kind": SuggestionKind.REPLY,
                    "source_id": n + 1,
                    "conversation_id": n + 1,
                    "queue_id": queue,
                    "language": "en",
                    "title": "",
                    "question": question,
                    "answer": answer,
                    "answer_key": answer_key(answer),
                    "shareable": False,
                    "excluded": False,
                    "embedding": vectors[question] if vectors is not None else None,
                    "embedding_model": semantic.MODEL_NAME if vectors is not None else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        async with sessions() as session, session.begin():
            await session.execute(insert(Conversation), conversations)
            await session.execute(insert(SuggestionDoc), docs)
            started = time.perf_counter()
            await lexical.index(
                session,
                [
                    SuggestionDoc(
                        id=doc["id"], question=doc["question"], answer=doc["answer"], language="en"
                    )
                    for doc in docs
                ],
            )
            indexing += time.perf_counter() - started
    return indexing


def baselines(
    corpus: Corpus, size: int, questions: Sequence[Dialog], seed: int = SEED
) -> tuple[Scores, Scores, Scores]:
    """(random answers of the queue, the most frequent intents' answers, oracle) among the
    documents the operator may be offered."""
    rng = random.Random(seed)
    by_category: dict[str, set[int]] = defaultdict(set)  # the rows offered, by queue
    intents: Counter[str] = Counter()
    for n in range(size):
        if not corpus.hidden(n):
            dialog = corpus.dialog(n)
            by_category[dialog.category].add(n % len(corpus.rows))
            intents[dialog.intent] += 1
    queues = {category: sorted(rows) for category, rows in by_category.items()}
    frequent = [intent for intent, _ in intents.most_common(SHOWN)]
    random_queue, most_frequent, oracle = Scores(), Scores(), Scores()
    for question in questions:
        rows = queues.get(question.category, [])
        picked = rng.sample(rows, min(SHOWN, len(rows)))
        random_queue.add(question.intent, [corpus.rows[row].intent for row in picked])
        most_frequent.add(question.intent, frequent)
        oracle.add(question.intent, [question.intent] if question.intent in intents else [])
    return random_queue, most_frequent, oracle


def shown(corpus: Corpus, doc_ids: Sequence[int]) -> list[str]:
    """The intents of the suggestions the service would show for these hits: the first SHOWN
    different answers (`answer_key`)."""
    keys: set[str] = set()
    found: list[str] = []
    for doc_id in doc_ids:
        key = corpus.answer_key(doc_id - 1)
        if key not in keys:
            keys.add(key)
            found.append(corpus.dialog(doc_id - 1).intent)
            if len(found) == SHOWN:
                break
    return found


async def measure(
    sessions: SessionFactory,
    engine: SuggestionEngine,
    corpus: Corpus,
    world: World,
    questions: Sequence[Dialog],
) -> EngineFigures:
    """The suggestion requests with `engine` configured (first, cold), then its search alone."""
    figures = EngineFigures(engine.name, Scores(), Timed(), Timed())
    engines = {"lexical": engine if engine.name == "lexical" else LexicalEngine()}
    service = SuggestionService({**engines, engine.name: engine}, engine.name)
    asked = list(zip(questions, world.asking, strict=True))

    async def request(conversation_id: int) -> tuple[float, list[int], str]:
        started = time.perf_counter()
        # As the route: a session and a transaction per request (what was shown commits).
        async with sessions() as session, session.begin():
            found = await service.suggest(session, world.operator, conversation_id, limit=SHOWN)
        return time.perf_counter() - started, [item.doc_id for item in found.items], found.engine

    for _, conversation_id in asked[:WARM_UP]:
        figures.first.latencies.append((await request(conversation_id))[0])
    for question, conversation_id in asked:
        seconds, doc_ids, answered_by = await request(conversation_id)
        figures.timed.latencies.append(seconds)
        figures.scores.add(
            question.intent, [corpus.dialog(doc_id - 1).intent for doc_id in doc_ids]
        )
        figures.other_engine += answered_by != engine.name

    allowed = suggestion_filter(world.operator)
    async with sessions() as session:
        for question in questions[:WARM_UP]:
            await engine.search(
                session, Question(question.question, "en"), allowed=allowed, limit=CANDIDATES
            )
        for question in questions:
            started = time.perf_counter()
            hits = await engine.search(
                session, Question(question.question, "en"), allowed=allowed, limit=CANDIDATES
            )
            figures.search_timed.latencies.append(time.perf_counter() - started)
            figures.search_scores.add(question.intent, shown(corpus, [hit.doc_id for hit in hits]))
    return figures


async def embedding_alone(questions: Sequence[Dialog]) -> Timed:
    timed = Timed()
    for question in questions:
        started = time.perf_counter()
        await asyncio.to_thread(semantic.SHARED_EMBEDDER.embed, [question.question])
        timed.latencies.append(time.perf_counter() - started)
    return timed


async def select_one(session: AsyncSession, runs: int) -> Timed:
    timed = Timed()
    for _ in range(runs):
        started = time.perf_counter()
        await session.execute(text("SELECT 1"))
        timed.latencies.append(time.perf_counter() - started)
    return timed


def make_engines(names: Sequence[str]) -> list[SuggestionEngine]:
    return [LexicalEngine() if name == "lexical" else semantic.SemanticEngine() for name in names]


async def run_database(
    name: str,
    sizes: Sequence[int],
    engines: Sequence[str],
    corpus: Corpus,
    questions: Sequence[Dialog],
    vectors: dict[str, bytes] | None,
) -> list[SizeFigures]:
    results: list[SizeFigures] = []
    async with database(name) as url:
        await upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        try:
            world = await create_world(
                sessions,
                sorted({row.category for row in corpus.rows}),
                questions,
                max(sizes) + 1,
            )
            built = 0
            for size in sorted(sizes):
                started = time.perf_counter()
                indexing = await fill(sessions, corpus, world, built, size, vectors)
                if name == "postgresql":
                    async with engine.begin() as connection:
                        await connection.exec_driver_sql("ANALYZE")
                # New connections for each size (see the module's docstring).
                await engine.dispose()
                seconds = time.perf_counter() - started
                print(
                    f"{name}: {size:,} documents (added {size - built:,} in {seconds:.1f} s, "
                    f"the lexical engine's index() {indexing:.1f} s of it)"
                )
                built = size
                measured = [
                    await measure(sessions, engine_, corpus, world, questions)
                    for engine_ in make_engines(engines)
                ]
                async with sessions() as session:
                    floor = await select_one(session, len(questions))
                embedding = await embedding_alone(questions) if "semantic" in engines else None
                random_queue, most_frequent, oracle = baselines(corpus, size, questions)
                figures = SizeFigures(
                    name,
                    size,
                    seconds,
                    measured,
                    random_queue,
                    most_frequent,
                    oracle,
                    floor,
                    embedding,
                    os.getloadavg()[0],
                )
                print(report(figures))
                results.append(figures)
        finally:
            await engine.dispose()
    return results


def rates(scores: Scores) -> str:
    return f"{scores.top1_rate:7.1%}{scores.top3_rate:7.1%}{scores.shown_mean:7.2f}"


def report(figures: SizeFigures) -> str:
    asked = figures.oracle.asked
    lines = [
        f"  {figures.database}, {figures.size:,} documents, {asked} held-out questions "
        f"(load average {figures.load_average:.1f})",
        f"  {'':44}{'top-1':>7}{'top-3':>7}{'shown':>7}{'p50 ms':>9}{'p99 ms':>9}{'first ms':>10}",
    ]
    for engine in figures.engines:
        first = engine.first.latencies[0] * 1000 if engine.first.latencies else float("nan")
        label = f"{engine.engine}: suggestion request"
        lines.append(
            f"  {label:44}{rates(engine.scores)}{engine.timed.percentile(0.5):9.1f}"
            f"{engine.timed.percentile(0.99):9.1f}{first:10.1f}"
        )
        label = f"{engine.engine}: engine search only"
        lines.append(
            f"  {label:44}{rates(engine.search_scores)}"
            f"{engine.search_timed.percentile(0.5):9.1f}{engine.search_timed.percentile(0.99):9.1f}"
        )
        if engine.other_engine:
            questions = "question" if engine.other_engine == 1 else "questions"
            lines.append(
                f"  ({engine.other_engine} {questions} answered by the lexical engine: "
                "a language this one does not read)"
            )
    for label, scores in (
        ("baseline: random answer of the queue", figures.random_queue),
        ("baseline: most frequent intent's answer", figures.most_frequent),
    ):
        lines.append(f"  {label:44}{rates(scores)}")
    oracle = figures.oracle
    lines.append(
        f"  {'ceiling: oracle (an offered answer has it)':44}"
        f"{oracle.top1_rate:7.1%}{oracle.top3_rate:7.1%}"
    )
    lines.append(
        f"  {'floor: SELECT 1 round trip':44}{'':21}"
        f"{figures.floor.percentile(0.5):9.2f}{figures.floor.percentile(0.99):9.2f}"
    )
    if figures.embedding is not None:
        lines.append(
            f"  {'floor: embedding the question (semantic)':44}{'':21}"
            f"{figures.embedding.percentile(0.5):9.2f}{figures.embedding.percentile(0.99):9.2f}"
        )
    return "\n".join(lines)


def recommend(sizes: Sequence[SizeFigures], budget_ms: float) -> str:
    """The engine with the best top-3 at the largest size (the mean over the databases) among
    those whose suggestion request keeps its p99 under the budget at every size on every
    database measured."""
    if not sizes:
        return "recommendation: none: nothing was measured"
    largest = max(figures.size for figures in sizes)
    where = ", ".join(dict.fromkeys(figures.database for figures in sizes))
    ranked: list[tuple[str, float, float]] = []
    within: list[tuple[str, float, float]] = []
    missed: list[str] = []
    for name in ENGINES:
        mine = [(figures, e) for figures in sizes for e in figures.engines if e.engine == name]
        if not mine:
            continue
        top3 = statistics.fmean(e.scores.top3_rate for f, e in mine if f.size == largest)
        p99s = [(f, e.timed.percentile(0.99)) for f, e in mine]
        entry = (name, top3, max(p99 for _, p99 in p99s))
        ranked.append(entry)
        over = [f"{f.database} {f.size:,}: {p99:.0f} ms" for f, p99 in p99s if not p99 < budget_ms]
        if over:
            missed.append(f"  {name}: p99 over {budget_ms:.0f} ms at {'; '.join(over)}")
        else:
            within.append(entry)
    summary = "; ".join(
        f"{name} top-3 {top3:.1%} at {largest:,}, worst p99 {worst:.0f} ms"
        for name, top3, worst in ranked
    )
    if within:
        best = max(within, key=lambda entry: (entry[1], -entry[2]))
        return "\n".join(
            [
                f"recommendation: default engine {best[0]}: the best top-3 at {largest:,} "
                f"documents of those whose p99 stays under {budget_ms:.0f} ms at every size "
                f"on {where} ({summary})",
                *missed,
            ]
        )
    closest = min(ranked, key=lambda entry: entry[2])
    return "\n".join(
        [
            f"recommendation: none: no engine keeps its p99 under {budget_ms:.0f} ms at every "
            f"size on {where} ({summary})",
            *missed,
            f"  closest to the budget: {closest[0]} (worst p99 {closest[2]:.0f} ms)",
        ]
    )


async def embed(corpus: Corpus, size: int) -> dict[str, bytes]:
    """Each distinct question of the largest corpus, embedded once."""
    distinct = sorted(corpus.questions(size))
    started = time.perf_counter()
    vectors = await asyncio.to_thread(semantic.SHARED_EMBEDDER.embed, distinct)
    print(
        f"embedded {len(distinct):,} distinct questions ({semantic.MODEL_NAME}) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return {
        question: semantic.to_bytes(vector)
        for question, vector in zip(distinct, vectors, strict=True)
    }


async def run(
    sizes: Sequence[int],
    databases: Sequence[str],
    engines: Sequence[str],
    queries: int,
    budget_ms: float,
) -> Result:
    dialogs = load()
    indexed, held_out = split(dialogs)
    questions = held_out[:queries] if queries else held_out
    corpus = Corpus(indexed)
    print(
        f"suggestions bench: {len(dialogs):,} dialogues ({len({d.intent for d in dialogs})} "
        f"intents, {len({d.category for d in dialogs})} queues), {len(indexed):,} indexed, "
        f"{len(held_out)} held out ({len(questions)} asked); engines {', '.join(engines)}; "
        f"sizes {', '.join(f'{size:,}' for size in sizes)}; {CANDIDATES} hits asked per search; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    wanted = list(engines)
    if "semantic" in wanted and not semantic.available():
        print("semantic: skipped, not installed (pip install 'omnicrm[semantic]')")
        wanted.remove("semantic")
    vectors = await embed(corpus, max(sizes)) if "semantic" in wanted else None
    results: list[SizeFigures] = []
    for name in databases:
        if name == "postgresql":
            problem = await postgresql_unreachable()
            if problem is not None:
                print(f"postgresql: skipped, {problem}")
                continue
        results += await run_database(name, sizes, wanted, corpus, questions, vectors)
    recommendation = recommend(results, budget_ms)
    print(recommendation)
    return Result(results, recommendation)


def numbers(value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in value.split(",") if part.strip()]


def names(value: str, allowed: Sequence[str]) -> list[str]:
    found = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in found if name not in allowed]
    if unknown or not found:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
    return found


def main(argv: Sequence[str] | None = None) -> Result:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=numbers, help="indexed documents; default 10000,100000 (--quick: 1000)"
    )
    parser.add_argument(
        "--databases",
        type=lambda value: names(value, ("sqlite", "postgresql")),
        help="default sqlite,postgresql (--quick: sqlite)",
    )
    parser.add_argument(
        "--engines",
        type=lambda value: names(value, ENGINES),
        help="default lexical,semantic (--quick: lexical)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        help=f"held-out questions asked, 0 for all; default {QUERIES} (--quick: 54)",
    )
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS, help="p99 budget")
    parser.add_argument("--quick", action="store_true", help="small and lexical, a smoke run")
    args = parser.parse_args(argv)
    if not DIALOGS.exists():
        parser.error(f"the support-dialogs data set is not at {DIALOGS}")
    quick = args.quick
    sizes = args.sizes or ([1000] if quick else [10_000, 100_000])
    if min(sizes) < 1:
        parser.error("sizes must be at least 1")
    if args.queries is not None and args.queries < 0:
        parser.error("--queries must be 0 (all) or more")
    return asyncio.run(
        run(
            sizes,
            args.databases or (["sqlite"] if quick else ["sqlite", "postgresql"]),
            args.engines or (["lexical"] if quick else list(ENGINES)),
            args.queries if args.queries is not None else (54 if quick else QUERIES),
            args.budget_ms,
        )
    )


if __name__ == "__main__":
    main()

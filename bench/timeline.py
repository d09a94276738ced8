"""The customer timeline at scale: a contact's history as the console asks for it, over
1,000,000 interactions of 100,000 contacts, on PostgreSQL (issue 17: p99 at most 20 ms).

It migrates a scratch PostgreSQL database and seeds the reports bench's year of history
(bench/reports_seed.py: by default 100,000 contacts, 250,000 conversations in 8 queues,
1,000,000 interactions; no leads, which the timeline does not read), then VACUUM ANALYZE.
Contacts' histories are skewed as a live system's are: a few contacts have thousands of
interactions, most a handful, some none.

It times `core.contacts.contact_timeline` as `GET /api/v1/contacts/{id}/timeline` calls it
(the console's page of 50, the actor the route would have), each call in a session of its own
as a request has: the first page and the next one (with the first page's cursor), for a
supervisor (who sees everything) and for an operator of two queues (Billing and Returns, about
a sixth of the conversations: the visibility filter of core/visibility.py does real work),
and the same through the HTTP route (`web.app.create_app` behind aiohttp's test server, signed
in with a session cookie as the console is) to show what HTTP and JSON add. The contacts are
`--heavy` of the contacts with the most interactions (found once, before the timings) and
`--random` drawn at random with a fixed seed, visited in a shuffled order. Interleaved with
them, the floor: the cheapest query that returns the supervisor's rows, a raw
`SELECT ... FROM interaction WHERE contact_id = $1 [AND (occurred_at, id) < ($2, $3)]
ORDER BY occurred_at DESC, id DESC LIMIT 50` through asyncpg on one connection (no visibility,
no ORM, no pool, no transaction). Each contact gets all its first pages, then all its next
pages, in an order that rotates from contact to contact, so that the call that finds a cold
contact's rows outside PostgreSQL's buffers is not always the same one.

It prints p50, p99 (nearest rank) and max in ms per call for all the contacts and for the
heaviest alone, p99(call)/p99(floor) for the same page, and a verdict per call against the
goal. The first call of each kind (connections, prepared statements) is shown apart. Then it
checks, untimed, that every call returned what it should: the supervisor's pages the floor's
rows, the operator's the contact's interactions that `core.visibility.sees_interaction` (the
rule's pure form, not the SQL under test) lets them see, newest first, 50 at a time.
With --explain it replays the timeline's statements for the heaviest contact under EXPLAIN
(ANALYZE, BUFFERS), planned for their parameters and as the generic plan PostgreSQL may switch
a prepared statement to after five runs (asyncpg prepares and caches every statement, and the
timeline does not ask for a plan per call), and the floor's.

    python bench/timeline.py [--contacts 100000] [--interactions 1000000] [--heavy 100]
                             [--random 900] [--seed 17] [--no-http] [--explain] [--quick]
                             [--postgres-url URL]

PostgreSQL is reached at --postgres-url, else OMNICRM_BENCH_POSTGRES_URL, else the local
server as postgres; the bench makes its database and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bench.common import (  # noqa: E402
    POSTGRES_ADMIN,
    database,
    nearest_rank,
    postgresql_unreachable,
    statements_of,
)
from bench.procfs import load_average  # noqa: E402
from bench.reports import (  # noqa: E402
    Explained,
    Plan,
    literal,
    plan_of,
    seeded_line,
    server_line,
    shape,
)
from bench.reports_seed import DAYS, Seeded, Sizes, seed  # noqa: E402
from core import passwords  # noqa: E402 - the path is set up just above
from core.audit import CLI, Actor  # noqa: E402
from core.auth import actor_of  # noqa: E402
from core.contacts import contact_timeline  # noqa: E402
from core.db import (  # noqa: E402
    SessionFactory,
    asyncpg_dsn,
    make_engine,
    make_session_factory,
)
from core.migrate import upgrade  # noqa: E402
from core.models import Contact, Interaction, Operator, QueueMember, Role  # noqa: E402
from core.operators import create_operator  # noqa: E402
from core.pagination import DEFAULT_LIMIT  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.visibility import Placement, sees_interaction  # noqa: E402
from web.app import create_app  # noqa: E402

GOAL_MS: Final = 20.0
# The console's page (web/static/console/conversation.js TIMELINE_PAGE), the API's default.
PAGE: Final = DEFAULT_LIMIT
# The operator: a seeded one of Billing (operator n works queue (n - 1) % 8 + 1, and is the
# assignee of some of its conversations), made a member of Returns too.
OPERATOR_ID: Final = 3
OPERATOR_QUEUES: Final = (3, 8)
SUPERVISOR_EMAIL: Final = "bench-supervisor@example.com"
PASSWORD: Final = "timeline-bench-password"  # noqa: S105 - the scratch database's throwaway

FLOOR_COLUMNS: Final = ", ".join(column.name for column in Interaction.__table__.columns)
FLOOR_FIRST: Final = (
    f"SELECT {FLOOR_COLUMNS} FROM interaction WHERE contact_id = $1"  # noqa: S608 - our names
    " ORDER BY occurred_at DESC, id DESC LIMIT $2"
)
FLOOR_NEXT: Final = (
    f"SELECT {FLOOR_COLUMNS} FROM interaction WHERE contact_id = $1"  # noqa: S608 - our names
    " AND (occurred_at, id) < ($2, $3) ORDER BY occurred_at DESC, id DESC LIMIT $4"
)

# The ways a page is asked for, in the order of the table.
FLOOR: Final = "floor (asyncpg)"
SUPERVISOR: Final = "supervisor"
OPERATOR: Final = "operator"
HTTP_SUPERVISOR: Final = "HTTP supervisor"
HTTP_OPERATOR: Final = "HTTP operator"
PATHS: Final = (FLOOR, SUPERVISOR, OPERATOR, HTTP_SUPERVISOR, HTTP_OPERATOR)
PAGES: Final = {1: "first page", 2: "next page"}


# --- the calls -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One timed call: which page of whose timeline, how long, and what it returned."""

    path: str
    page: int
    contact_id: int
    heavy: bool
    seconds: float
    ids: tuple[int, ...]
    # The first of its path and page (connections, prepared statements): not in the figures.
    first: bool = False

    @property
    def operator(self) -> bool:
        return self.path in (OPERATOR, HTTP_OPERATOR)


@dataclass(frozen=True)
class Page:
    ids: tuple[int, ...]
    # What the next page is asked with: the API's cursor, or the floor's last (occurred_at, id).
    after: Any = None


@dataclass(frozen=True)
class History:
    """A contact's interactions, newest first: all of them, and those the operator may see."""

    ids: tuple[int, ...]
    visible: tuple[int, ...]

    def expected(self, call: Call) -> tuple[int, ...]:
        rows = self.visible if call.operator else self.ids
        return rows[(call.page - 1) * PAGE : call.page * PAGE]


class Callers:
    """The five ways to ask for a page, each timed call recorded."""

    def __init__(
        self,
        sessions: SessionFactory,
        actors: dict[str, Actor],
        floor: Any,
        clients: dict[str, TestClient[Any, Any]],
    ) -> None:
        self.sessions = sessions
        self.actors = actors
        self.floor = floor
        self.clients = clients
        self.calls: list[Call] = []
        self.asked: set[tuple[str, int]] = set()

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(
            path for path in PATHS if path == FLOOR or path in self.actors or path in self.clients
        )

    async def ask(self, path: str, contact_id: int, after: Any) -> Page:
        if path == FLOOR:
            return await self.floor_page(contact_id, after)
        if path in self.clients:
            return await self.http_page(self.clients[path], contact_id, after)
        return await self.timeline_page(self.actors[path], contact_id, after)

    async def timed(self, path: str, page: int, contact_id: int, heavy: bool, after: Any) -> Page:
        started = time.perf_counter()
        got = await self.ask(path, contact_id, after)
        seconds = time.perf_counter() - started
        first = (path, page) not in self.asked
        self.asked.add((path, page))
        self.calls.append(Call(path, page, contact_id, heavy, seconds, got.ids, first))
        return got

    async def timeline_page(self, actor: Actor, contact_id: int, cursor: str | None) -> Page:
        """As the route calls it: a session of its own, the default page, the caller's actor."""
        async with self.sessions() as session:
            rows, next_cursor = await contact_timeline(
                session, actor, contact_id, cursor=cursor, limit=PAGE
            )
        return Page(tuple(row.id for row in rows), next_cursor)

    async def http_page(
        self, client: TestClient[Any, Any], contact_id: int, cursor: str | None
    ) -> Page:
        """What the console does: the page's request, its answer read and parsed."""
        query = {"limit": str(PAGE)} | ({"cursor": cursor} if cursor else {})
        async with client.get(f"/api/v1/contacts/{contact_id}/timeline", params=query) as answer:
            if answer.status != 200:
                raise RuntimeError(
                    f"timeline of {contact_id}: {answer.status} {await answer.text()}"
                )
            body = await answer.json()
        return Page(tuple(item["id"] for item in body["items"]), body["next_cursor"])

    async def floor_page(self, contact_id: int, after: tuple[datetime, int] | None) -> Page:
        if after is None:
            rows = await self.floor.fetch(FLOOR_FIRST, contact_id, PAGE)
        else:
            rows = await self.floor.fetch(FLOOR_NEXT, contact_id, *after, PAGE)
        last = (rows[-1]["occurred_at"], rows[-1]["id"]) if len(rows) == PAGE else None
        return Page(tuple(row["id"] for row in rows), last)

    async def contact(self, number: int, contact_id: int, heavy: bool) -> None:
        """All first pages of the contact, then the next pages there are; the order rotates
        with `number`, so that finding a cold contact's rows is charged to each in turn."""
        shift = number % len(self.paths)
        order = self.paths[shift:] + self.paths[:shift]
        firsts = {path: await self.timed(path, 1, contact_id, heavy, None) for path in order}
        for path in order:
            # The floor's next page is the supervisor's: asked when the timeline has one.
            more = firsts[SUPERVISOR if path == FLOOR else path].after is not None
            if more:
                await self.timed(path, 2, contact_id, heavy, firsts[path].after)


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """The calls of one path and page."""

    path: str
    page: int
    latencies: list[float] = field(default_factory=list)
    rows: int = 0
    first: float = math.nan

    @property
    def name(self) -> str:
        return f"{self.path}, {PAGES[self.page]}"

    def percentile(self, percent: int) -> float:
        """Nearest rank, in ms (of 100 calls, p99 is the second slowest)."""
        return nearest_rank(self.latencies, percent) * 1000

    @property
    def max(self) -> float:
        return max(self.latencies, default=math.nan) * 1000


@dataclass(frozen=True)
class Explain:
    label: str
    explained: Explained


@dataclass
class Result:
    sizes: Sizes
    seeded: Seeded
    heavy: list[tuple[int, int]]  # the heaviest contacts and their interactions
    sampled: list[int]  # the contacts drawn at random
    paths: tuple[str, ...]
    calls: list[Call]
    histories: dict[int, History]
    explained: list[Explain] = field(default_factory=list)

    def figures(self, heavy_only: bool = False) -> list[Figures]:
        found: dict[tuple[str, int], Figures] = {
            (path, page): Figures(path, page)
            for page in PAGES
            for path in PATHS
            if path in self.paths
        }
        for call in self.calls:
            figures = found[(call.path, call.page)]
            if call.first:
                figures.first = call.seconds * 1000
            elif call.heavy or not heavy_only:
                figures.latencies.append(call.seconds)
                figures.rows += len(call.ids)
        return list(found.values())

    def mismatches(self) -> list[Call]:
        """The calls that did not return what the contact's history says they should."""
        return [
            call
            for call in self.calls
            if call.ids != self.histories[call.contact_id].expected(call)
        ]

    def verdicts(self) -> dict[str, bool]:
        """Per timeline call (path and page) that was made: p99 within the goal, over every
        contact."""
        return {
            figures.name: figures.percentile(99) <= GOAL_MS
            for figures in self.figures()
            if figures.path != FLOOR and figures.latencies
        }


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def table(figures: Sequence[Figures]) -> list[str]:
    width = max(len(f.name) for f in figures) + 2
    floors = {f.page: f.percentile(99) for f in figures if f.path == FLOOR}
    lines = [
        f"{'call':<{width}}{'calls':>7}{'rows':>9}{'first':>9}{'p50':>9}{'p99':>9}{'max':>9}"
        f"  |{'p99/floor':>10}"
    ]
    for f in figures:
        ratio = f.percentile(99) / floors[f.page] if f.latencies else math.nan
        lines.append(
            f"{f.name:<{width}}{len(f.latencies):>7,}{f.rows:>9,}{ms(f.first):>9}"
            f"{ms(f.percentile(50)):>9}{ms(f.percentile(99)):>9}{ms(f.max):>9}"
            f"  |{'-' if math.isnan(ratio) else f'{ratio:.1f}x':>10}"
        )
    return lines


def verdict_lines(result: Result) -> list[str]:
    heaviest = {f.name: f for f in result.figures(heavy_only=True)}
    lines = []
    for f in result.figures():
        if f.path == FLOOR:
            continue
        if not f.latencies:
            lines.append(f"verdict {f.name}: no calls (no contact here had a next page for them)")
            continue
        p99 = f.percentile(99)
        state = "within" if p99 <= GOAL_MS else "OVER"
        heavy = heaviest[f.name].percentile(99)
        heavy_state = "within it" if heavy <= GOAL_MS else "OVER it"
        lines.append(
            f"verdict {f.name}: {state} the {GOAL_MS:.0f} ms goal (p99 {ms(p99)} ms over"
            f" {len(f.latencies):,} call{'' if len(f.latencies) == 1 else 's'};"
            f" the {len(result.heavy)} heaviest contacts alone"
            f" {heavy_state}, p99 {ms(heavy)} ms)"
        )
    return lines


def check_lines(result: Result) -> list[str]:
    wrong = result.mismatches()
    if not wrong:
        return [
            f"checked {len(result.calls):,} calls: the supervisor's pages are the floor's rows,"
            " the operator's the interactions core.visibility.sees_interaction lets them see,"
            " newest first"
        ]
    lines = [f"WRONG ROWS in {len(wrong):,} of {len(result.calls):,} calls:"]
    for call in wrong[:10]:
        expected = result.histories[call.contact_id].expected(call)
        lines.append(
            f"  {call.path}, {PAGES[call.page]} of contact {call.contact_id}: {len(call.ids)} rows"
            f" {call.ids[:5]}..., expected {len(expected)} {expected[:5]}..."
        )
    return lines


def buffers(plan: Plan) -> str:
    """The top node's buffers: all the statement touched."""
    return next((line.strip() for line in plan.lines if "Buffers:" in line), "Buffers: -")


def explain_lines(result: Result) -> list[str]:
    contact, count = result.heavy[0]
    history = result.histories.get(contact)
    seen = f", {len(history.visible):,} of them visible to the operator" if history else ""
    lines = [
        f"EXPLAIN (ANALYZE, BUFFERS) for the heaviest contact, {contact}:"
        f" {count:,} interactions{seen}"
    ]
    for item in result.explained:
        e = item.explained
        lines.append(
            f"-- {item.label}: planned for its parameters {e.custom.milliseconds:.3f} ms,"
            f" {buffers(e.custom)}; generic plan {e.generic.milliseconds:.3f} ms,"
            f" {buffers(e.generic)}"
        )
        lines.append(" ".join(e.statement.split()))
        lines.append("-- planned for its parameters:")
        lines += e.custom.lines
        if shape(e.generic) == shape(e.custom):
            lines.append("-- generic plan: the same plan")
        else:
            lines.append(
                "-- generic plan (for any parameters: what a prepared statement may run from its"
                " 6th run on):"
            )
            lines += e.generic.lines
    return lines


# --- the run ---------------------------------------------------------------------------------


async def explain_statement(engine: AsyncEngine, statement: str, parameters: Any) -> Explained:
    """`statement` under EXPLAIN (ANALYZE, BUFFERS): planned for `parameters`, and generic."""
    async with engine.connect() as connection:
        custom = await plan_of(connection, f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(f"PREPARE bench_generic AS {statement}")
        arguments = f"({', '.join(literal(value) for value in parameters)})" if parameters else ""
        generic = await plan_of(
            connection, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic{arguments}"
        )
        await connection.exec_driver_sql("DEALLOCATE bench_generic")
    return Explained(statement, custom, generic)


async def explain(engine: AsyncEngine, callers: Callers, contact_id: int) -> list[Explain]:
    """The timeline's statements for `contact_id` (the contact's own look-up left out), each
    page asked as in the timings, and the floor's."""
    found = []
    for path in (SUPERVISOR, OPERATOR):
        cursor = None
        for page in PAGES:
            with statements_of(engine) as sent:
                got = await callers.timeline_page(callers.actors[path], contact_id, cursor)
            for statement, parameters in sent:
                if "FROM interaction" in statement:
                    explained = await explain_statement(engine, statement, parameters)
                    found.append(Explain(f"{path}, {PAGES[page]}", explained))
            cursor = got.after
            if cursor is None:
                break
    floor = await explain_statement(engine, FLOOR_FIRST, (contact_id, PAGE))
    found.append(Explain(f"{FLOOR}, first page", floor))
    after = (await callers.floor_page(contact_id, None)).after
    if after is not None:
        # Its row comparison is an index condition, where the timeline's OR is a filter.
        floor = await explain_statement(engine, FLOOR_NEXT, (contact_id, *after, PAGE))
        found.append(Explain(f"{FLOOR}, next page", floor))
    return found


async def histories(floor: Any, contacts: set[int], operator: Actor) -> dict[int, History]:
    """Each contact's interactions as the rule's pure form sees them, apart from the SQL
    under test."""
    queues = {
        row["queue_id"]
        for row in await floor.fetch(
            "SELECT queue_id FROM queue_member WHERE operator_id = $1", operator.operator_id
        )
    }
    found = {}
    for contact_id in contacts:
        rows = await floor.fetch(
            "SELECT i.id, i.direction, i.kind, i.conversation_id, c.queue_id, c.assignee_id"
            " FROM interaction AS i LEFT JOIN conversation AS c ON c.id = i.conversation_id"
            " WHERE i.contact_id = $1 ORDER BY i.occurred_at DESC, i.id DESC",
            contact_id,
        )
        visible = tuple(
            row["id"]
            for row in rows
            if sees_interaction(
                operator,
                None
                if row["conversation_id"] is None
                else Placement(row["queue_id"], row["assignee_id"]),
                row["direction"],
                row["kind"],
                queues,
            )
        )
        found[contact_id] = History(tuple(row["id"] for row in rows), visible)
    return found


@dataclass(frozen=True)
class Team:
    """Who asks: the actors as the route makes them, and how they sign in to the console."""

    actors: dict[str, Actor]
    emails: dict[str, str]


async def people(sessions: SessionFactory) -> Team:
    """The supervisor (new) and the operator (seeded, given a second queue), able to sign in."""
    async with sessions() as session, session.begin():
        supervisor = await create_operator(
            session,
            CLI,
            email=SUPERVISOR_EMAIL,
            name="Bench Supervisor",
            role=Role.SUPERVISOR,
            password=PASSWORD,
        )
        operator = await session.get(Operator, OPERATOR_ID)
        assert operator is not None, "the seed makes 40 operators"
        operator.password_hash = await passwords.hash_password(PASSWORD)
        member = select(QueueMember.queue_id).where(QueueMember.operator_id == OPERATOR_ID)
        missing = sorted(set(OPERATOR_QUEUES) - set(await session.scalars(member)))
        if missing:
            await session.execute(
                insert(QueueMember), [{"queue_id": q, "operator_id": OPERATOR_ID} for q in missing]
            )
    return Team(
        actors={SUPERVISOR: actor_of(supervisor), OPERATOR: actor_of(operator)},
        emails={HTTP_SUPERVISOR: supervisor.email, HTTP_OPERATOR: operator.email},
    )


@asynccontextmanager
async def consoles(url: str, team: Team) -> AsyncIterator[dict[str, TestClient[Any, Any]]]:
    """omnicrm's app in this process (no background work: nothing else runs while the
    timeline is timed) and a client per person, signed in with a session cookie."""
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=url,
            secret_key=secrets.token_hex(16),
            log_json=False,
            attachments_dir=folder,
        )
        server = TestServer(create_app(settings, background_workers=False))
        await server.start_server()
        clients: dict[str, TestClient[Any, Any]] = {}
        try:
            for path, email in team.emails.items():
                clients[path] = client = TestClient(server)
                await client.start_server()
                login = {"email": email, "password": PASSWORD}
                async with client.post("/api/v1/auth/login", json=login) as answer:
                    if answer.status != 200:
                        raise RuntimeError(
                            f"sign-in of {email}: {answer.status} {await answer.text()}"
                        )
            yield clients
        finally:
            for client in clients.values():
                await client.close()
            await server.close()


async def heaviest_contacts(sessions: SessionFactory, count: int) -> list[tuple[int, int]]:
    counted = func.count(Interaction.id)
    async with sessions() as session:
        rows = await session.execute(
            select(Interaction.contact_id, counted)
            .group_by(Interaction.contact_id)
            .order_by(counted.desc(), Interaction.contact_id)
            .limit(count)
        )
        return [(contact_id, number) for contact_id, number in rows]


def seeded_with(seeded: Seeded) -> str:
    """The reports bench's line, without its leads (none here)."""
    return seeded_line(seeded).replace(", 0 leads, 0 stage changes", "")


async def run(options: Options) -> Result | None:
    problem = await postgresql_unreachable(options.admin)
    if problem is not None:
        print(f"postgresql: skipped, {problem}")
        return None
    started = time.perf_counter()
    async with database("postgresql", options.admin) as url:
        await upgrade(url)
        engine = make_engine(url)
        floor = None
        try:
            seeded = await seed(engine, options.sizes)
            print(seeded_with(seeded))
            print(await server_line(engine))
            sessions = make_session_factory(engine)
            team = await people(sessions)
            heavy = await heaviest_contacts(sessions, options.heavy)
            async with sessions() as session:
                everyone = list(await session.scalars(select(Contact.id).order_by(Contact.id)))
            draw = random.Random(options.seed)
            heavy_ids = [contact_id for contact_id, _ in heavy]
            others = sorted(set(everyone) - set(heavy_ids))
            sampled = draw.sample(others, min(options.random, len(others)))
            visits = [(contact_id, True) for contact_id in heavy_ids]
            visits += [(contact_id, False) for contact_id in sampled]
            draw.shuffle(visits)
            print(
                f"the {len(heavy)} heaviest contacts have {heavy[-1][1]:,} to {heavy[0][1]:,}"
                f" interactions; {len(sampled):,} more drawn at random (seed {options.seed});"
                f" pages of {PAGE}; the operator works queues"
                f" {', '.join(map(str, OPERATOR_QUEUES))}\n"
            )
            floor = await asyncpg.connect(asyncpg_dsn(url))
            async with AsyncExitStack() as stack:
                clients = (
                    await stack.enter_async_context(consoles(url, team)) if options.http else {}
                )
                callers = Callers(sessions, team.actors, floor, clients)
                for number, (contact_id, is_heavy) in enumerate(visits):
                    await callers.contact(number, contact_id, is_heavy)
                result = Result(
                    options.sizes,
                    seeded,
                    heavy,
                    sampled,
                    callers.paths,
                    callers.calls,
                    await histories(floor, {c for c, _ in visits}, team.actors[OPERATOR]),
                )
                print(
                    f"every contact ({len(visits):,}: the {len(heavy)} heaviest and"
                    f" {len(sampled):,} at random), in ms:"
                )
                print("\n".join(table(result.figures())))
                print(f"\nthe {len(heavy)} heaviest contacts alone, in ms:")
                print("\n".join(table(result.figures(heavy_only=True))))
                print(
                    "(first: the first call of its kind, not in the figures; rows: returned in all)"
                )
                print()
                print("\n".join(verdict_lines(result)))
                print("\n".join(check_lines(result)))
                if options.explaining and heavy:
                    result.explained = await explain(engine, callers, heavy[0][0])
                    print()
                    print("\n".join(explain_lines(result)))
            print(f"\ntook {time.perf_counter() - started:.0f} s")
            return result
        finally:
            if floor is not None:
                await floor.close()
            await engine.dispose()


@dataclass(frozen=True)
class Options:
    sizes: Sizes
    heavy: int
    random: int
    seed: int
    http: bool
    explaining: bool
    admin: str


def main(argv: Sequence[str] | None = None) -> Result | None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--contacts", type=int, help="default 100000 (--quick: 2000)")
    parser.add_argument(
        "--interactions",
        type=int,
        help="default 1000000 (--quick: 20000); a quarter as many conversations",
    )
    parser.add_argument(
        "--heavy",
        type=int,
        help="the contacts with the most interactions; default 100 (--quick: 10)",
    )
    parser.add_argument(
        "--random", type=int, help="contacts drawn at random; default 900 (--quick: 40)"
    )
    parser.add_argument("--seed", type=int, default=17, help="of the random draws (default 17)")
    parser.add_argument(
        "--no-http", dest="http", action="store_false", help="leave out the HTTP route's calls"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN (ANALYZE, BUFFERS) of the timeline's statements, heaviest contact",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_ADMIN,
        help="a server login that may create databases (default: OMNICRM_BENCH_POSTGRES_URL or"
        " the local server as postgres)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    heavy = args.heavy if args.heavy is not None else 10 if quick else 100
    drawn = args.random if args.random is not None else 40 if quick else 900
    sizes = Sizes(
        contacts=args.contacts or (2000 if quick else 100_000),
        interactions=args.interactions or (20_000 if quick else 1_000_000),
        leads=0,
        runs=heavy + drawn,
    )
    if min(sizes.contacts, sizes.interactions, heavy) < 1 or drawn < 0:
        parser.error("contacts, interactions and heavy must be at least 1, random at least 0")
    print(
        f"timeline bench: {sizes.contacts:,} contacts, {sizes.conversations:,} conversations,"
        f" {sizes.interactions:,} interactions over {DAYS} days; goal p99 <= {GOAL_MS:.0f} ms"
        f" per page; load average at the start {load_average()}"
    )
    options = Options(
        sizes=sizes,
        heavy=heavy,
        random=drawn,
        seed=args.seed,
        http=args.http,
        explaining=args.explain,
        admin=asyncpg_dsn(args.postgres_url),
    )
    return asyncio.run(run(options))


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result is not None and result.mismatches() else 0)

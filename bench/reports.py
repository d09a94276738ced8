"""Reports at scale: every report of `core.reports.REPORTS` over a year of history, on PostgreSQL.

It migrates a scratch PostgreSQL database and seeds it with a year of history
(bench/reports_seed.py; by default 100,000 contacts, 250,000 conversations, 1,000,000
interactions, ~20,000 voice calls, 50,000 leads and their stage changes), then VACUUM ANALYZE.

For each report and a few realistic filter sets (Berlin time: the last 30 days by day, the
last 12 months by week, the last quarter; by queue and by operator; one queue; the default
pipeline) it times `--runs` runs of `Report.run`, each in a session of its own as an API request
has one, after one untimed-for-the-percentiles first run. Interleaved with them, the floor: one
`SELECT count(*)` per table of the rows the report reads (interactions in the period,
conversations opened in it, calls queued in it, leads opened or closed in it, ...), timed the
same way. It prints p50, p99 (nearest rank) and max in ms, the rows returned, the floor and
p99(report)/p99(floor), and a verdict per filter set and per report against the goal: p99 at
most 500 ms.

The reports' statements run as in omnicrm: asyncpg prepares them and caches them per
connection, and every report asks PostgreSQL for a plan per call, made for its parameters
(`Report.run`: `SET LOCAL plan_cache_mode = force_custom_plan`). Left to itself, PostgreSQL may
switch a prepared statement to a generic plan (made for any parameters) after five runs, and
this bench showed why not: made without the period's bounds, the volume report's generic plan
scanned every interaction of the year, 30 to 60 times slower. With --explain the bench then
replays every statement of the slowest filter set (and of each one over the goal) under EXPLAIN
(ANALYZE, BUFFERS), with the plan for its parameters (what the report runs) and, for
comparison, the generic plan, and prints the plans of the slow ones.

    python bench/reports.py [--contacts 100000] [--interactions 1000000] [--leads 50000]
                            [--runs 30] [--explain] [--quick] [--postgres-url URL]

PostgreSQL is reached at --postgres-url, else OMNICRM_BENCH_POSTGRES_URL, else the local
server as postgres; the bench makes its database and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Select, func, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine  # noqa: E402

from bench.common import (  # noqa: E402
    POSTGRES_ADMIN,
    database,
    nearest_rank,
    postgresql_unreachable,
    statements_of,
)
from bench.reports_seed import DAYS, END, END_DAY, ZONE, Seeded, Sizes, seed  # noqa: E402
from core.db import (  # noqa: E402
    SessionFactory,
    asyncpg_dsn,
    make_engine,
    make_session_factory,
)
from core.migrate import upgrade  # noqa: E402 - the path is set up just above
from core.models import (  # noqa: E402
    Conversation,
    Direction,
    Interaction,
    InteractionKind,
    Lead,
    LeadStageChange,
    VoiceCall,
)
from core.reports import REPORTS  # noqa: E402
from core.reports.base import Granularity, ReportFilters, in_period  # noqa: E402
from core.reports.contact_center import conversation_filters  # noqa: E402
from core.reports.sales import lead_filters  # noqa: E402

GOAL_MS: Final = 500.0
# Reports are asked on the morning after the history ends.
NOW: Final = END + timedelta(hours=9)


# --- the filter sets and their floors --------------------------------------------------------

LAST_DAY: Final = END_DAY - timedelta(days=1)
MONTH: Final = ReportFilters(start=END_DAY - timedelta(days=30), end=LAST_DAY, time_zone=ZONE)
YEAR_BY_WEEK: Final = ReportFilters(
    start=END_DAY - timedelta(days=DAYS),
    end=LAST_DAY,
    time_zone=ZONE,
    granularity=Granularity.WEEK,
)
YEAR: Final = replace(YEAR_BY_WEEK, granularity=Granularity.DAY)
QUARTER: Final = ReportFilters(start=date(2025, 10, 1), end=LAST_DAY, time_zone=ZONE)
ONE_QUEUE: Final = 1  # Support EN (reports_seed.QUEUES): email and webchat, business hours


@dataclass(frozen=True)
class Case:
    report: str
    label: str
    filters: ReportFilters

    @property
    def name(self) -> str:
        return f"{self.report}: {self.label}"


def cases() -> list[Case]:
    """What supervisors ask for; every report has at least one (a new report gets the last 30
    days until it is given its own here)."""
    chosen = [
        Case("volume", "30 days by day", MONTH),
        Case("volume", "12 months by week", YEAR_BY_WEEK),
        Case("volume", "30 days by day, one queue", replace(MONTH, queue_ids=(ONE_QUEUE,))),
        Case("performance", "30 days by queue", MONTH),
        Case("performance", "30 days by operator", replace(MONTH, group_by="operator")),
        Case("performance", "30 days, one queue", replace(MONTH, queue_ids=(ONE_QUEUE,))),
        Case("performance", "quarter by queue", QUARTER),
        Case("lead_sources", "30 days", MONTH),
        Case("lead_sources", "quarter", QUARTER),
        Case("funnel", "default pipeline, quarter", QUARTER),
        Case("funnel", "default pipeline, 12 months", YEAR),
        Case("sales_by_owner", "quarter", QUARTER),
    ]
    covered = {case.report for case in chosen}
    chosen += [Case(name, "30 days", MONTH) for name in REPORTS if name not in covered]
    return [case for case in chosen if case.report in REPORTS]


def interactions_in(filters: ReportFilters) -> Select[Any]:
    """The customers' messages, forms and calls of the period, as volume counts them."""
    query = (
        select(func.count())
        .select_from(Interaction)
        .where(
            in_period(Interaction.occurred_at, filters),
            Interaction.direction == Direction.IN,
            Interaction.kind != InteractionKind.EVENT,
        )
    )
    if filters.channels:
        query = query.where(Interaction.channel.in_(filters.channels))
    if filters.queue_ids or filters.operator_ids:
        query = query.join(Conversation, Conversation.id == Interaction.conversation_id).where(
            *conversation_filters(filters)
        )
    return query


def conversations_opened(filters: ReportFilters) -> Select[Any]:
    return (
        select(func.count())
        .select_from(Conversation)
        .where(in_period(Conversation.created_at, filters), *conversation_filters(filters))
    )


def calls_queued(filters: ReportFilters) -> Select[Any]:
    query = (
        select(func.count())
        .select_from(VoiceCall)
        .where(VoiceCall.queued_at.is_not(None), in_period(VoiceCall.queued_at, filters))
    )
    if filters.queue_ids:
        query = query.where(VoiceCall.queue_id.in_(filters.queue_ids))
    return query


def leads_opened(filters: ReportFilters) -> Select[Any]:
    return (
        select(func.count())
        .select_from(Lead)
        .where(in_period(Lead.created_at, filters), *lead_filters(filters))
    )


def leads_closed(filters: ReportFilters) -> Select[Any]:
    return (
        select(func.count())
        .select_from(Lead)
        .where(
            Lead.closed_at.is_not(None),
            in_period(Lead.closed_at, filters),
            *lead_filters(filters),
        )
    )


def stage_changes_of_leads_opened(filters: ReportFilters, pipeline_id: int) -> Select[Any]:
    return (
        select(func.count())
        .select_from(LeadStageChange)
        .join(Lead, Lead.id == LeadStageChange.lead_id)
        .where(
            LeadStageChange.pipeline_id == pipeline_id,
            Lead.pipeline_id == pipeline_id,
            in_period(Lead.created_at, filters),
            *lead_filters(filters),
        )
    )


def floor_of(case: Case, pipeline_id: int) -> tuple[Select[Any], str]:
    """One statement counting the rows the report reads (a count per table), and what."""
    filters = case.filters
    parts: list[tuple[Select[Any], str]]
    if case.report == "volume":
        parts = [
            (interactions_in(filters), "interactions in"),
            (conversations_opened(filters), "conversations opened"),
        ]
    elif case.report == "performance":
        parts = [(conversations_opened(filters), "conversations opened")]
        if filters.group_by == "queue":
            parts.append((calls_queued(filters), "calls queued"))
    elif case.report == "funnel":
        pipeline = filters.pipeline_id or pipeline_id
        parts = [(stage_changes_of_leads_opened(filters, pipeline), "stage changes of leads")]
    elif case.report == "sales_by_owner":
        parts = [(leads_closed(filters), "leads closed")]
    elif REPORTS[case.report].area == "sales":
        parts = [(leads_opened(filters), "leads opened")]
    else:
        parts = [(conversations_opened(filters), "conversations opened")]
    statement = select(*(query.scalar_subquery() for query, _ in parts))
    return statement, " + ".join(what for _, what in parts)


# --- timing ----------------------------------------------------------------------------------


@dataclass
class Timed:
    """Wall times in seconds of the timed runs; the first run's apart; rows of the last run."""

    latencies: list[float] = field(default_factory=list)
    first: float = math.nan
    rows: int = 0

    def percentile(self, percent: int) -> float:
        """Nearest rank, in ms (of 30 runs, p99 is the slowest)."""
        return nearest_rank(self.latencies, percent) * 1000

    @property
    def max(self) -> float:
        return max(self.latencies, default=math.nan) * 1000


@dataclass
class Plan:
    milliseconds: float
    lines: list[str]


@dataclass
class Explained:
    """A statement of a report under EXPLAIN (ANALYZE, BUFFERS): the custom plan (planned
    for its parameters: what the report runs, as it asks for a plan per call, and EXPLAIN's
    own) and, for comparison, the generic plan (for any parameters: what PostgreSQL may
    switch a cached prepared statement to from its sixth run on, left to itself)."""

    statement: str
    custom: Plan
    generic: Plan

    @property
    def worst(self) -> float:
        return max(self.custom.milliseconds, self.generic.milliseconds)


@dataclass
class CaseFigures:
    case: Case
    floor_counts: str
    report: Timed = field(default_factory=Timed)
    floor: Timed = field(default_factory=Timed)
    explained: list[Explained] = field(default_factory=list)

    @property
    def within_goal(self) -> bool:
        return self.report.percentile(99) <= GOAL_MS

    @property
    def ratio(self) -> float:
        return self.report.percentile(99) / self.floor.percentile(99)


async def timed(call: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = await call()
    return time.perf_counter() - started, rows


async def measure(sessions: SessionFactory, case: Case, pipeline_id: int, runs: int) -> CaseFigures:
    """`runs` runs of the report, each followed by one of its floor, after a first of each."""
    report = REPORTS[case.report]
    floor, counts = floor_of(case, pipeline_id)
    figures = CaseFigures(case, counts)

    async def run_report() -> int:
        async with sessions() as session:
            result = await report.run(session, case.filters, NOW)
        return len(result.rows)

    async def run_floor() -> int:
        async with sessions() as session:
            found = (await session.execute(floor)).one()
        return sum(int(count or 0) for count in found)

    figures.report.first, figures.report.rows = await timed(run_report)
    figures.floor.first, figures.floor.rows = await timed(run_floor)
    for _ in range(runs):
        seconds, figures.report.rows = await timed(run_report)
        figures.report.latencies.append(seconds)
        seconds, figures.floor.rows = await timed(run_floor)
        figures.floor.latencies.append(seconds)
    return figures


# How much of a statement's text --explain shows (a year by week is 159 parameters long).
STATEMENT_SHOWN: Final = 1500
EXECUTION_TIME: Final = re.compile(r"Execution Time: ([0-9.]+) ms")
# What a plan is made of, without its figures: two plans of one shape read the same rows.
FIGURES: Final = re.compile(r"\((cost|actual)=[^)]*\)|\(actual [^)]*\)|  +")
# A parameter: a literal (custom plans) or $n (generic ones), with its cast.
PARAMETER: Final = re.compile(r"('[^']*'|\$[0-9]+)(::[a-z ]+[a-z])?")
NOT_SHAPE: Final = (
    "Buffers:",
    "Planning",
    "Execution Time",
    "JIT:",
    "Functions:",
    "Options:",
    "Timing:",
    "Worker ",
    "Sort Method",
    "Batches:",
    "Heap Blocks",
    "Rows Removed",
)


async def plan_of(connection: AsyncConnection, explain: str, parameters: Any = ()) -> Plan:
    rows = await connection.exec_driver_sql(explain, parameters)
    lines = [str(row[0]) for row in rows]
    found = EXECUTION_TIME.search("\n".join(lines))
    return Plan(float(found[1]) if found else math.nan, lines)


def shape(plan: Plan) -> list[str]:
    return [
        PARAMETER.sub("?", FIGURES.sub(" ", line)).strip()
        for line in plan.lines
        if not line.strip().startswith(NOT_SHAPE)
    ]


def literal(value: Any) -> str:
    """A parameter as an SQL literal for EXECUTE (typed by the statement's own casts)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


async def explain(engine: AsyncEngine, sessions: SessionFactory, case: Case) -> list[Explained]:
    """Every statement one run of the report sends, run again under EXPLAIN (ANALYZE,
    BUFFERS) with the same parameters: planned for them, and as a generic plan."""
    with statements_of(engine) as sent:
        async with sessions() as session:
            await REPORTS[case.report].run(session, case.filters, NOW)
    explained = []
    async with engine.connect() as connection:
        for statement, parameters in sent:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            custom = await plan_of(
                connection, f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters
            )
            await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await connection.exec_driver_sql(f"PREPARE bench_generic AS {statement}")
            arguments = (
                f"({', '.join(literal(value) for value in parameters)})" if parameters else ""
            )
            generic = await plan_of(
                connection, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic{arguments}"
            )
            await connection.exec_driver_sql("DEALLOCATE bench_generic")
            await connection.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
            explained.append(Explained(statement, custom, generic))
    return explained


# --- reporting -------------------------------------------------------------------------------


@dataclass
class Result:
    sizes: Sizes
    seeded: Seeded
    figures: list[CaseFigures]

    def verdicts(self) -> dict[str, bool]:
        """Per report: whether every filter set of it is within the goal."""
        found: dict[str, bool] = {}
        for figures in self.figures:
            found[figures.case.report] = found.get(figures.case.report, True) and (
                figures.within_goal
            )
        return found


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def table(figures: Sequence[CaseFigures]) -> list[str]:
    width = max(len(f.case.name) for f in figures) + 2
    lines = [
        f"{'report: filter set':<{width}}{'rows':>6}{'first':>9}{'p50':>9}{'p99':>9}{'max':>9}"
        f"  |{'floor p50':>10}{'p99':>9}{'rows read':>11}  |{'p99/floor':>10}",
    ]
    for f in figures:
        lines.append(
            f"{f.case.name:<{width}}{f.report.rows:>6,}{ms(f.report.first * 1000):>9}"
            f"{ms(f.report.percentile(50)):>9}{ms(f.report.percentile(99)):>9}"
            f"{ms(f.report.max):>9}  |{ms(f.floor.percentile(50)):>10}"
            f"{ms(f.floor.percentile(99)):>9}{f.floor.rows:>11,}  |{f.ratio:>9.1f}x"
        )
    lines.append("(ms; first: the first run, not in the percentiles)")
    lines.append("floors (one SELECT count(*) per table):")
    lines += [f"  {f.case.name}: {f.floor_counts}" for f in figures]
    return lines


def verdict_lines(result: Result) -> list[str]:
    lines = []
    for f in result.figures:
        p99 = f.report.percentile(99)
        state = "within" if f.within_goal else "OVER"
        lines.append(
            f"verdict {f.case.name}: {state} the {GOAL_MS:.0f} ms goal"
            f" (p99 {ms(p99)} ms, {p99 / GOAL_MS:.0%} of it)"
        )
    for name, ok in result.verdicts().items():
        mine = [f for f in result.figures if f.case.report == name]
        worst = max(mine, key=lambda f: f.report.percentile(99))
        over = sum(not f.within_goal for f in mine)
        state = "within the goal" if ok else f"OVER the goal in {over} of {len(mine)} filter sets"
        lines.append(
            f"report {name}: {state} (worst p99 {ms(worst.report.percentile(99))} ms,"
            f" {worst.case.label})"
        )
    return lines


def explain_lines(figures: CaseFigures) -> list[str]:
    explained = figures.explained
    custom = [e.custom.milliseconds for e in explained]
    generic = [e.generic.milliseconds for e in explained]
    lines = [
        f"EXPLAIN (ANALYZE, BUFFERS) of {figures.case.name}: {len(explained)} statements;"
        f" custom plans {ms(sum(custom))} ms in all ({', '.join(map(ms, custom))}),"
        f" generic plans {ms(sum(generic))} ms ({', '.join(map(ms, generic))})",
    ]
    slowest = max((e.worst for e in explained), default=0.0)
    total = max(sum(custom), sum(generic))
    for number, e in enumerate(explained, start=1):
        if e.worst < total * 0.25 and e.worst != slowest:
            continue
        lines.append(
            f"-- statement {number} of {len(explained)}: custom plan {ms(e.custom.milliseconds)}"
            f" ms, generic plan {ms(e.generic.milliseconds)} ms"
        )
        statement = " ".join(e.statement.split())
        if len(statement) > STATEMENT_SHOWN:
            statement = f"{statement[:STATEMENT_SHOWN]}... ({len(statement):,} characters)"
        lines.append(statement)
        lines.append("-- custom plan (for these parameters; what the report runs):")
        lines += e.custom.lines
        if shape(e.generic) == shape(e.custom):
            lines.append("-- generic plan: the same plan")
        else:
            lines.append(
                "-- generic plan (for any parameters; what a cached prepared statement may run"
                " from its 6th run on without plan_cache_mode = force_custom_plan):"
            )
            lines += e.generic.lines
    return lines


async def server_line(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        shown = {
            name: await connection.scalar(text(f"SHOW {name}"))
            for name in (
                "server_version",
                "shared_buffers",
                "work_mem",
                "jit",
                "max_parallel_workers_per_gather",
                "plan_cache_mode",
            )
        }
        size = await connection.scalar(
            text("SELECT pg_size_pretty(pg_database_size(current_database()))")
        )
    return (
        f"PostgreSQL {shown['server_version']}: shared_buffers {shown['shared_buffers']},"
        f" work_mem {shown['work_mem']}, jit {shown['jit']}, parallel workers per gather"
        f" {shown['max_parallel_workers_per_gather']}, plan_cache_mode {shown['plan_cache_mode']};"
        f" the database is {size}"
    )


def seeded_line(seeded: Seeded) -> str:
    counts = seeded.counts
    steps: dict[str, float] = {}
    for name, seconds in seeded.steps:
        steps[name] = steps.get(name, 0.0) + seconds
    taken = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
    return (
        f"seeded {counts['contact']:,} contacts, {counts['conversation']:,} conversations,"
        f" {counts['interaction']:,} interactions, {counts['voice_call']:,} voice calls,"
        f" {counts['lead']:,} leads, {counts['lead_stage_change']:,} stage changes"
        f" in {seeded.seconds:.1f} s ({taken})"
    )


# --- the run ---------------------------------------------------------------------------------


async def run(sizes: Sizes, admin: str, explaining: bool) -> Result | None:
    problem = await postgresql_unreachable(admin)
    if problem is not None:
        print(f"postgresql: skipped, {problem}")
        return None
    async with database("postgresql", admin) as url:
        await upgrade(url)
        engine = make_engine(url)
        try:
            seeded = await seed(engine, sizes)
            print(seeded_line(seeded))
            print(await server_line(engine))
            sessions = make_session_factory(engine)
            print(
                f"{sizes.runs} runs per filter set, each in a session of its own, after a first;"
                f" reports asked at {NOW:%Y-%m-%d %H:%M} UTC, periods in {ZONE}\n"
            )
            result = Result(sizes, seeded, [])
            for case in cases():
                result.figures.append(await measure(sessions, case, seeded.pipeline_id, sizes.runs))
            print("\n".join(table(result.figures)))
            print()
            print("\n".join(verdict_lines(result)))
            if explaining and result.figures:
                slowest = max(result.figures, key=lambda f: f.report.percentile(99))
                for figures in result.figures:
                    if figures is slowest or not figures.within_goal:
                        figures.explained = await explain(engine, sessions, figures.case)
                        print()
                        print("\n".join(explain_lines(figures)))
            return result
        finally:
            await engine.dispose()


def main(argv: Sequence[str] | None = None) -> Result | None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--contacts", type=int, help="default 100000 (--quick: 2000)")
    parser.add_argument(
        "--interactions",
        type=int,
        help="default 1000000 (--quick: 20000); a quarter as many conversations",
    )
    parser.add_argument("--leads", type=int, help="default 50000 (--quick: 1000)")
    parser.add_argument(
        "--runs", type=int, help="timed runs per filter set; default 30 (--quick: 3)"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN (ANALYZE, BUFFERS) of the slowest filter set and of any over the goal",
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
    sizes = Sizes(
        contacts=args.contacts or (2000 if quick else 100_000),
        interactions=args.interactions or (20_000 if quick else 1_000_000),
        leads=args.leads or (1000 if quick else 50_000),
        runs=args.runs or (3 if quick else 30),
    )
    if min(sizes.contacts, sizes.interactions, sizes.leads, sizes.runs) < 1:
        parser.error("contacts, interactions, leads and runs must be at least 1")
    admin = asyncpg_dsn(args.postgres_url)
    print(
        f"reports bench: {sizes.contacts:,} contacts, {sizes.conversations:,} conversations,"
        f" {sizes.interactions:,} interactions, {sizes.leads:,} leads over {DAYS} days;"
        f" goal p99 <= {GOAL_MS:.0f} ms per report"
    )
    return asyncio.run(run(sizes, admin, args.explain))


if __name__ == "__main__":
    main()

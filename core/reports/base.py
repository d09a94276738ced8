"""What every report shares: its filters, its result (columns, rows, a chart), the periods it
buckets time into, and the SQL pieces the figures are made of.

A report is a subclass of `Report` with a `name`, a title and a `do_run` that reads the stored
history with aggregate SQL (no row-by-row Python over interactions, leads or conversations:
Python sees one row per group); the final `run` checks the filters first. Reports are listed in
`core.reports.REPORTS`: adding one is one class and one line there.

Invariants:

- Periods are whole days in the filters' time zone: `start` and `end` are local dates, both
  included; a bucket (day or ISO week, Monday first) starts at local midnight, so a day of a
  clock change is 23 or 25 hours long and no instant falls in two buckets.
- Durations are seconds in business hours when routing has measured them
  (`Conversation.first_response_seconds`, `resolution_seconds`; routing/metrics.py), else
  the elapsed time.
- Percentiles are nearest-rank: the p-th percentile of n values is the ceil(p·n)-th smallest
  (the median of 1, 2, 3, 4 is 2), the same on PostgreSQL and SQLite.
- Shares are fractions of 0 to 1 (null when there is nothing to divide by), rounded to 4
  places.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final, final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    column,
    func,
    literal,
    select,
    text,
    values,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Float

from core.clock import local_midnight
from core.errors import InvalidInput
from core.models import UTCDateTime
from core.pipelines import cents

# The longest period a report covers (a year of days; weeks for longer).
MAX_DAYS: Final = 366
MAX_BUCKETS: Final = 400
# The key of the row for everyone.
ALL: Final = "all"


class Granularity(enum.StrEnum):
    DAY = "day"
    WEEK = "week"


class Kind(enum.StrEnum):
    """How a column's values read: what a table formats and a CSV writes."""

    TEXT = "text"
    COUNT = "count"
    SECONDS = "seconds"
    SHARE = "share"
    MONEY = "money"
    DAYS = "days"
    DATE = "date"


@dataclass(frozen=True, kw_only=True)
class ReportFilters:
    """What to count: the period (local dates, both included, in `time_zone`), and optionally
    only some queues, channels, operators (a conversation's assignee, a lead's owner), lead
    sources and one pipeline. Empty tuples mean all."""

    start: date
    end: date
    time_zone: str = "UTC"
    granularity: Granularity = Granularity.DAY
    queue_ids: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    operator_ids: tuple[int, ...] = ()
    sources: tuple[str, ...] = ()
    pipeline_id: int | None = None
    # Contact-center reports: one row per operator or per queue.
    group_by: str = "queue"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def since(self) -> datetime:
        """The first instant of the period (UTC)."""
        return local_midnight(self.start, self.zone)

    @property
    def until(self) -> datetime:
        """The first instant after the period (UTC)."""
        return local_midnight(self.end + timedelta(days=1), self.zone)

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "time_zone": self.time_zone,
            "granularity": self.granularity.value,
            "queue_ids": list(self.queue_ids),
            "channels": list(self.channels),
            "operator_ids": list(self.operator_ids),
            "sources": list(self.sources),
            "pipeline_id": self.pipeline_id,
            "group_by": self.group_by,
        }


@dataclass(frozen=True)
class Bucket:
    """One period of a time series: local `label` (the day, or the week's Monday)."""

    index: int
    label: date
    since: datetime
    until: datetime


def buckets(filters: ReportFilters) -> list[Bucket]:
    """The days or weeks of the period in order; a week is cut at the period's ends."""
    zone = filters.zone
    found: list[Bucket] = []
    day = filters.start
    while day <= filters.end:
        if filters.granularity is Granularity.WEEK:
            following = day + timedelta(days=7 - day.weekday())
        else:
            following = day + timedelta(days=1)
        following = min(following, filters.end + timedelta(days=1))
        label = (
            day - timedelta(days=day.weekday()) if filters.granularity is Granularity.WEEK else day
        )
        found.append(
            Bucket(len(found), label, local_midnight(day, zone), local_midnight(following, zone))
        )
        day = following
    return found


def bucket_table(periods: Sequence[Bucket]) -> Any:
    """The periods as a VALUES table (`index`, `since`, `until`) to join rows into by time."""
    return (
        values(
            column("index", Integer),
            column("since", UTCDateTime()),
            column("until", UTCDateTime()),
            name="bucket",
        )
        .data([(bucket.index, bucket.since, bucket.until) for bucket in periods])
        .cte("bucket")
    )


@dataclass(frozen=True, kw_only=True)
class ColumnSpec:
    key: str
    label: str
    kind: Kind = Kind.COUNT


@dataclass(frozen=True, kw_only=True)
class Chart:
    """How the browser draws the result: `kind` bar (stacked per `series` when given),
    line or funnel; `x` is the column along the axis, `y` the columns drawn."""

    kind: str
    x: str
    y: tuple[str, ...]
    series: str | None = None


@dataclass(kw_only=True)
class ReportResult:
    name: str
    title: str
    filters: ReportFilters
    columns: list[ColumnSpec]
    rows: list[dict[str, Any]]
    chart: Chart
    generated_at: datetime
    notes: list[str] = field(default_factory=list)


class Report(ABC):
    """A report: `run` checks the filters, `do_run` makes the figures (see the module)."""

    name: ClassVar[str]
    title: ClassVar[str]
    # What the report is about: "contact_center" or "sales".
    area: ClassVar[str]
    # The filters it reads beyond the period (the others are refused, so a filter that would
    # be silently ignored is a 400), and its own options ("granularity", "group_by").
    uses: ClassVar[frozenset[str]]

    @final
    async def run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        check_filters(filters, self.uses)
        if session.get_bind().dialect.name == "postgresql":
            # A plan for these bounds: a generic plan (the driver prepares statements, and
            # PostgreSQL may stop planning per call after five) scans every interaction of
            # every period, 30 to 60 times slower (bench/reports.py).
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        return await self.do_run(session, filters, now)

    @abstractmethod
    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult: ...


FILTER_FIELDS: Final = {
    "queue_ids": "queue_id",
    "channels": "channel",
    "operator_ids": "operator_id",
    "sources": "source",
    "pipeline_id": "pipeline_id",
}


def check_filters(filters: ReportFilters, uses: frozenset[str]) -> None:
    if filters.end < filters.start:
        raise InvalidInput("the period ends before it starts", field="end")
    days = (filters.end - filters.start).days + 1
    if days > MAX_DAYS * 3 or (filters.granularity is Granularity.DAY and days > MAX_DAYS):
        raise InvalidInput(
            f"a period is at most {MAX_DAYS} days by day (ask by week for longer)", field="end"
        )
    for name, query_name in FILTER_FIELDS.items():
        value = getattr(filters, name)
        if value not in ((), None) and name not in uses:
            raise InvalidInput(f"this report has no {query_name} filter", field=query_name)


# --- SQL pieces ---------------------------------------------------------------------------------


class elapsed_seconds(FunctionElement[float]):
    """Seconds from the first timestamp to the second, on either backend."""

    type = Float()
    inherit_cache = True


@compiles(elapsed_seconds, "postgresql")
def _elapsed_postgresql(element: elapsed_seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


@compiles(elapsed_seconds, "sqlite")
def _elapsed_sqlite(element: elapsed_seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(element.clauses)
    return (
        f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)}))"
        " * 86400.0)"
    )


def nearest_rank(rank: Any, count: Any, percent: int) -> ColumnElement[bool]:
    """`rank` (1-based, ascending) is the nearest-rank `percent`-th percentile of `count`
    values: ceil(percent·count/100), in integer arithmetic on both backends."""
    wanted: ColumnElement[bool] = rank == (count * percent + 99) // literal(100, Integer)
    return wanted


async def percentiles(
    session: AsyncSession,
    group: Any,
    measures: Mapping[str, Any],
    where: Sequence[Any],
    percents: Sequence[int] = (50, 90),
) -> dict[Any, dict[str, dict[int, float]]]:
    """Nearest-rank percentiles of each measure's non-null values over the rows `where`
    holds, per value of `group` and for everyone (key `ALL`): {group: {measure: {p: value}}}.

    PostgreSQL: `percentile_disc` (the same definition), every measure in one aggregate
    statement per grouping. SQLite: a window over the rows per measure (`nearest_rank`)."""
    found: dict[Any, dict[str, dict[int, float]]] = {}
    for key, grouping in ((None, group), (ALL, literal(ALL))):
        if session.get_bind().dialect.name == "postgresql":
            picked = [
                func.percentile_disc(percent / 100).within_group(expression)
                for expression in measures.values()
                for percent in percents
            ]
            rows = await session.execute(select(grouping, *picked).where(*where).group_by(grouping))
            for row in rows:
                values = iter(row[1:])
                found[row[0] if key is None else key] = {
                    name: _present({percent: next(values) for percent in percents})
                    for name in measures
                }
            continue
        for name, expression in measures.items():
            for row_key, value in (
                await _ranked(session, select(grouping, expression).where(*where), percents)
            ).items():
                found.setdefault(row_key if key is None else key, {})[name] = value
    return found


def _present(values: Mapping[int, Any]) -> dict[int, float]:
    return {percent: float(value) for percent, value in values.items() if value is not None}


async def _ranked(
    session: AsyncSession, groups: Select[Any, Any], percents: Sequence[int]
) -> dict[Any, dict[int, float]]:
    """`groups` selects (group, value) rows: each group's percentiles by a window."""
    inner = groups.subquery()
    group, value = inner.c[0], inner.c[1]
    ranked = (
        select(
            group.label("grp"),
            value.label("value"),
            func.row_number().over(partition_by=group, order_by=value).label("rank"),
            func.count().over(partition_by=group).label("total"),
        )
        .where(value.is_not(None))
        .subquery()
    )
    picked = [
        func.max(
            case((nearest_rank(ranked.c.rank, ranked.c.total, percent), ranked.c.value))
        ).label(f"p{percent}")
        for percent in percents
    ]
    rows = await session.execute(select(ranked.c.grp, *picked).group_by(ranked.c.grp))
    return {row[0]: _present(dict(zip(percents, row[1:], strict=True))) for row in rows}


def how_many(condition: Any) -> Any:
    """The number of rows for which `condition` holds (a SUM of CASE, on both backends)."""
    return func.sum(case((condition, 1), else_=0))


def share(part: int | None, whole: int | None) -> float | None:
    if not whole:
        return None
    return round((part or 0) / whole, 4)


def money(value: Any) -> str:
    """Two decimals, half a cent up (as people round money)."""
    return str(cents(Decimal(value)))


def in_period(at: Any, filters: ReportFilters) -> ColumnElement[bool]:
    return and_(at >= filters.since, at < filters.until)

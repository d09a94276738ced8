"""Sales reports: where leads come from, how far they get, and who wins what.

- `lead_sources`: leads opened in the period per source and UTM source/campaign, how many are
  open, won and lost, and the win rate.
- `funnel`: a pipeline's leads opened in the period, how many got at least as far as each
  stage (the furthest stage a lead's history reached; won is the end), the conversion from the
  stage before and from the start, and how many were lost after getting that far.
- `sales_by_owner`: leads closed (won or lost) in the period per owner and in all: won, lost,
  win rate, the median and p90 cycle (days from opening to winning), the value won per currency.

Operator filters are the lead's owner; queue and channel filters are those of the conversation
the lead came from (leads without one do not match them).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from core.i18n import N_
from core.models import (
    Conversation,
    Lead,
    LeadStageChange,
    Operator,
    Pipeline,
    PipelineStage,
    StageOutcome,
)
from core.pipelines import default_pipeline_query
from core.reports.base import (
    ALL,
    Chart,
    ColumnSpec,
    Kind,
    Report,
    ReportFilters,
    ReportResult,
    elapsed_seconds,
    how_many,
    in_period,
    money,
    percentiles,
    share,
)

DAY = 86400


def lead_filters(filters: ReportFilters) -> list[Any]:
    conditions: list[Any] = []
    if filters.pipeline_id is not None:
        conditions.append(Lead.pipeline_id == filters.pipeline_id)
    if filters.sources:
        conditions.append(Lead.source.in_(filters.sources))
    if filters.operator_ids:
        conditions.append(Lead.owner_id.in_(filters.operator_ids))
    if filters.queue_ids or filters.channels:
        held = select(Conversation.id).where(Conversation.id == Lead.conversation_id)
        if filters.queue_ids:
            held = held.where(Conversation.queue_id.in_(filters.queue_ids))
        if filters.channels:
            held = held.where(Conversation.channel.in_(filters.channels))
        conditions.append(held.exists())
    return conditions


USES: frozenset[str] = frozenset(
    {"queue_ids", "channels", "operator_ids", "sources", "pipeline_id"}
)


def _outcome_of(outcome: StageOutcome) -> Any:
    """Whether a lead's current stage has `outcome` (a correlated look at its stage)."""
    return (
        select(PipelineStage.id)
        .where(
            PipelineStage.pipeline_id == Lead.pipeline_id,
            PipelineStage.key == Lead.stage,
            PipelineStage.outcome == outcome,
        )
        .exists()
    )


class LeadSources(Report):
    name = "lead_sources"
    title = N_("Leads by source and campaign")
    area = "sales"
    uses: ClassVar[frozenset[str]] = USES

    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        utm_source = func.coalesce(Lead.marketing["utm_source"].as_string(), "")
        campaign = func.coalesce(Lead.marketing["utm_campaign"].as_string(), "")
        won = _outcome_of(StageOutcome.WON)
        lost = _outcome_of(StageOutcome.LOST)
        rows = await session.execute(
            select(
                Lead.source,
                utm_source,
                campaign,
                func.count(),
                how_many(won),
                how_many(lost),
            )
            .where(in_period(Lead.created_at, filters), *lead_filters(filters))
            .group_by(Lead.source, utm_source, campaign)
            .order_by(func.count().desc(), Lead.source, utm_source, campaign)
        )
        out = []
        for source, utm, utm_campaign, total, won_n, lost_n in rows:
            won_n, lost_n = int(won_n or 0), int(lost_n or 0)
            out.append(
                {
                    "source": source,
                    "utm_source": utm,
                    "utm_campaign": utm_campaign,
                    "leads": total,
                    "open": total - won_n - lost_n,
                    "won": won_n,
                    "lost": lost_n,
                    "win_rate": share(won_n, won_n + lost_n),
                }
            )
        return ReportResult(
            name=self.name,
            title=self.title,
            filters=filters,
            columns=[
                ColumnSpec(key="source", label=N_("Source"), kind=Kind.TEXT),
                ColumnSpec(key="utm_source", label=N_("UTM source"), kind=Kind.TEXT),
                ColumnSpec(key="utm_campaign", label=N_("Campaign"), kind=Kind.TEXT),
                ColumnSpec(key="leads", label=N_("Leads")),
                ColumnSpec(key="open", label=N_("Open")),
                ColumnSpec(key="won", label=N_("Won")),
                ColumnSpec(key="lost", label=N_("Lost")),
                ColumnSpec(key="win_rate", label=N_("Win rate"), kind=Kind.SHARE),
            ],
            rows=out,
            chart=Chart(kind="bar", x="source", y=("leads", "won")),
            generated_at=now,
            notes=[N_("Leads opened in the period; win rate: won of those closed.")],
        )


class Funnel(Report):
    name = "funnel"
    title = N_("Sales funnel")
    area = "sales"
    uses: ClassVar[frozenset[str]] = USES

    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        pipeline_id = filters.pipeline_id
        if pipeline_id is None:
            pipeline_id = await session.scalar(default_pipeline_query())
        pipeline = None if pipeline_id is None else await session.get(Pipeline, pipeline_id)
        if pipeline is None:
            raise InvalidInput(f"no pipeline with id {pipeline_id}", field="pipeline_id")
        steps = [stage for stage in pipeline.stages if stage.outcome != StageOutcome.LOST]
        place = {stage.key: index for index, stage in enumerate(steps)}
        # The furthest step each lead's history reached, and whether it is lost now.
        reached = (
            select(
                LeadStageChange.lead_id.label("lead_id"),
                func.max(
                    case(
                        *((LeadStageChange.to_stage == key, index) for key, index in place.items()),
                        else_=-1,
                    )
                ).label("furthest"),
            )
            .join(Lead, Lead.id == LeadStageChange.lead_id)
            .where(
                LeadStageChange.pipeline_id == pipeline.id,
                Lead.pipeline_id == pipeline.id,
                in_period(Lead.created_at, filters),
                *lead_filters(filters),
            )
            .group_by(LeadStageChange.lead_id)
            .subquery()
        )
        lost_now = _outcome_of(StageOutcome.LOST)
        lost_leads = select(Lead.id).where(lost_now).scalar_subquery()
        rows = await session.execute(
            select(
                reached.c.furthest,
                func.count(),
                how_many(reached.c.lead_id.in_(lost_leads)),
            ).group_by(reached.c.furthest)
        )
        at: dict[int, tuple[int, int]] = {
            int(furthest): (int(count), int(lost or 0)) for furthest, count, lost in rows
        }
        out = []
        first = previous = None
        for index, stage in enumerate(steps):
            count = sum(n for furthest, (n, _) in at.items() if furthest >= index)
            lost_after = at.get(index, (0, 0))[1]
            first = count if first is None else first
            out.append(
                {
                    "stage": stage.key,
                    "name": stage.name,
                    "reached": count,
                    "from_previous": share(count, previous) if previous is not None else None,
                    "from_start": share(count, first),
                    "lost_after": lost_after,
                }
            )
            previous = count
        return ReportResult(
            name=self.name,
            title=self.title,
            filters=filters,
            columns=[
                ColumnSpec(key="name", label=N_("Stage"), kind=Kind.TEXT),
                ColumnSpec(key="reached", label=N_("Reached")),
                ColumnSpec(key="from_previous", label=N_("From the stage before"), kind=Kind.SHARE),
                ColumnSpec(key="from_start", label=N_("From the start"), kind=Kind.SHARE),
                ColumnSpec(key="lost_after", label=N_("Lost after it")),
            ],
            rows=out,
            chart=Chart(kind="funnel", x="name", y=("reached",)),
            generated_at=now,
            notes=[
                N_("Leads opened in the period in this pipeline."),
                N_("A stage counts every lead that got at least that far."),
            ],
        )


class SalesByOwner(Report):
    name = "sales_by_owner"
    title = N_("Sales by owner")
    area = "sales"
    uses: ClassVar[frozenset[str]] = USES

    async def do_run(
        self, session: AsyncSession, filters: ReportFilters, now: datetime
    ) -> ReportResult:
        won = _outcome_of(StageOutcome.WON)
        lost = _outcome_of(StageOutcome.LOST)
        where = [
            Lead.closed_at.is_not(None),
            in_period(Lead.closed_at, filters),
            *lead_filters(filters),
        ]
        counted: dict[Any, tuple[int, int]] = {}
        for grouping in (literal(ALL), Lead.owner_id):
            for key, won_n, lost_n in await session.execute(
                select(grouping, how_many(won), how_many(lost)).where(*where).group_by(grouping)
            ):
                counted[key] = (int(won_n or 0), int(lost_n or 0))
        values: dict[Any, dict[str, Decimal]] = defaultdict(dict)
        for grouping in (literal(ALL), Lead.owner_id):
            query: Select[Any, Any, Any] = (
                select(grouping, Lead.currency, func.sum(Lead.value))
                .where(*where, won, Lead.value.is_not(None))
                .group_by(grouping, Lead.currency)
            )
            for key, currency, total in await session.execute(query):
                values[key][currency or ""] = Decimal(total)
        cycle = elapsed_seconds(Lead.created_at, Lead.closed_at)
        cycles = await percentiles(session, Lead.owner_id, {"cycle": cycle}, [*where, won])
        owners = [key for key in counted if key not in (ALL, None)]
        names: dict[Any, str] = {}
        if owners:
            names = {
                row[0]: row[1]
                for row in await session.execute(
                    select(Operator.id, Operator.name).where(Operator.id.in_(owners))
                )
            }
        currencies = sorted({currency for per in values.values() for currency in per})
        ordered = sorted(
            (key for key in counted if key != ALL),
            key=lambda key: (names.get(key) or "~", str(key)),
        )
        out = []
        for key in [*ordered, ALL] if counted else []:
            won_n, lost_n = counted[key]
            row: dict[str, Any] = {
                "key": key,
                "name": N_("All") if key == ALL else names.get(key, N_("No owner")),
                "won": won_n,
                "lost": lost_n,
                "win_rate": share(won_n, won_n + lost_n),
                "cycle_median_days": _days(cycles.get(key, {}).get("cycle", {}).get(50)),
                "cycle_p90_days": _days(cycles.get(key, {}).get("cycle", {}).get(90)),
            }
            for currency in currencies:
                amount = values.get(key, {}).get(currency)
                row[_value_key(currency)] = money(amount) if amount is not None else "0.00"
            out.append(row)
        return ReportResult(
            name=self.name,
            title=self.title,
            filters=filters,
            columns=[
                ColumnSpec(key="name", label=N_("Owner"), kind=Kind.TEXT),
                ColumnSpec(key="won", label=N_("Won")),
                ColumnSpec(key="lost", label=N_("Lost")),
                ColumnSpec(key="win_rate", label=N_("Win rate"), kind=Kind.SHARE),
                ColumnSpec(key="cycle_median_days", label=N_("Cycle, median"), kind=Kind.DAYS),
                ColumnSpec(key="cycle_p90_days", label=N_("Cycle, p90"), kind=Kind.DAYS),
                *(
                    ColumnSpec(key=_value_key(currency), label=currency or "-", kind=Kind.MONEY)
                    for currency in currencies
                ),
            ],
            rows=out,
            chart=Chart(
                kind="bar",
                x="name",
                y=tuple(_value_key(currency) for currency in currencies) or ("won",),
            ),
            generated_at=now,
            notes=[
                N_("Leads closed in the period; value won per currency."),
                N_("Cycle: days from opening to winning."),
            ],
        )


def _value_key(currency: str) -> str:
    return f"won_value_{currency or 'none'}"


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / DAY, 1)

"""Sales pipelines: their stages, leads moved through them, and the board that shows them.

A pipeline ("New customers", "Repeat sales") has ordered stages; each stage has a `key` leads
store, a name, a win probability (percent) that weighs the column's value, an outcome (open,
won or lost) and optionally a rule: entering it gives the lead a follow-up task due
`follow_up_days` later (e.g. "call back within 2 days after the proposal").

Invariants:

- A lead's `stage` is a key of its pipeline's stages. New leads start in the pipeline's first
  open stage (ingest: the default pipeline, the first not archived by position).
- `closed_at` is set exactly while the lead is in a won or lost stage; entering a lost stage
  needs a reason (`lost_reason`), kept while it stays lost. Closing a lead cancels its open
  tasks (a closed lead has no next step).
- Every move writes one `LeadStageChange` (reports read them), is audited (`lead.stage`, with
  the reason) and announced (`lead.updated`, to who may see the lead).
- There is always a pipeline that takes new leads: the last one cannot be archived.
- A pipeline keeps at least one open, one won and one lost stage; stage keys are unique in it
  and never change (they are what leads and their history store); a stage that holds leads
  cannot be removed nor change its outcome (409: move them first).
- Who sees a lead, and so a card, is `core.visibility.lead_filter`, on every read here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVarTuple

from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core import audit, tasks
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.models import (
    Contact,
    Lead,
    LeadStageChange,
    Operator,
    Pipeline,
    PipelineStage,
    StageOutcome,
    Task,
    TaskOutcome,
    utcnow,
)
from core.visibility import lead_filter

Row = TypeVarTuple("Row")

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_STAGES = 20
MAX_REASON = 500
# Cards per column on the board (the newest in the stage first); the totals count all.
CARDS_PER_COLUMN = 100
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    """Money to the cent, half a cent up (as people round money)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, kw_only=True)
class StageSpec:
    key: str
    name: str
    probability: int = 0
    outcome: StageOutcome = StageOutcome.OPEN
    follow_up_days: int | None = None
    follow_up_note: str = ""


@dataclass(frozen=True, kw_only=True)
class PipelineSpec:
    name: str
    stages: Sequence[StageSpec]
    position: int = 0
    archived: bool = False


# What every installation starts with (migration 0017 makes it; so does `seed_default` for an
# emptied database).
DEFAULT_PIPELINE = PipelineSpec(
    name="Sales",
    stages=(
        StageSpec(key="new", name="New", probability=10),
        StageSpec(key="qualified", name="Qualified", probability=30),
        StageSpec(
            key="proposal",
            name="Proposal",
            probability=60,
            follow_up_days=2,
            follow_up_note="Call back about the proposal",
        ),
        StageSpec(key="won", name="Won", probability=100, outcome=StageOutcome.WON),
        StageSpec(key="lost", name="Lost", probability=0, outcome=StageOutcome.LOST),
    ),
)

# --- pipelines ----------------------------------------------------------------------------------


async def seed_default(connection: AsyncConnection) -> None:
    """Make `DEFAULT_PIPELINE` in a database that has no pipeline (tests empty theirs)."""
    if await connection.scalar(select(Pipeline.id).limit(1)) is not None:
        return
    now = utcnow()
    pipeline_id = await connection.scalar(
        insert(Pipeline)
        .values(
            name=DEFAULT_PIPELINE.name, position=0, archived=False, created_at=now, updated_at=now
        )
        .returning(Pipeline.id)
    )
    await connection.execute(
        insert(PipelineStage),
        [
            {
                "pipeline_id": pipeline_id,
                "key": stage.key,
                "name": stage.name,
                "position": position,
                "probability": stage.probability,
                "outcome": stage.outcome,
                "follow_up_days": stage.follow_up_days,
                "follow_up_note": stage.follow_up_note,
            }
            for position, stage in enumerate(DEFAULT_PIPELINE.stages)
        ],
    )


async def list_pipelines(
    session: AsyncSession, *, include_archived: bool = False
) -> list[Pipeline]:
    """Pipelines with their stages, in board order."""
    query = select(Pipeline).order_by(Pipeline.position, Pipeline.id)
    if not include_archived:
        query = query.where(Pipeline.archived.is_(False))
    return list(await session.scalars(query))


async def get_pipeline(session: AsyncSession, pipeline_id: int, *, field: str = "id") -> Pipeline:
    pipeline = await session.get(Pipeline, pipeline_id)
    if pipeline is None:
        raise NotFound(f"no pipeline with id {pipeline_id}", field=field)
    return pipeline


def default_pipeline_query() -> Select[int]:
    """The pipeline new leads go to: the first not archived, by position."""
    return (
        select(Pipeline.id)
        .where(Pipeline.archived.is_(False))
        .order_by(Pipeline.position, Pipeline.id)
        .limit(1)
    )


def first_stage_query(pipeline_id: Any) -> Select[str]:
    """The key of `pipeline_id`'s first open stage (an id or a SQL expression)."""
    return (
        select(PipelineStage.key)
        .where(
            PipelineStage.pipeline_id == pipeline_id,
            PipelineStage.outcome == StageOutcome.OPEN,
        )
        .order_by(PipelineStage.position, PipelineStage.id)
        .limit(1)
    )


def stage_of(pipeline: Pipeline, key: str, *, field: str = "stage") -> PipelineStage:
    for stage in pipeline.stages:
        if stage.key == key:
            return stage
    keys = ", ".join(stage.key for stage in pipeline.stages)
    raise InvalidInput(
        f"pipeline {pipeline.name!r} has no stage {key!r} (its stages: {keys})", field=field
    )


def first_open_stage(pipeline: Pipeline) -> PipelineStage:
    return next(stage for stage in pipeline.stages if stage.outcome == StageOutcome.OPEN)


def _check_spec(spec: PipelineSpec) -> None:
    name = spec.name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a pipeline needs a name of 1 to 100 characters", field="name")
    if not 1 <= len(spec.stages) <= MAX_STAGES:
        raise InvalidInput(f"a pipeline has 1 to {MAX_STAGES} stages", field="stages")
    seen: set[str] = set()
    for index, stage in enumerate(spec.stages):
        where = f"stages.{index}"
        if not KEY.match(stage.key):
            raise InvalidInput(
                "a stage key is lowercase letters, digits, _ and -, at most 40",
                field=f"{where}.key",
            )
        if stage.key in seen:
            raise InvalidInput(f"stage key {stage.key!r} is used twice", field=f"{where}.key")
        seen.add(stage.key)
        if not stage.name.strip() or len(stage.name) > 100:
            raise InvalidInput("a stage needs a name of 1 to 100 characters", field=f"{where}.name")
        if not 0 <= stage.probability <= 100:
            raise InvalidInput("a probability is 0 to 100", field=f"{where}.probability")
        if stage.follow_up_days is not None and not 0 <= stage.follow_up_days <= 365:
            raise InvalidInput("follow-up days are 0 to 365", field=f"{where}.follow_up_days")
        if len(stage.follow_up_note) > 500:
            raise InvalidInput(
                "a follow-up note is at most 500 characters", field=f"{where}.follow_up_note"
            )
    outcomes = {stage.outcome for stage in spec.stages}
    missing = [outcome.value for outcome in StageOutcome if outcome not in outcomes]
    if missing:
        raise InvalidInput(
            f"a pipeline needs an open, a won and a lost stage (missing: {', '.join(missing)})",
            field="stages",
        )


async def _check_name_free(session: AsyncSession, name: str, pipeline_id: int | None) -> None:
    query = select(Pipeline.id).where(func.lower(Pipeline.name) == name.lower())
    if pipeline_id is not None:
        query = query.where(Pipeline.id != pipeline_id)
    if await session.scalar(query) is not None:
        raise Conflict(f"a pipeline named {name!r} exists already", field="name")


def _apply_stage(stage: PipelineStage, spec: StageSpec, position: int) -> None:
    stage.name = spec.name.strip()
    stage.position = position
    stage.probability = spec.probability
    stage.outcome = spec.outcome
    stage.follow_up_days = spec.follow_up_days
    stage.follow_up_note = spec.follow_up_note.strip()


async def create_pipeline(session: AsyncSession, actor: Actor, spec: PipelineSpec) -> Pipeline:
    _check_spec(spec)
    await _check_name_free(session, spec.name.strip(), None)
    pipeline = Pipeline(name=spec.name.strip(), position=spec.position, archived=spec.archived)
    pipeline.stages = []
    for position, stage_spec in enumerate(spec.stages):
        stage = PipelineStage(key=stage_spec.key)
        _apply_stage(stage, stage_spec, position)
        pipeline.stages.append(stage)
    session.add(pipeline)
    await session.flush()
    await audit.record(
        session, actor, "pipeline.create", "pipeline", pipeline.id, {"name": pipeline.name}
    )
    return pipeline


async def update_pipeline(
    session: AsyncSession, actor: Actor, pipeline_id: int, spec: PipelineSpec
) -> Pipeline:
    """Replace a pipeline's name, order, archived flag and stages (matched by key)."""
    _check_spec(spec)
    pipeline = await get_pipeline(session, pipeline_id)
    await _check_name_free(session, spec.name.strip(), pipeline.id)
    if spec.archived and not pipeline.archived:
        others = await session.scalar(
            select(func.count()).where(Pipeline.archived.is_(False), Pipeline.id != pipeline.id)
        )
        if not others:
            raise Conflict(
                "the last pipeline that takes new leads cannot be archived", field="archived"
            )
    wanted = {stage.key: stage.outcome for stage in spec.stages}
    # A stage that goes, or whose outcome changes, must be empty: its leads' closed_at and
    # lost_reason are those of the outcome they entered it with.
    emptied = [
        stage.key
        for stage in pipeline.stages
        if stage.key not in wanted or wanted[stage.key] != stage.outcome
    ]
    if emptied:
        held = await session.execute(
            select(Lead.stage, func.count())
            .where(Lead.pipeline_id == pipeline.id, Lead.stage.in_(emptied))
            .group_by(Lead.stage)
        )
        counts = dict(held.all())
        if counts:
            listed = ", ".join(f"{key} ({count})" for key, count in sorted(counts.items()))
            raise Conflict(
                f"stages to remove or to give another outcome still hold leads: {listed};"
                " move them to another stage first",
                field="stages",
            )
    current = {stage.key: stage for stage in pipeline.stages}
    stages = []
    for position, stage_spec in enumerate(spec.stages):
        stage = current.get(stage_spec.key) or PipelineStage(key=stage_spec.key)
        _apply_stage(stage, stage_spec, position)
        stages.append(stage)
    pipeline.stages = stages
    pipeline.name = spec.name.strip()
    pipeline.position = spec.position
    pipeline.archived = spec.archived
    pipeline.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor,
        "pipeline.update",
        "pipeline",
        pipeline.id,
        {"name": pipeline.name, "stages": [stage.key for stage in stages]},
    )
    return pipeline


# --- moving leads -------------------------------------------------------------------------------


async def enter_stage(
    session: AsyncSession,
    actor: Actor,
    lead: Lead,
    pipeline: Pipeline,
    key: str,
    *,
    reason: str | None,
    now: datetime,
) -> Task | None:
    """Put `lead` into stage `key` of `pipeline` (its own or another), record the move, and
    apply the stage's follow-up rule. The caller audits and announces the lead's change.
    Returns the task the rule made, if any."""
    stage = stage_of(pipeline, key)
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidInput(f"a reason is at most {MAX_REASON} characters", field="reason")
    if stage.outcome == StageOutcome.LOST and reason is None:
        raise InvalidInput("say why the lead was lost", field="reason")
    previous = lead.stage if lead.id is not None else None
    lead.pipeline_id = pipeline.id
    lead.stage = stage.key
    lead.stage_entered_at = now
    lead.closed_at = None if stage.outcome == StageOutcome.OPEN else now
    lead.lost_reason = reason if stage.outcome == StageOutcome.LOST else None
    session.add(lead)
    await session.flush()
    session.add(
        LeadStageChange(
            lead_id=lead.id,
            pipeline_id=pipeline.id,
            from_stage=previous,
            to_stage=stage.key,
            operator_id=actor.operator_id,
            reason=reason,
            changed_at=now,
        )
    )
    if stage.outcome != StageOutcome.OPEN:
        # A closed lead has no next step: its open tasks are cancelled.
        pending = await session.scalars(
            select(Task.id).where(Task.lead_id == lead.id, Task.done_at.is_(None))
        )
        for task_id in list(pending):
            await tasks.complete_task(session, actor, task_id, TaskOutcome.CANCELLED)
        return None
    if stage.follow_up_days is None:
        return None
    # The lead's owner; a deactivated one's work goes to whoever moved the lead.
    owner = lead.owner_id
    if owner is not None and not await session.scalar(
        select(Operator.active).where(Operator.id == owner)
    ):
        owner = None
    owner = owner or actor.operator_id
    if owner is None:
        return None
    note = stage.follow_up_note or f"Next step on the lead in {stage.name}"
    return await tasks.create_follow_up(
        session,
        actor,
        None,
        now + timedelta(days=stage.follow_up_days),
        note,
        owner,
        lead_id=lead.id,
    )


# --- the board ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BoardFilters:
    owner_id: int | None = None
    # Leads without an owner (owner_id is then ignored).
    unowned: bool = False
    source: str | None = None
    # Created on or after / before (exclusive) these instants.
    created_from: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Card:
    lead: Lead
    contact_name: str
    next_task_id: int | None
    next_task_due_at: datetime | None
    next_task_note: str | None


@dataclass(kw_only=True)
class Column:
    stage: PipelineStage
    count: int = 0
    # Per currency ("" for leads without one): the sum of values and that sum weighted by the
    # stage's probability.
    totals: dict[str, Decimal] = field(default_factory=dict)
    weighted: dict[str, Decimal] = field(default_factory=dict)
    cards: list[Card] = field(default_factory=list)


def _filtered(
    query: Select[*Row], actor: Actor, pipeline_id: int, filters: BoardFilters
) -> Select[*Row]:
    query = query.where(Lead.pipeline_id == pipeline_id, lead_filter(actor))
    if filters.unowned:
        query = query.where(Lead.owner_id.is_(None))
    elif filters.owner_id is not None:
        query = query.where(Lead.owner_id == filters.owner_id)
    if filters.source is not None:
        query = query.where(Lead.source == filters.source)
    if filters.created_from is not None:
        query = query.where(Lead.created_at >= filters.created_from)
    if filters.created_before is not None:
        query = query.where(Lead.created_at < filters.created_before)
    return query


async def board(
    session: AsyncSession, actor: Actor, pipeline: Pipeline, filters: BoardFilters
) -> list[Column]:
    """The pipeline's columns with the leads `actor` may see that match `filters`: counts and
    totals over all of them, cards of the newest in each stage (`CARDS_PER_COLUMN`), each
    with its next step (the earliest open task)."""
    columns = {stage.key: Column(stage=stage) for stage in pipeline.stages}
    totals = await session.execute(
        _filtered(
            select(Lead.stage, Lead.currency, func.count(), func.sum(Lead.value)),
            actor,
            pipeline.id,
            filters,
        ).group_by(Lead.stage, Lead.currency)
    )
    for key, currency, count, total in totals:
        column = columns.get(key)
        if column is None:
            continue
        column.count += count
        if total is not None:
            money = currency or ""
            column.totals[money] = column.totals.get(money, Decimal(0)) + Decimal(total)
    for column in columns.values():
        share = Decimal(column.stage.probability) / 100
        column.weighted = {money: cents(total * share) for money, total in column.totals.items()}
    ranked = _filtered(
        select(
            Lead.id.label("lead_id"),
            func.row_number()
            .over(partition_by=Lead.stage, order_by=(Lead.stage_entered_at.desc(), Lead.id.desc()))
            .label("place"),
        ),
        actor,
        pipeline.id,
        filters,
    ).subquery()
    rows = await session.execute(
        select(Lead, Contact.display_name)
        .join(ranked, ranked.c.lead_id == Lead.id)
        .join(Contact, Contact.id == Lead.contact_id)
        .where(ranked.c.place <= CARDS_PER_COLUMN)
        .order_by(Lead.stage_entered_at.desc(), Lead.id.desc())
    )
    found = list(rows)
    next_tasks = await _next_tasks(session, [lead.id for lead, _ in found])
    for lead, name in found:
        column = columns.get(lead.stage)
        if column is None:
            continue
        task = next_tasks.get(lead.id)
        column.cards.append(
            Card(
                lead=lead,
                contact_name=name or "",
                next_task_id=task.id if task else None,
                next_task_due_at=task.due_at if task else None,
                next_task_note=task.note if task else None,
            )
        )
    return list(columns.values())


async def _next_tasks(session: AsyncSession, lead_ids: list[int]) -> dict[int, Task]:
    if not lead_ids:
        return {}
    tasks = await session.scalars(
        select(Task)
        .where(Task.lead_id.in_(lead_ids), Task.done_at.is_(None))
        .order_by(Task.due_at, Task.id)
    )
    first: dict[int, Task] = {}
    for task in tasks:
        if task.lead_id is not None:
            first.setdefault(task.lead_id, task)
    return first

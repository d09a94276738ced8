"""Pipelines API routes: the funnels and their stages (admins change them), and the board."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core import pipelines
from core.clock import local_midnight
from core.models import StageOutcome, utcnow
from core.pipelines import BoardFilters, PipelineSpec, StageSpec
from web.api import ADMINS, ApiRoutes, Call, NoBody, RecordId, TimeZoneName
from web.schemas import LeadOut, Out

routes = ApiRoutes(tag="pipelines")


class StageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        max_length=40, description="what leads store: lowercase letters, digits, _ and -"
    )
    name: str = Field(max_length=100)
    probability: int = Field(0, ge=0, le=100, description="percent; weighs the column's value")
    outcome: StageOutcome = StageOutcome.OPEN
    follow_up_days: int | None = Field(
        None, ge=0, le=365, description="a lead entering the stage gets a task due this later"
    )
    follow_up_note: str = Field("", max_length=500, description="that task's note")


class PipelineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)
    position: int = Field(0, ge=0, le=1000, description="board order")
    archived: bool = Field(False, description="archived pipelines take no new leads")
    stages: list[StageBody] = Field(
        min_length=1,
        max_length=pipelines.MAX_STAGES,
        description="in board order; an open, a won and a lost one at least",
    )

    def spec(self) -> PipelineSpec:
        return PipelineSpec(
            name=self.name,
            position=self.position,
            archived=self.archived,
            stages=[StageSpec(**stage.model_dump()) for stage in self.stages],
        )


class StageOut(Out):
    key: str
    name: str
    position: int
    probability: int
    outcome: str
    follow_up_days: int | None
    follow_up_note: str


class PipelineOut(Out):
    id: int
    name: str
    position: int
    archived: bool
    stages: list[StageOut]


class PipelinesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_archived: bool = False


class BoardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_id: RecordId | None = Field(None, description="only this operator's leads")
    unowned: bool = Field(False, description="only leads without an owner")
    source: str | None = Field(None, max_length=100)
    created_from: date | None = Field(None, description="created on or after this day")
    created_to: date | None = Field(None, description="created on or before this day")
    time_zone: TimeZoneName = Field(None, description="IANA name the days are in; default: UTC")

    @model_validator(mode="after")
    def _range(self) -> BoardQuery:
        if self.created_from and self.created_to and self.created_to < self.created_from:
            raise ValueError("created_to is before created_from")
        return self


class CardOut(BaseModel):
    lead: LeadOut
    contact_name: str
    next_task_id: int | None
    next_task_due_at: datetime | None
    next_task_note: str | None
    needs_next_step: bool = Field(description="open, and no open task: the board flags it")
    next_task_overdue: bool
    may_change: bool = Field(
        description="whether you may move or edit it (yours, unowned, or you supervise)"
    )


class BoardColumnOut(BaseModel):
    stage: StageOut
    count: int = Field(description="every lead in the stage matching the filters")
    totals: dict[str, Decimal] = Field(description="value per currency ('' for none)")
    weighted: dict[str, Decimal] = Field(description="totals times the stage's probability")
    cards: list[CardOut] = Field(
        description=f"the {pipelines.CARDS_PER_COLUMN} that entered it last, newest first"
    )


class BoardOut(BaseModel):
    pipeline: PipelineOut
    columns: list[BoardColumnOut]


@routes.get(
    "/api/v1/pipelines",
    summary="Sales pipelines with their stages, in board order",
    query=PipelinesQuery,
    response=list[PipelineOut],
)
async def list_pipelines(call: Call[NoBody, PipelinesQuery]) -> list[PipelineOut]:
    async with call.sessions() as session:
        found = await pipelines.list_pipelines(
            session, include_archived=call.query.include_archived
        )
        return [PipelineOut.model_validate(pipeline) for pipeline in found]


@routes.post(
    "/api/v1/pipelines",
    summary="Add a pipeline with its stages",
    roles=ADMINS,
    body=PipelineBody,
    response=PipelineOut,
    status=201,
    errors=(409,),
)
async def create_pipeline(call: Call[PipelineBody, NoBody]) -> PipelineOut:
    async with call.sessions() as session, session.begin():
        pipeline = await pipelines.create_pipeline(session, call.actor, call.body.spec())
        return PipelineOut.model_validate(pipeline)


@routes.put(
    "/api/v1/pipelines/{id}",
    summary=(
        "Replace a pipeline's name, order and stages (matched by key; a stage holding leads"
        " cannot go nor change its outcome: 409)"
    ),
    roles=ADMINS,
    body=PipelineBody,
    response=PipelineOut,
    errors=(409,),
)
async def update_pipeline(call: Call[PipelineBody, NoBody]) -> PipelineOut:
    async with call.sessions() as session, session.begin():
        pipeline = await pipelines.update_pipeline(
            session, call.actor, call.path_int("id"), call.body.spec()
        )
        return PipelineOut.model_validate(pipeline)


@routes.get(
    "/api/v1/pipelines/{id}/board",
    summary=(
        "A pipeline's board: per stage the leads you may see matching the filters, their"
        " count, value and weighted value, and cards with each lead's next step"
    ),
    query=BoardQuery,
    response=BoardOut,
)
async def get_board(call: Call[NoBody, BoardQuery]) -> BoardOut:
    query = call.query
    zone = ZoneInfo(query.time_zone or "UTC")
    actor = call.actor
    filters = BoardFilters(
        owner_id=query.owner_id,
        unowned=query.unowned,
        source=query.source,
        created_from=local_midnight(query.created_from, zone) if query.created_from else None,
        created_before=local_midnight(query.created_to + timedelta(days=1), zone)
        if query.created_to
        else None,
    )
    now = utcnow()
    async with call.sessions() as session:
        pipeline = await pipelines.get_pipeline(session, call.path_int("id"))
        columns = await pipelines.board(session, call.actor, pipeline, filters)
        return BoardOut(
            pipeline=PipelineOut.model_validate(pipeline),
            columns=[
                BoardColumnOut(
                    stage=StageOut.model_validate(column.stage),
                    count=column.count,
                    totals=column.totals,
                    weighted=column.weighted,
                    cards=[
                        CardOut(
                            lead=LeadOut.model_validate(card.lead),
                            contact_name=card.contact_name,
                            next_task_id=card.next_task_id,
                            next_task_due_at=card.next_task_due_at,
                            next_task_note=card.next_task_note,
                            needs_next_step=column.stage.outcome == StageOutcome.OPEN
                            and card.next_task_id is None,
                            next_task_overdue=card.next_task_due_at is not None
                            and card.next_task_due_at < now,
                            may_change=actor.is_supervisor
                            or card.lead.owner_id in (None, actor.operator_id),
                        )
                        for card in column.cards
                    ],
                )
                for column in columns
            ],
        )

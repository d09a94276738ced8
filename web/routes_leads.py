"""Leads API routes: list, read, and move a lead through its stages."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import leads
from core.leads import LeadChanges
from core.models import LeadStage
from web.api import ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import LeadOut, Page, page_of

routes = ApiRoutes(tag="leads")


class LeadQuery(PageQuery):
    stage: LeadStage | None = None
    owner_id: RecordId | None = Field(None, description="the operator who owns the lead")
    source: str | None = Field(None, max_length=100, description="e.g. the form it came from")
    contact_id: RecordId | None = Field(None, description="only this contact's leads")


class LeadPatchBody(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    stage: LeadStage | None = None
    value: Decimal | None = Field(
        None, ge=0, max_digits=14, decimal_places=2, description="null clears it"
    )
    currency: str | None = Field(
        None, pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code such as EUR; null clears it"
    )
    owner_id: RecordId | None = Field(
        None, description="supervisors and admins only; null leaves the lead unowned"
    )

    @field_validator("stage")
    @classmethod
    def _stage_present(cls, value: LeadStage | None) -> LeadStage:
        if value is None:
            raise ValueError(f"must be one of {', '.join(LeadStage)}")
        return value


@routes.get(
    "/api/v1/leads",
    summary=(
        "Leads you may see (yours, those of conversations you may see; supervisors: all),"
        " newest first, filtered by stage, owner, source and contact"
    ),
    query=LeadQuery,
    response=Page[LeadOut],
)
async def list_leads(call: Call[NoBody, LeadQuery]) -> Page[LeadOut]:
    query = call.query
    async with call.sessions() as session:
        rows, next_cursor = await leads.list_leads(
            session,
            call.actor,
            stage=query.stage,
            owner_id=query.owner_id,
            source=query.source,
            contact_id=query.contact_id,
            cursor=query.cursor,
            limit=query.limit,
        )
    return page_of(LeadOut, rows, next_cursor)


@routes.get(
    "/api/v1/leads/{id}",
    summary="A lead: yours, one of a conversation you may see, or any for supervisors",
    response=LeadOut,
)
async def get_lead(call: Call[NoBody, NoBody]) -> LeadOut:
    async with call.sessions() as session:
        lead = await leads.get_lead(session, call.actor, call.path_int("id"))
    return LeadOut.model_validate(lead)


@routes.patch(
    "/api/v1/leads/{id}",
    summary="Change a lead's stage, value or currency (yours or unowned); owner needs a supervisor",
    body=LeadPatchBody,
    response=LeadOut,
)
async def update_lead(call: Call[LeadPatchBody, NoBody]) -> LeadOut:
    changes = LeadChanges(**call.body.model_dump(exclude_unset=True))
    async with call.sessions() as session, session.begin():
        lead = await leads.update_lead(session, call.actor, call.path_int("id"), changes)
    return LeadOut.model_validate(lead)

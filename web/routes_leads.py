"""Leads API routes: list, read, make one from a conversation, and move a lead through its
pipeline's stages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import leads
from core.leads import LeadChanges, NewLead
from web.api import ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import LeadOut, Page, page_of

routes = ApiRoutes(tag="leads")


class LeadQuery(PageQuery):
    pipeline_id: RecordId | None = None
    stage: str | None = Field(None, max_length=40, description="a stage key")
    owner_id: RecordId | None = Field(None, description="the operator who owns the lead")
    source: str | None = Field(None, max_length=100, description="e.g. the form it came from")
    contact_id: RecordId | None = Field(None, description="only this contact's leads")


Value = Field(None, ge=0, max_digits=14, decimal_places=2, description="null clears it")
Currency = Field(
    None, pattern=r"^[A-Za-z]{3}$", description="ISO 4217 code such as EUR; null clears it"
)


class LeadPatchBody(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    stage: str | None = Field(
        None, max_length=40, description="a stage key of the lead's (or the new) pipeline"
    )
    pipeline_id: RecordId | None = Field(None, description="another pipeline; give its stage")
    reason: str | None = Field(
        None, max_length=500, description="why: needed when moving to a lost stage"
    )
    title: str | None = Field(None, max_length=200)
    value: Decimal | None = Value
    currency: str | None = Currency
    owner_id: RecordId | None = Field(
        None, description="supervisors and admins only; null leaves the lead unowned"
    )
    expected_close_on: date | None = Field(None, description="null clears it")

    @field_validator("stage", "pipeline_id", "title")
    @classmethod
    def _present(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value


class NewLeadBody(BaseModel):
    """One of conversation_id (convert a conversation you may see) or contact_id."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: RecordId | None = Field(None, description="a conversation you may see")
    contact_id: RecordId | None = Field(None, description="a lead for this contact")
    pipeline_id: RecordId | None = Field(None, description="default: the first pipeline")
    title: str = Field("", max_length=200)
    value: Decimal | None = Value
    currency: str | None = Currency
    owner_id: RecordId | None = Field(
        None, description="default: you; supervisors may give it to someone"
    )
    expected_close_on: date | None = None


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
            pipeline_id=query.pipeline_id,
            owner_id=query.owner_id,
            source=query.source,
            contact_id=query.contact_id,
            cursor=query.cursor,
            limit=query.limit,
        )
    return page_of(LeadOut, rows, next_cursor)


@routes.post(
    "/api/v1/leads",
    summary=(
        "Make a lead from a conversation you may see (one action in the console) or for a"
        " contact; 409 if the conversation has an open lead"
    ),
    body=NewLeadBody,
    response=LeadOut,
    status=201,
    errors=(409,),
)
async def create_lead(call: Call[NewLeadBody, NoBody]) -> LeadOut:
    async with call.sessions() as session, session.begin():
        lead = await leads.create_lead(session, call.actor, NewLead(**call.body.model_dump()))
        return LeadOut.model_validate(lead)


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
    summary=(
        "Move a lead (stage, pipeline; a reason when lost) or change its title, value,"
        " currency or expected close (yours or unowned); owner needs a supervisor"
    ),
    body=LeadPatchBody,
    response=LeadOut,
)
async def update_lead(call: Call[LeadPatchBody, NoBody]) -> LeadOut:
    changes = LeadChanges(**call.body.model_dump(exclude_unset=True))
    async with call.sessions() as session, session.begin():
        lead = await leads.update_lead(session, call.actor, call.path_int("id"), changes)
        return LeadOut.model_validate(lead)

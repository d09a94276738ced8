"""Web form administration: admins manage forms, supervisors may list them."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.forms import create_form, deactivate_form, list_forms, update_form
from core.models import WebForm
from web.api import ADMINS, SUPERVISORS, ApiRoutes, Call, NoBody, RecordId
from web.schemas import FormAdminOut, FormOut
from web.webforms import embed_snippet, public_url

routes = ApiRoutes(tag="forms")

FieldName = Literal["name", "email", "phone", "message"]


class FormCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=95, description="the form's address: /forms/{slug}")
    title: str = Field(default="Contact us", min_length=1, max_length=200)
    queue_id: RecordId | None = None
    create_lead: bool = False
    required_fields: list[FieldName] = Field(default=["email", "message"], max_length=4)
    thank_you_url: str | None = Field(default=None, max_length=2000)


class FormUpdateBody(BaseModel):
    """Only the fields sent change; null clears queue_id and thank_you_url."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    queue_id: RecordId | None = None
    create_lead: bool | None = None
    required_fields: list[FieldName] | None = Field(default=None, max_length=4)
    thank_you_url: str | None = Field(default=None, max_length=2000)
    active: bool | None = None

    @field_validator("title", "create_lead", "required_fields", "active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for values actually sent: an explicit null here would mean nothing.
        if value is None:
            raise ValueError("may not be null")
        return value


def _out(request: web.Request, form: WebForm) -> FormAdminOut:
    url = public_url(request, form)
    return FormAdminOut(
        **FormOut.model_validate(form).model_dump(),
        url=url,
        embed_url=f"{url}/embed",
        embed_snippet=embed_snippet(url, form.title),
    )


@routes.get(
    "/api/v1/forms",
    summary="Every web form, active or not",
    roles=SUPERVISORS,
    response=list[FormAdminOut],
)
async def list_all(call: Call[NoBody, NoBody]) -> list[FormAdminOut]:
    async with call.sessions() as session:
        forms = await list_forms(session)
    return [_out(call.request, form) for form in forms]


@routes.post(
    "/api/v1/forms",
    summary="Create a web form",
    roles=ADMINS,
    body=FormCreateBody,
    response=FormAdminOut,
    status=201,
    errors=(409,),
)
async def create(call: Call[FormCreateBody, NoBody]) -> FormAdminOut:
    async with call.sessions() as session, session.begin():
        form = await create_form(session, call.actor, **call.body.model_dump())
    return _out(call.request, form)


@routes.patch(
    "/api/v1/forms/{id}",
    summary="Change a web form's settings (reactivate with active: true)",
    roles=ADMINS,
    body=FormUpdateBody,
    response=FormAdminOut,
)
async def update(call: Call[FormUpdateBody, NoBody]) -> FormAdminOut:
    form_id = call.path_int("id")
    async with call.sessions() as session, session.begin():
        form = await update_form(
            session, call.actor, form_id, **call.body.model_dump(exclude_unset=True)
        )
    return _out(call.request, form)


@routes.delete(
    "/api/v1/forms/{id}",
    summary="Deactivate a web form: it stops accepting submissions, its history stays",
    roles=ADMINS,
    response=FormAdminOut,
)
async def deactivate(call: Call[NoBody, NoBody]) -> FormAdminOut:
    form_id = call.path_int("id")
    async with call.sessions() as session, session.begin():
        form = await deactivate_form(session, call.actor, form_id)
    return _out(call.request, form)

"""Contacts API routes: search, read, change, merge, and the omnichannel timeline."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core import contacts
from core.contacts import ContactChanges
from core.models import Role
from web.api import ANYONE_SIGNED_IN, SUPERVISORS, ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import ContactOut, InteractionOut, Page, page_of

routes = ApiRoutes(tag="contacts")

# Other systems read contacts and their history through API tokens.
READERS = ANYONE_SIGNED_IN | {Role.INTEGRATION}

MAX_TAGS = 50
MAX_CUSTOM_FIELD_KEYS = 100
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ContactSearchQuery(PageQuery):
    q: str = Field(
        "",
        max_length=320,
        description=(
            "words of a name or address (the last one may be the start of a word), or a whole"
            " email, phone number or external id"
        ),
    )
    tag: Tag | None = Field(None, description="only contacts with this tag")
    channel: str | None = Field(
        None, min_length=1, max_length=30, description="only contacts with a conversation on it"
    )


def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


class ContactPatchBody(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=200)
    language: str | None = Field(
        None,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        max_length=16,
        description="a language tag such as en or pt-BR; null clears it",
    )
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description="replaces the tags")
    custom_fields: dict[FieldName, Any] | None = Field(
        None,
        max_length=MAX_CUSTOM_FIELD_KEYS,
        description="merged key by key into the stored fields; a null value deletes the key",
    )
    owner_id: RecordId | None = Field(None, description="supervisors and admins only")
    priority_tier: str | None = Field(
        None, max_length=20, description="e.g. standard or vip; supervisors and admins only"
    )
    account_id: RecordId | None = Field(None, description="supervisors and admins only")
    erp_ref: str | None = Field(
        None,
        max_length=100,
        description="their customer number in the ERP, which finds their orders first; null "
        "clears it; supervisors and admins only",
    )

    _not_null = field_validator("display_name", "tags", "custom_fields", "priority_tier")(_present)


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merge_id: RecordId = Field(description="the contact to fold into this one")


@routes.get(
    "/api/v1/contacts",
    summary="Contacts by name, email or phone (full-text), tag and channel; newest first",
    roles=READERS,
    query=ContactSearchQuery,
    response=Page[ContactOut],
)
async def search_contacts(call: Call[NoBody, ContactSearchQuery]) -> Page[ContactOut]:
    async with call.sessions() as session:
        rows, next_cursor = await contacts.search_contacts(
            session,
            call.query.q,
            default_region=call.settings.default_region,
            cursor=call.query.cursor,
            limit=call.query.limit,
            tag=call.query.tag,
            channel=call.query.channel,
        )
    return page_of(ContactOut, rows, next_cursor)


@routes.get(
    "/api/v1/contacts/{id}",
    summary="A contact with its identities (a merged one points at the survivor)",
    roles=READERS,
    response=ContactOut,
)
async def get_contact(call: Call[NoBody, NoBody]) -> ContactOut:
    async with call.sessions() as session:
        contact = await contacts.get_contact(session, call.path_int("id"))
    return ContactOut.model_validate(contact)


@routes.patch(
    "/api/v1/contacts/{id}",
    summary="Change a contact; owner, priority tier and account need a supervisor",
    body=ContactPatchBody,
    response=ContactOut,
    errors=(409,),
)
async def update_contact(call: Call[ContactPatchBody, NoBody]) -> ContactOut:
    changes = ContactChanges(**call.body.model_dump(exclude_unset=True))
    async with call.sessions() as session, session.begin():
        contact = await contacts.update_contact(session, call.actor, call.path_int("id"), changes)
    return ContactOut.model_validate(contact)


@routes.post(
    "/api/v1/contacts/{id}/merge",
    summary="Merge another contact into this one; its identities and history move here",
    roles=SUPERVISORS,
    body=MergeBody,
    response=ContactOut,
    errors=(409,),
)
async def merge_contacts(call: Call[MergeBody, NoBody]) -> ContactOut:
    async with call.sessions() as session, session.begin():
        survivor = await contacts.merge_contacts(
            session, call.actor, call.path_int("id"), call.body.merge_id
        )
    return ContactOut.model_validate(survivor)


@routes.get(
    "/api/v1/contacts/{id}/timeline",
    summary=(
        "A contact's interactions on every channel, newest first: those of conversations you"
        " may see (integration tokens: customer-facing ones, never internal notes)"
    ),
    roles=READERS,
    query=PageQuery,
    response=Page[InteractionOut],
)
async def contact_timeline(call: Call[NoBody, PageQuery]) -> Page[InteractionOut]:
    async with call.sessions() as session:
        rows, next_cursor = await contacts.contact_timeline(
            session,
            call.actor,
            call.path_int("id"),
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
    return page_of(InteractionOut, rows, next_cursor)

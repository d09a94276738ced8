"""Accounts (client companies) and the legal entities they trade through, for supervisors and
admins: a legal entity's ERP reference and tax id are how the ERP bridge finds the company's
customer (core/accounts.py). A contact joins an account with `PATCH /api/v1/contacts/{id}`
(`account_id`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core import accounts
from core.accounts import MAX_ERP_REF, MAX_NAME, MAX_TAX_ID, LegalEntityChanges
from web.api import SUPERVISORS, ApiRoutes, Call, NoBody

routes = ApiRoutes(tag="accounts")

TAX_ID_DESCRIPTION = (
    "its tax id (VAT number, ИНН, ...), stored without spaces or punctuation, upper case; the "
    "ERP is asked by it when no ERP reference finds the customer"
)


class LegalEntityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    name: str
    erp_ref: str | None = Field(description="its customer number in the ERP")
    tax_id: str | None = Field(description=TAX_ID_DESCRIPTION)


class ClientAccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    legal_entities: list[LegalEntityOut]


class ClientAccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME)


class LegalEntityBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME)
    erp_ref: str | None = Field(
        None, max_length=MAX_ERP_REF, description="its customer number in the ERP (unique)"
    )
    tax_id: str | None = Field(None, max_length=MAX_TAX_ID + 20, description=TAX_ID_DESCRIPTION)


class LegalEntityPatchBody(BaseModel):
    """Fields left out stay as they are; null clears the ERP reference or the tax id."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    erp_ref: str | None = Field(None, max_length=MAX_ERP_REF)
    tax_id: str | None = Field(None, max_length=MAX_TAX_ID + 20)

    @field_validator("name")
    @classmethod
    def _name_present(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("may not be null")
        return value


@routes.post(
    "/api/v1/accounts",
    summary="Add an account (a client company)",
    roles=SUPERVISORS,
    body=ClientAccountBody,
    response=ClientAccountOut,
    status=201,
)
async def create_account(call: Call[ClientAccountBody, NoBody]) -> ClientAccountOut:
    async with call.sessions() as session, session.begin():
        account = await accounts.create_account(session, call.actor, call.body.name)
        return ClientAccountOut.model_validate(account)


@routes.get(
    "/api/v1/accounts/{id}",
    summary="An account with its legal entities",
    roles=SUPERVISORS,
    response=ClientAccountOut,
)
async def get_account(call: Call[NoBody, NoBody]) -> ClientAccountOut:
    async with call.sessions() as session:
        account = await accounts.get_account(session, call.path_int("id"))
        return ClientAccountOut.model_validate(account)


@routes.post(
    "/api/v1/accounts/{id}/legal-entities",
    summary="Add a legal entity to an account (409 if its ERP reference is taken)",
    roles=SUPERVISORS,
    body=LegalEntityBody,
    response=LegalEntityOut,
    status=201,
    errors=(409,),
)
async def add_legal_entity(call: Call[LegalEntityBody, NoBody]) -> LegalEntityOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        entity = await accounts.add_legal_entity(
            session,
            call.actor,
            call.path_int("id"),
            name=body.name,
            erp_ref=body.erp_ref,
            tax_id=body.tax_id,
        )
        return LegalEntityOut.model_validate(entity)


@routes.patch(
    "/api/v1/legal-entities/{id}",
    summary="Change a legal entity's name, ERP reference or tax id (409 if the reference is taken)",
    roles=SUPERVISORS,
    body=LegalEntityPatchBody,
    response=LegalEntityOut,
    errors=(409,),
)
async def update_legal_entity(call: Call[LegalEntityPatchBody, NoBody]) -> LegalEntityOut:
    sent = call.body.model_dump(exclude_unset=True)
    async with call.sessions() as session, session.begin():
        entity = await accounts.update_legal_entity(
            session, call.actor, call.path_int("id"), LegalEntityChanges(**sent)
        )
        return LegalEntityOut.model_validate(entity)

"""Client companies (accounts) and the legal entities they trade through, as supervisors and
admins keep them: a legal entity's ERP reference (its customer number in the ERP) and its tax
id are how the ERP bridge finds the company's customer for the account's contacts
(`erp_bridge/enricher.py: query_for_contact`), by reference first, by tax id when the CRM
knows no reference.

An ERP reference names one customer: it is unique among legal entities and contacts (a
contact's `erp_ref` is the same kind of number, for a person). A tax id is kept as the ERPs
compare it, without spaces or punctuation and in upper case ("DE 123.456.789" is
"DE123456789"); it need not be unique (a company may be recorded under two accounts). Every
change is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core import audit
from core.audit import Actor
from core.changes import UNSET, Unset
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Account, Contact, LegalEntity

MAX_NAME = 200
MAX_ERP_REF = 100
MAX_TAX_ID = 50
_TAX_ID_PUNCTUATION = re.compile(r"[\s.\-/]")
_TAX_ID = re.compile(r"[0-9A-Z]{2,50}")


def normalize_tax_id(value: str) -> str:
    """A tax id as stored and compared: no spaces, dots, dashes or slashes, upper case."""
    return _TAX_ID_PUNCTUATION.sub("", value).upper()


@dataclass(frozen=True, kw_only=True)
class LegalEntityChanges:
    """What a PATCH asks to change; fields left UNSET stay as they are, None clears."""

    name: str | Unset = UNSET
    erp_ref: str | Unset | None = UNSET
    tax_id: str | Unset | None = UNSET

    def sent(self) -> list[str]:
        return [item.name for item in fields(self) if getattr(self, item.name) is not UNSET]


async def create_account(session: AsyncSession, actor: Actor, name: str) -> Account:
    account = Account(name=_name(name))
    session.add(account)
    await session.flush()
    await audit.record(session, actor, "account.create", "account", account.id, {"name": name})
    return await get_account(session, account.id)


async def get_account(session: AsyncSession, account_id: int) -> Account:
    """The account with its legal entities (by id); 404 if there is none."""
    account = await session.scalar(
        select(Account)
        .where(Account.id == account_id)
        .options(selectinload(Account.legal_entities))
        .execution_options(populate_existing=True)
    )
    if account is None:
        raise NotFound(f"no account {account_id}")
    return account


async def add_legal_entity(
    session: AsyncSession,
    actor: Actor,
    account_id: int,
    *,
    name: str,
    erp_ref: str | None = None,
    tax_id: str | None = None,
) -> LegalEntity:
    """A legal entity of the account; 409 if another holds the ERP reference."""
    await get_account(session, account_id)
    entity = LegalEntity(
        account_id=account_id,
        name=_name(name),
        erp_ref=await _free_erp_ref(session, erp_ref, None),
        tax_id=_tax_id(tax_id),
    )
    session.add(entity)
    await session.flush()
    await audit.record(
        session,
        actor,
        "legal_entity.create",
        "legal_entity",
        entity.id,
        {"account_id": account_id, "erp_ref": entity.erp_ref, "tax_id": entity.tax_id},
    )
    return entity


async def update_legal_entity(
    session: AsyncSession, actor: Actor, entity_id: int, changes: LegalEntityChanges
) -> LegalEntity:
    entity = await session.get(LegalEntity, entity_id)
    if entity is None:
        raise NotFound(f"no legal entity {entity_id}")
    wanted: dict[str, str | None] = {}
    if not isinstance(changes.name, Unset):
        wanted["name"] = _name(changes.name)
    if not isinstance(changes.erp_ref, Unset):
        wanted["erp_ref"] = await _free_erp_ref(session, changes.erp_ref, entity.id)
    if not isinstance(changes.tax_id, Unset):
        wanted["tax_id"] = _tax_id(changes.tax_id)
    changed = {key: value for key, value in wanted.items() if getattr(entity, key) != value}
    if changed:
        before = {key: getattr(entity, key) for key in changed}
        for key, value in changed.items():
            setattr(entity, key, value)
        await session.flush()
        await audit.record(
            session,
            actor,
            "legal_entity.update",
            "legal_entity",
            entity.id,
            {"before": before, "after": changed},
        )
    return entity


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise InvalidInput("the name may not be blank", field="name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"the name has at most {MAX_NAME} characters", field="name")
    return name


def _tax_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    tax_id = normalize_tax_id(value)
    if not _TAX_ID.fullmatch(tax_id):
        raise InvalidInput(
            "a tax id is 2 to 50 letters and digits (spaces, dots, dashes and slashes aside)",
            field="tax_id",
        )
    return tax_id


async def _free_erp_ref(
    session: AsyncSession, value: str | None, entity_id: int | None
) -> str | None:
    """The reference, trimmed (None for blank); 409 if a contact or another legal entity
    has it."""
    ref = (value or "").strip() or None
    if ref is None:
        return None
    if len(ref) > MAX_ERP_REF:
        raise InvalidInput(
            f"an ERP reference has at most {MAX_ERP_REF} characters", field="erp_ref"
        )
    entity = await session.scalar(
        select(LegalEntity.id).where(LegalEntity.erp_ref == ref, LegalEntity.id != entity_id)
    )
    if entity is not None:
        raise Conflict(f"legal entity {entity} has the ERP reference {ref!r}", field="erp_ref")
    contact = await session.scalar(select(Contact.id).where(Contact.erp_ref == ref))
    if contact is not None:
        raise Conflict(f"contact {contact} has the ERP reference {ref!r}", field="erp_ref")
    return ref

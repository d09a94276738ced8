"""Identity resolution: normalized addresses, and the contact each one belongs to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput
from core.models import Contact, Identity, IdentityKind
from core.sql import insert_ignoring_conflicts

_MAX_ADDRESS = 320


@dataclass(frozen=True)
class Address:
    kind: IdentityKind
    value: str


def normalize_email(raw: str) -> str:
    value = raw.strip().lower()
    local, at, domain = value.rpartition("@")
    # A quoted local part may hold spaces ("big bug bb"@bug.com is a real address).
    quoted = len(local) >= 2 and local.startswith('"') and local.endswith('"')
    if (
        not at
        or not local
        or "." not in domain
        or any(char.isspace() for char in domain)
        or (not quoted and any(char.isspace() for char in local))
        or len(value) > _MAX_ADDRESS
    ):
        raise InvalidInput("not a valid email address", field="email")
    return value


def normalize_phone(raw: str, default_region: str | None) -> str:
    """E.164, e.g. +4930123456; numbers without a country code use `default_region`."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("not a phone number", field="phone") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput("not a possible phone number", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize(address: Address, default_region: str | None) -> Address:
    if address.kind is IdentityKind.EMAIL:
        return Address(address.kind, normalize_email(address.value))
    if address.kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
        return Address(address.kind, normalize_phone(address.value, default_region))
    value = address.value.strip()
    if not value or len(value) > _MAX_ADDRESS:
        raise InvalidInput(f"{address.kind} identity must be 1 to 320 characters", field="identity")
    return Address(address.kind, value)


async def owners_of(session: AsyncSession, addresses: Sequence[Address]) -> dict[Address, int]:
    """The contact id owning each of these (normalized) addresses that has an owner."""
    if not addresses:
        return {}
    rows = await session.execute(
        select(Identity.kind, Identity.address, Identity.contact_id).where(_any_of(addresses))
    )
    return {Address(IdentityKind(kind), value): owner for kind, value, owner in rows}


def _any_of(addresses: Sequence[Address]) -> ColumnElement[bool]:
    return or_(
        *(
            and_(Identity.kind == address.kind, Identity.address == address.value)
            for address in addresses
        )
    )


async def resolve_contact(
    session: AsyncSession,
    addresses: Sequence[Address],
    display_name: str = "",
    new_fields: Mapping[str, Any] | None = None,
) -> tuple[Contact, bool]:
    """Find or create the contact for these normalized addresses; attach the new ones.

    Returns the contact and whether it was created; a created one gets `new_fields` (its
    language, custom fields...) in the INSERT itself. Safe against a concurrent transaction
    creating the same identity: the unique (kind, address) constraint decides who wins.
    """
    # The owners of the addresses and their contacts in one round trip; the oldest contact
    # is the person (another owner is a different person until someone merges them).
    rows = (
        (
            await session.execute(
                select(Identity.kind, Identity.address, Contact)
                .join(Contact, Contact.id == Identity.contact_id)
                .where(_any_of(addresses))
            )
        ).all()
        if addresses
        else []
    )
    owners = {Address(IdentityKind(kind), value): owner.id for kind, value, owner in rows}
    contact = min((owner for _, _, owner in rows), key=lambda owner: owner.id, default=None)
    created = contact is None
    if contact is None:
        contact = Contact(display_name=display_name[:200], **(new_fields or {}))
        session.add(contact)
        await session.flush()
    elif display_name and not contact.display_name:
        contact.display_name = display_name[:200]
    for address in addresses:
        if address in owners:
            continue  # an address of another contact stays theirs: merging is a person's call
        claimed = await _claim_identity(session, contact.id, address)
        if claimed != contact.id and created:
            # Another transaction created this person first: use theirs, drop ours.
            await session.execute(delete(Identity).where(Identity.contact_id == contact.id))
            await session.delete(contact)
            await session.flush()
            survivor, _ = await resolve_contact(session, addresses, display_name, new_fields)
            return survivor, False
    return contact, created


async def _claim_identity(session: AsyncSession, contact_id: int, address: Address) -> int:
    """Insert the identity unless it exists; return the id of the contact that owns it."""
    statement = (
        insert_ignoring_conflicts(session, Identity, ["kind", "address"])
        .values(contact_id=contact_id, kind=address.kind, address=address.value)
        .returning(Identity.contact_id)
    )
    inserted = await session.scalar(statement)
    if inserted is not None:
        return int(inserted)
    owner = await session.scalar(
        select(Identity.contact_id).where(
            Identity.kind == address.kind, Identity.address == address.value
        )
    )
    if owner is None:  # pragma: no cover - a conflict means the row exists
        raise RuntimeError("identity conflict without a row")
    return int(owner)

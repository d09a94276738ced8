"""Contacts: search, changes by operators, merging two records of one person, the timeline."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import CursorResult, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core import audit, search
from core.audit import Actor
from core.changes import UNSET, Unset
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.event_types import CONTACT_MERGED, CONTACT_UPDATED
from core.events import Event, emit
from core.identity import Address, normalize_email, normalize_phone
from core.models import (
    Account,
    Contact,
    Conversation,
    Identity,
    Interaction,
    Lead,
    Task,
    utcnow,
)
from core.operators import require_active_operator
from core.pagination import keyset_page
from core.visibility import interaction_filter

# Stored as JSON on the contact row, which every contact read loads.
MAX_CUSTOM_FIELDS_BYTES = 64 * 1024
# Deeper JSON than this is no form a person fills in, and it strains every JSON encoder.
MAX_CUSTOM_FIELD_NESTING = 10
SUPERVISOR_FIELDS = ("owner_id", "priority_tier", "account_id", "erp_ref")


@dataclass(frozen=True, kw_only=True)
class ContactChanges:
    """What a PATCH asks to change; fields left UNSET stay as they are."""

    display_name: str | Unset = UNSET
    language: str | Unset | None = UNSET
    tags: Sequence[str] | Unset = UNSET
    # Merged key by key into the stored fields; a None value deletes that key.
    custom_fields: Mapping[str, Any] | Unset = UNSET
    owner_id: int | Unset | None = UNSET
    priority_tier: str | Unset = UNSET
    account_id: int | Unset | None = UNSET
    # Their customer number in the ERP (the ERP bridge looks them up by it first).
    erp_ref: str | Unset | None = UNSET

    def sent(self) -> list[str]:
        return [item.name for item in fields(self) if getattr(self, item.name) is not UNSET]


async def search_contacts(
    session: AsyncSession,
    text: str,
    *,
    default_region: str | None,
    cursor: str | None,
    limit: int,
    tag: str | None = None,
    channel: str | None = None,
) -> tuple[list[Contact], str | None]:
    """Live contacts whose name or addresses hold the words of `text` (full-text, the last word
    as a prefix) or that have `text` as an address (an email, a phone number in any notation,
    an external id); all if empty; newest first; neither merged nor erased ones. `tag`: only
    contacts with this tag; `channel`: only those with a conversation on it."""
    query = (
        select(Contact)
        # Erased people (privacy requests) stay as tombstones for statistics, not as contacts.
        .where(Contact.merged_into_id.is_(None), Contact.erased_at.is_(None))
        .options(selectinload(Contact.identities))
    )
    dialect = session.get_bind().dialect.name
    text = text.strip()
    if text:
        condition = search.contact_condition(dialect, text, _addresses(text, default_region))
        query = query.where(condition if condition is not None else false())
    if tag is not None:
        query = query.where(search.has_tag(dialect, tag))
    if channel is not None:
        query = query.where(
            Contact.id.in_(select(Conversation.contact_id).where(Conversation.channel == channel))
        )
    return await keyset_page(
        session, query, Contact.created_at, Contact.id, cursor=cursor, limit=limit
    )


def _addresses(text: str, default_region: str | None) -> list[str]:
    """What `text` may be as a stored identity address: itself (an external id), and the
    normalized email or phone number it writes."""
    found = [text]
    if "@" in text:
        with contextlib.suppress(InvalidInput):
            found.append(normalize_email(text))
    with contextlib.suppress(InvalidInput):
        found.append(normalize_phone(text, default_region))
    return found


async def get_contact(session: AsyncSession, contact_id: int) -> Contact:
    """The contact with its identities; a tombstone too (its merged_into_id says where to go)."""
    contact = await session.get(
        Contact, contact_id, options=[selectinload(Contact.identities)], populate_existing=True
    )
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}")
    return contact


async def update_contact(
    session: AsyncSession, actor: Actor, contact_id: int, changes: ContactChanges
) -> Contact:
    """Apply an operator's changes; supervisor-only fields are refused whole for operators."""
    sent = changes.sent()
    refused = [name for name in SUPERVISOR_FIELDS if name in sent]
    if refused and not actor.is_supervisor:
        error = Forbidden(f"only supervisors and admins may change {', '.join(refused)}")
        error.fields.update(dict.fromkeys(refused, "only supervisors and admins may change this"))
        raise error
    contact = await _live_contact(session, contact_id)
    wanted = await _validated(session, contact, changes)
    changed = [name for name, value in wanted.items() if getattr(contact, name) != value]
    if not changed:
        return contact
    for name in changed:
        setattr(contact, name, wanted[name])
    await audit.record(session, actor, "contact.update", "contact", contact.id, {"fields": changed})
    await emit(session, Event(CONTACT_UPDATED, {"contact": contact.id}))
    await session.flush()
    return contact


async def _live_contact(session: AsyncSession, contact_id: int) -> Contact:
    """The contact, locked for this transaction; 404 if missing, 409 if merged away."""
    contact = await session.scalar(
        select(Contact)
        .where(Contact.id == contact_id)
        .options(selectinload(Contact.identities))
        .with_for_update()
    )
    if contact is None:
        raise NotFound(f"no contact with id {contact_id}")
    if contact.merged_into_id is not None:
        raise Conflict(
            f"contact {contact_id} was merged into contact {contact.merged_into_id}; use that one"
        )
    _refuse_erased(contact)
    return contact


def _refuse_erased(contact: Contact, field: str | None = None) -> None:
    if contact.erased_at is not None:
        raise Conflict(
            f"contact {contact.id} was erased by a privacy request; it cannot be changed",
            field=field,
        )


async def _validated(
    session: AsyncSession, contact: Contact, changes: ContactChanges
) -> dict[str, Any]:
    """The new value of each sent field, normalized; 400 for a value that cannot be stored."""
    wanted: dict[str, Any] = {}
    if not isinstance(changes.display_name, Unset):
        name = changes.display_name.strip()
        if not name:
            raise InvalidInput("display_name may not be blank", field="display_name")
        wanted["display_name"] = name
    if not isinstance(changes.language, Unset):
        wanted["language"] = changes.language
    if not isinstance(changes.tags, Unset):
        wanted["tags"] = list(dict.fromkeys(tag.strip() for tag in changes.tags))
    if not isinstance(changes.custom_fields, Unset):
        wanted["custom_fields"] = _merged_fields(contact.custom_fields, changes.custom_fields)
    if not isinstance(changes.owner_id, Unset):
        if changes.owner_id is not None:
            await require_active_operator(session, changes.owner_id, "owner_id")
        wanted["owner_id"] = changes.owner_id
    if not isinstance(changes.priority_tier, Unset):
        # Routing compares tiers ("vip"), so "VIP " and "vip" must be one tier.
        tier = changes.priority_tier.strip().lower()
        if not tier:
            raise InvalidInput("priority_tier may not be blank", field="priority_tier")
        wanted["priority_tier"] = tier
    if not isinstance(changes.account_id, Unset):
        account_id = changes.account_id
        if account_id is not None and await session.get(Account, account_id) is None:
            raise InvalidInput(f"no account with id {account_id}", field="account_id")
        wanted["account_id"] = account_id
    if not isinstance(changes.erp_ref, Unset):
        ref = (changes.erp_ref or "").strip() or None
        if ref is not None:
            holder = await session.scalar(
                select(Contact.id).where(Contact.erp_ref == ref, Contact.id != contact.id)
            )
            if holder is not None:
                raise Conflict(
                    f"contact {holder} has the ERP reference {ref!r} already", field="erp_ref"
                )
        wanted["erp_ref"] = ref
    return wanted


def _merged_fields(stored: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if _nested_deeper_than(value, MAX_CUSTOM_FIELD_NESTING):
            raise InvalidInput(
                f"custom field values may nest lists and objects {MAX_CUSTOM_FIELD_NESTING} deep",
                field=f"custom_fields.{key}",
            )
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        size = len(json.dumps(merged, allow_nan=False).encode())
    except ValueError:
        # Python's JSON reader accepts NaN and Infinity; JSON columns cannot store them.
        raise InvalidInput(
            "custom field values must be JSON (no NaN or Infinity)", field="custom_fields"
        ) from None
    if size > MAX_CUSTOM_FIELDS_BYTES:
        raise InvalidInput(
            f"custom_fields may hold at most {MAX_CUSTOM_FIELDS_BYTES} bytes of JSON",
            field="custom_fields",
        )
    return merged


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels deep in `value`."""
    # Level by level rather than recursively: the input is a client's, its depth unknown.
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
    return bool(level)


async def merge_contacts(
    session: AsyncSession, actor: Actor, survivor_id: int, merged_id: int
) -> Contact:
    """Fold contact `merged_id` into `survivor_id`: its identities and history move over,
    and it stays behind as a tombstone pointing at the survivor."""
    if survivor_id == merged_id:
        raise InvalidInput("a contact cannot be merged into itself", field="merge_id")
    # Locked in id order, so two opposite merges cannot deadlock.
    found = {
        contact.id: contact
        for contact in await session.scalars(
            select(Contact)
            .where(Contact.id.in_([survivor_id, merged_id]))
            .order_by(Contact.id)
            .with_for_update()
        )
    }
    survivor = found.get(survivor_id)
    merged = found.get(merged_id)
    if survivor is None:
        raise NotFound(f"no contact with id {survivor_id}")
    if merged is None:
        raise NotFound(f"no contact with id {merged_id}", field="merge_id")
    for contact, field in ((survivor, None), (merged, "merge_id")):
        if contact.merged_into_id is not None:
            raise Conflict(
                f"contact {contact.id} was already merged into contact {contact.merged_into_id}",
                field=field,
            )
        _refuse_erased(contact, field)
    moved = await _move_records(session, merged.id, survivor.id)
    _absorb(survivor, merged)
    merged.merged_into_id = survivor.id
    # Older tombstones of the merged contact now point straight at the survivor.
    await session.execute(
        update(Contact)
        .where(Contact.merged_into_id == merged.id)
        .values(merged_into_id=survivor.id)
    )
    await audit.record(
        session, actor, "contact.merge", "contact", survivor.id, {"merged_id": merged.id, **moved}
    )
    await emit(session, Event(CONTACT_MERGED, {"contact": survivor.id, "merged": merged.id}))
    await session.flush()
    return await get_contact(session, survivor.id)


async def attach_verified_address(
    session: AsyncSession, actor: Actor, contact_id: int, address: Address
) -> int:
    """A normalized address the provider vouches belongs to this contact (a phone number a
    Telegram user shared as their own: Telegram checked it): attached to them. If another
    contact holds it, the two are one person, and are merged (the older record survives, as
    the one whose history came first). The surviving contact's id."""
    owner = await session.scalar(
        select(Identity.contact_id).where(
            Identity.kind == address.kind, Identity.address == address.value
        )
    )
    if owner == contact_id:
        return contact_id
    if owner is None:
        session.add(Identity(contact_id=contact_id, kind=address.kind, address=address.value))
        await session.flush()
        await audit.record(
            session,
            actor,
            "contact.identity_add",
            "contact",
            contact_id,
            {"kind": str(address.kind), "verified": True},
        )
        await emit(session, Event(CONTACT_UPDATED, {"contact": contact_id}))
        return contact_id
    erased = await session.scalar(select(Contact.erased_at).where(Contact.id == owner))
    if erased is not None:
        return contact_id  # a privacy request's tombstone keeps it; nothing joins it
    older, newer = sorted((owner, contact_id))
    survivor = await merge_contacts(session, actor, older, newer)
    return survivor.id


async def _move_records(session: AsyncSession, from_id: int, to_id: int) -> dict[str, int]:
    """Re-point every record of contact `from_id` at `to_id`; how many of each moved."""
    moved: dict[str, int] = {}
    models: dict[str, type[Identity | Conversation | Interaction | Lead | Task]] = {
        "identities": Identity,
        "conversations": Conversation,
        "interactions": Interaction,
        "leads": Lead,
        "tasks": Task,
    }
    for name, model in models.items():
        result = await session.execute(
            update(model)
            .where(model.contact_id == from_id)
            .values(contact_id=to_id)
            .execution_options(synchronize_session=False)
        )
        moved[name] = cast("CursorResult[Any]", result).rowcount
    return moved


def _absorb(survivor: Contact, merged: Contact) -> None:
    """Combine the merged contact's data into the survivor's; the survivor wins conflicts."""
    survivor.tags = list(dict.fromkeys([*survivor.tags, *merged.tags]))
    survivor.custom_fields = {**merged.custom_fields, **survivor.custom_fields}
    first, later = sorted((survivor, merged), key=lambda contact: (contact.created_at, contact.id))
    # First touch: the older record's source, unless that one never learned it.
    survivor.marketing_source = dict(first.marketing_source or later.marketing_source)
    survivor.display_name = survivor.display_name or merged.display_name
    if survivor.language is None:
        survivor.language = merged.language
    if survivor.owner_id is None:
        survivor.owner_id = merged.owner_id
    if survivor.account_id is None:
        survivor.account_id = merged.account_id
    survivor.updated_at = utcnow()


async def contact_timeline(
    session: AsyncSession, actor: Actor, contact_id: int, *, cursor: str | None, limit: int
) -> tuple[list[Interaction], str | None]:
    """The contact's interactions on every channel that `actor` may see (`core.visibility`:
    those of conversations they may see; for integration tokens the customer-facing ones),
    newest first. The contact itself is no secret: a contact with nothing visible is an
    empty page, not a 403."""
    if await session.get(Contact, contact_id) is None:
        raise NotFound(f"no contact with id {contact_id}")
    query = select(Interaction).where(
        Interaction.contact_id == contact_id, interaction_filter(actor)
    )
    return await keyset_page(
        session, query, Interaction.occurred_at, Interaction.id, cursor=cursor, limit=limit
    )

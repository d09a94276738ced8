"""Leads: sales opportunities, listed by stage and owner and moved through their stages.

Who sees a lead is `core.visibility`'s rule: supervisors and admins all, an operator those
they own and those whose conversation they may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.changes import UNSET, Unset
from core.errors import Forbidden, NotFound
from core.event_types import LEAD_UPDATED
from core.events import Event, emit
from core.models import Conversation, Lead, LeadStage
from core.operators import require_active_operator
from core.pagination import keyset_page
from core.visibility import Placement, audience_labels, lead_filter, placement_of

CENTS = Decimal("0.01")


@dataclass(frozen=True, kw_only=True)
class LeadChanges:
    """What a PATCH asks to change; fields left UNSET stay as they are."""

    stage: LeadStage | Unset = UNSET
    value: Decimal | Unset | None = UNSET
    currency: str | Unset | None = UNSET
    owner_id: int | Unset | None = UNSET


async def list_leads(
    session: AsyncSession,
    actor: Actor,
    *,
    stage: LeadStage | None = None,
    owner_id: int | None = None,
    source: str | None = None,
    contact_id: int | None = None,
    cursor: str | None = None,
    limit: int,
) -> tuple[list[Lead], str | None]:
    """Leads `actor` may see matching every filter given, newest first."""
    query = select(Lead).where(lead_filter(actor))
    if stage is not None:
        query = query.where(Lead.stage == stage)
    if owner_id is not None:
        query = query.where(Lead.owner_id == owner_id)
    if source is not None:
        query = query.where(Lead.source == source)
    if contact_id is not None:
        query = query.where(Lead.contact_id == contact_id)
    return await keyset_page(session, query, Lead.created_at, Lead.id, cursor=cursor, limit=limit)


async def get_lead(
    session: AsyncSession, actor: Actor, lead_id: int, *, lock: bool = False
) -> Lead:
    """The lead if `actor` may see it; 404 if missing, 403 if not theirs to see."""
    query = select(Lead).where(Lead.id == lead_id)
    lead = await session.scalar(query.with_for_update() if lock else query)
    if lead is None:
        raise NotFound(f"no lead with id {lead_id}")
    allowed = await session.scalar(select(Lead.id).where(Lead.id == lead_id, lead_filter(actor)))
    if allowed is None:
        raise Forbidden("this lead is not yours and its conversation is not in your queues")
    return lead


async def lead_labels(
    session: AsyncSession, lead: Lead, *, previous_owner: int | None = None
) -> dict[str, str]:
    """Audience labels of an event about `lead` (`core.visibility`): its owner (and the one
    before a change) and where its conversation sits."""
    placements: list[Placement] = []
    if lead.conversation_id is not None:
        conversation = await session.get(Conversation, lead.conversation_id)
        if conversation is not None:
            placements.append(placement_of(conversation))
    return audience_labels(placements, [lead.owner_id, previous_owner])


async def update_lead(
    session: AsyncSession, actor: Actor, lead_id: int, changes: LeadChanges
) -> Lead:
    """Change a lead. Operators work their own and unowned leads; only supervisors reassign."""
    if not isinstance(changes.owner_id, Unset) and not actor.is_supervisor:
        raise Forbidden("only supervisors and admins may change a lead's owner", field="owner_id")
    lead = await get_lead(session, actor, lead_id, lock=True)
    previous_owner = lead.owner_id
    if not actor.is_supervisor and lead.owner_id not in (None, actor.operator_id):
        raise Forbidden("this lead belongs to another operator; ask a supervisor")
    previous_stage = lead.stage
    changed: list[str] = []
    if not isinstance(changes.stage, Unset) and changes.stage != lead.stage:
        lead.stage = changes.stage
    if not isinstance(changes.value, Unset):
        # As stored (two decimals), so the answer matches what a later read returns.
        value = None if changes.value is None else changes.value.quantize(CENTS)
        if value != lead.value:
            lead.value = value
            changed.append("value")
    if not isinstance(changes.currency, Unset):
        currency = None if changes.currency is None else changes.currency.upper()
        if currency != lead.currency:
            lead.currency = currency
            changed.append("currency")
    if not isinstance(changes.owner_id, Unset) and changes.owner_id != lead.owner_id:
        if changes.owner_id is not None:
            await require_active_operator(session, changes.owner_id, "owner_id")
        lead.owner_id = changes.owner_id
        changed.append("owner_id")
    if lead.stage != previous_stage:
        await audit.record(
            session,
            actor,
            "lead.stage",
            "lead",
            lead.id,
            {"from": previous_stage, "to": lead.stage},
        )
    if changed:
        await audit.record(session, actor, "lead.update", "lead", lead.id, {"fields": changed})
    if lead.stage != previous_stage or changed:
        labels = await lead_labels(session, lead, previous_owner=previous_owner)
        await emit(
            session, Event(LEAD_UPDATED, {"lead": lead.id, "contact": lead.contact_id}, labels)
        )
        await session.flush()
    return lead

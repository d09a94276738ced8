"""Leads: sales opportunities, made from a conversation (or by a web form's submission, in
core/ingest.py), listed by stage and owner and moved through their pipeline's stages
(core/pipelines.py keeps the rules of a move).

Who sees a lead is `core.visibility`'s rule: supervisors and admins all, an operator those
they own and those whose conversation they may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, pipelines
from core.audit import Actor
from core.changes import UNSET, Unset
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.event_types import LEAD_CREATED, LEAD_UPDATED
from core.events import Event, emit
from core.models import Contact, Conversation, Lead, utcnow
from core.operators import require_active_operator
from core.pagination import keyset_page
from core.visibility import (
    Placement,
    audience_labels,
    conversation_filter,
    lead_filter,
    placement_of,
)

CENTS = Decimal("0.01")


@dataclass(frozen=True, kw_only=True)
class LeadChanges:
    """What a PATCH asks to change; fields left UNSET stay as they are. `reason` goes with a
    stage change (needed for a lost stage)."""

    stage: str | Unset = UNSET
    pipeline_id: int | Unset = UNSET
    reason: str | Unset | None = UNSET
    title: str | Unset = UNSET
    value: Decimal | Unset | None = UNSET
    currency: str | Unset | None = UNSET
    owner_id: int | Unset | None = UNSET
    expected_close_on: date | Unset | None = UNSET


@dataclass(frozen=True, kw_only=True)
class NewLead:
    """A lead an operator makes from a conversation they may see (the contact and source
    come from it) or for a contact (source "manual")."""

    conversation_id: int | None = None
    contact_id: int | None = None
    pipeline_id: int | None = None
    title: str = ""
    value: Decimal | None = None
    currency: str | None = None
    owner_id: int | None = None
    expected_close_on: date | None = None


async def list_leads(
    session: AsyncSession,
    actor: Actor,
    *,
    stage: str | None = None,
    pipeline_id: int | None = None,
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
    if pipeline_id is not None:
        query = query.where(Lead.pipeline_id == pipeline_id)
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
    """Change a lead. Operators work their own and unowned leads; only supervisors reassign.
    A new stage (or pipeline) is a move (`core.pipelines.enter_stage`)."""
    if not isinstance(changes.owner_id, Unset) and not actor.is_supervisor:
        raise Forbidden("only supervisors and admins may change a lead's owner", field="owner_id")
    lead = await get_lead(session, actor, lead_id, lock=True)
    previous_owner = lead.owner_id
    if not actor.is_supervisor and lead.owner_id not in (None, actor.operator_id):
        raise Forbidden("this lead belongs to another operator; ask a supervisor")
    now = utcnow()
    changed: list[str] = []
    if not isinstance(changes.title, Unset) and changes.title.strip() != lead.title:
        lead.title = _title(changes.title)
        changed.append("title")
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
    if (
        not isinstance(changes.expected_close_on, Unset)
        and changes.expected_close_on != lead.expected_close_on
    ):
        lead.expected_close_on = changes.expected_close_on
        changed.append("expected_close_on")
    if not isinstance(changes.owner_id, Unset) and changes.owner_id != lead.owner_id:
        if changes.owner_id is not None:
            await require_active_operator(session, changes.owner_id, "owner_id")
        lead.owner_id = changes.owner_id
        changed.append("owner_id")
    moved = await _move(session, actor, lead, changes, now)
    if changed:
        await audit.record(session, actor, "lead.update", "lead", lead.id, {"fields": changed})
    if moved or changed:
        lead.updated_at = now
        await announce(session, lead, previous_owner=previous_owner)
        await session.flush()
    return lead


async def _move(
    session: AsyncSession, actor: Actor, lead: Lead, changes: LeadChanges, now: datetime
) -> bool:
    """Apply a stage or pipeline change, if any; True if the lead moved."""
    pipeline_id = (
        lead.pipeline_id if isinstance(changes.pipeline_id, Unset) else changes.pipeline_id
    )
    new_pipeline = pipeline_id != lead.pipeline_id
    if isinstance(changes.stage, Unset):
        if not new_pipeline:
            return False
        raise InvalidInput("moving a lead to another pipeline needs its stage there", field="stage")
    if not new_pipeline and changes.stage == lead.stage:
        return False
    pipeline = await pipelines.get_pipeline(session, pipeline_id, field="pipeline_id")
    if new_pipeline and pipeline.archived:
        raise InvalidInput(f"pipeline {pipeline.name!r} is archived", field="pipeline_id")
    previous = {"pipeline_id": lead.pipeline_id, "stage": lead.stage}
    reason = None if isinstance(changes.reason, Unset) else changes.reason
    await pipelines.enter_stage(
        session, actor, lead, pipeline, changes.stage, reason=reason, now=now
    )
    details: dict[str, Any] = {"from": previous["stage"], "to": lead.stage}
    if new_pipeline:
        details["from_pipeline_id"] = previous["pipeline_id"]
        details["pipeline_id"] = pipeline.id
    if lead.lost_reason is not None:
        details["reason"] = lead.lost_reason
    elif reason:
        details["reason"] = reason
    await audit.record(session, actor, "lead.stage", "lead", lead.id, details)
    return True


def _title(title: str) -> str:
    title = title.strip()
    if len(title) > 200:
        raise InvalidInput("a title is at most 200 characters", field="title")
    return title


async def announce(
    session: AsyncSession, lead: Lead, *, created: bool = False, previous_owner: int | None = None
) -> None:
    """Tell who may see `lead` (its owner, the one before, its conversation's audience) that
    it was made or changed."""
    labels = await lead_labels(session, lead, previous_owner=previous_owner)
    ids = {"lead": lead.id, "contact": lead.contact_id}
    if created:
        await emit(session, Event(LEAD_CREATED, ids, labels))
    else:
        await emit(session, Event(LEAD_UPDATED, ids, labels))


async def create_lead(session: AsyncSession, actor: Actor, new: NewLead) -> Lead:
    """A lead from a conversation `actor` may see, or for a contact. A conversation that has
    an open lead already answers 409 with it: converting twice (a double click) makes one."""
    conversation = None
    if new.conversation_id is not None:
        # Locked: a second click waits for the first to commit and then finds its lead.
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.id == new.conversation_id, conversation_filter(actor))
            .with_for_update(of=Conversation)
        )
        if conversation is None:
            raise NotFound(f"no conversation {new.conversation_id}", field="conversation_id")
        existing = await session.scalar(
            select(Lead.id).where(Lead.conversation_id == conversation.id, Lead.closed_at.is_(None))
        )
        if existing is not None:
            raise Conflict(
                f"this conversation has an open lead already (lead {existing})",
                field="conversation_id",
            )
        contact_id = conversation.contact_id
        source = f"conversation:{conversation.channel}"
    elif new.contact_id is not None:
        if not actor.is_supervisor and actor.operator_id is None:
            raise Forbidden("only operators make leads")
        contact = await session.get(Contact, new.contact_id)
        if contact is None or contact.erased_at is not None:
            raise NotFound(f"no contact {new.contact_id}", field="contact_id")
        contact_id = contact.id
        source = "manual"
    else:
        raise InvalidInput("a lead needs a conversation or a contact", field="conversation_id")
    if new.owner_id is not None and new.owner_id != actor.operator_id:
        if not actor.is_supervisor:
            raise Forbidden("only supervisors give a new lead to someone else", field="owner_id")
        await require_active_operator(session, new.owner_id, "owner_id")
    if new.pipeline_id is None:
        pipeline_id = await session.scalar(pipelines.default_pipeline_query())
        if pipeline_id is None:
            raise InvalidInput("there is no pipeline to put the lead in", field="pipeline_id")
    else:
        pipeline_id = new.pipeline_id
    pipeline = await pipelines.get_pipeline(session, pipeline_id, field="pipeline_id")
    if pipeline.archived:
        raise InvalidInput(f"pipeline {pipeline.name!r} is archived", field="pipeline_id")
    now = utcnow()
    lead = Lead(
        contact_id=contact_id,
        conversation_id=conversation.id if conversation is not None else None,
        title=_title(new.title),
        source=source,
        value=None if new.value is None else new.value.quantize(CENTS),
        currency=None if new.currency is None else new.currency.upper(),
        owner_id=new.owner_id if new.owner_id is not None else actor.operator_id,
        expected_close_on=new.expected_close_on,
        marketing={},
        created_at=now,
        updated_at=now,
    )
    await pipelines.enter_stage(
        session,
        actor,
        lead,
        pipeline,
        pipelines.first_open_stage(pipeline).key,
        reason=None,
        now=now,
    )
    await audit.record(
        session,
        actor,
        "lead.create",
        "lead",
        lead.id,
        {"conversation_id": lead.conversation_id, "pipeline_id": pipeline.id},
    )
    await announce(session, lead, created=True)
    await session.flush()
    return lead

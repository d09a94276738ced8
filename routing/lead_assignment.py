"""Step 7 of the routing pass: new leads given an owner by the lead rules.

The rules themselves are pure logic (`routing/leads.py`); this reads what they need from the
database (leads with neither an owner nor a decision yet, each candidate's leads today and
their last one, who is available, each lead's phone, form fields and marketing) and logs each
decision. Runs inside the pass (`routing.service.run_pass`), under its lock and in its
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import LEAD_UPDATED
from core.events import Event, emit
from core.leads import lead_labels
from core.models import (
    Identity,
    IdentityKind,
    Interaction,
    Lead,
    Operator,
    Presence,
    RoutingDecision,
)
from routing.leads import LeadFacts, assign_lead, operator_ids
from routing.setup import lead_rules

if TYPE_CHECKING:
    from routing.service import PassReport


async def assign_leads(session: AsyncSession, now: datetime, report: PassReport) -> None:
    rules = await lead_rules(session)
    if rules is None:
        return
    decided = exists().where(RoutingDecision.lead_id == Lead.id)
    leads = list(
        await session.scalars(
            select(Lead).where(Lead.owner_id.is_(None), ~decided).order_by(Lead.id).limit(500)
        )
    )
    if not leads:
        return
    candidates = operator_ids(rules)
    counts: dict[int, int] = {}
    last: dict[int, datetime] = {}
    given = await session.execute(
        select(RoutingDecision.operator_id, RoutingDecision.created_at).where(
            RoutingDecision.kind == "lead_assign", RoutingDecision.operator_id.in_(candidates)
        )
    )
    day_start = rules.day_start(now)
    for operator_id, given_at in given:
        if operator_id is None:
            continue
        if given_at >= day_start:
            counts[operator_id] = counts.get(operator_id, 0) + 1
        if operator_id not in last or given_at > last[operator_id]:
            last[operator_id] = given_at
    available = set(
        await session.scalars(
            select(Operator.id).where(
                Operator.id.in_(candidates),
                Operator.active.is_(True),
                Operator.presence == Presence.AVAILABLE,
            )
        )
    )
    for lead in leads:
        facts = await _lead_facts(session, lead)
        decision = assign_lead(facts, rules, counts, last, available, now)
        if decision.owner_id is not None:
            lead.owner_id = decision.owner_id
            counts[decision.owner_id] = counts.get(decision.owner_id, 0) + 1
            last[decision.owner_id] = now
            labels = await lead_labels(session, lead)
            await emit(
                session,
                Event(LEAD_UPDATED, {"lead": lead.id, "contact": lead.contact_id}, labels),
            )
        await routing_log.record(
            session,
            kind="lead_assign",
            lead_id=lead.id,
            operator_id=decision.owner_id,
            reason=decision.summary,
            details=decision.model_dump(mode="json"),
            at=now,
        )
        report.leads += 1


async def _lead_facts(session: AsyncSession, lead: Lead) -> LeadFacts:
    phone = await session.scalar(
        select(Identity.address)
        .where(Identity.contact_id == lead.contact_id, Identity.kind == IdentityKind.PHONE)
        .order_by(Identity.id)
        .limit(1)
    )
    fields: dict[str, Any] = {}
    if lead.interaction_id is not None:
        interaction = await session.get(Interaction, lead.interaction_id)
        if interaction is not None and isinstance(interaction.meta.get("fields"), dict):
            fields = interaction.meta["fields"]
    marketing = {str(k): str(v) for k, v in lead.marketing.items() if isinstance(v, str)}
    return LeadFacts(
        lead_id=lead.id, source=lead.source, phone=phone, form_fields=fields, marketing=marketing
    )

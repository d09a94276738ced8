"""New work: open conversations routing has not matched to a queue yet, with their facts.

The facts are gathered outside the routing lock, before the pass: `find_new_work` reads what
the database knows (channel, contact, the first inbound message, form fields, the IVR choice)
and `enrich` asks the enrichers (the ERP bridge), each within a timeout, never failing. The
pass (`routing.service.run_pass`) then matches the work to queues under the lock, skipping
work another process matched meanwhile.

VIPs first, on every channel: as new work enters its queue, `entry_priority` raises a VIP
contact's by `VIP_PRIORITY`. Whatever orders waiting work reads the conversation's priority
(the pass, the console's unassigned list, a caller's place in a phone queue), so this one
rule puts a VIP's later message or call before earlier ones of others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.enrichment import Enricher, WorkFacts
from core.models import Contact, Conversation, ConversationStatus, Direction, Interaction
from routing.config import MAX_PRIORITY
from routing.rules import TEXT_WINDOW, GatheredFacts, gather_facts

# A contact of this priority tier is a VIP; their new work enters its queue this much more
# urgent (an SLA escalation raises by 1 by default, a transferred call by 10).
VIP_TIER = "vip"
VIP_PRIORITY = 50


@dataclass(frozen=True)
class NewWork:
    conversation_id: int
    facts: GatheredFacts


NEW_WORK_BATCH = 500


async def find_new_work(session: AsyncSession, limit: int = NEW_WORK_BATCH) -> list[NewWork]:
    """Open conversations routing has not matched to a queue yet, with what is known of them."""
    rows = (
        await session.execute(
            select(Conversation, Contact)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(
                Conversation.queue_entered_at.is_(None),
                Conversation.status == ConversationStatus.OPEN,
            )
            .order_by(Conversation.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    firsts: dict[int, Interaction] = {}
    interactions = await session.scalars(
        select(Interaction)
        .where(
            Interaction.conversation_id.in_([conversation.id for conversation, _ in rows]),
            Interaction.direction == Direction.IN,
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    )
    for interaction in interactions:
        if interaction.conversation_id is not None:
            firsts[interaction.conversation_id] = interaction
    return [
        NewWork(
            conversation.id,
            GatheredFacts(_facts(conversation, contact, firsts.get(conversation.id))),
        )
        for conversation, contact in rows
    ]


def _facts(conversation: Conversation, contact: Contact, first: Interaction | None) -> WorkFacts:
    meta = first.meta if first is not None else {}
    form = meta.get("form") if isinstance(meta.get("form"), dict) else None
    raw_fields = meta.get("fields")
    fields: dict[str, object] = raw_fields if isinstance(raw_fields, dict) else {}
    ivr = meta.get("ivr_choice")
    return WorkFacts(
        contact_id=contact.id,
        channel=conversation.channel,
        language=contact.language,
        priority_tier=contact.priority_tier,
        subject=conversation.subject,
        text=(first.text if first is not None else "")[:TEXT_WINDOW],
        form_slug=str(form["slug"]) if form and isinstance(form.get("slug"), str) else None,
        form_fields=fields,
        ivr_choice=str(ivr) if isinstance(ivr, str | int) else None,
    )


def entry_priority(priority: int, facts: WorkFacts) -> tuple[int, str]:
    """The priority new work waits with in its queue, and why it differs ("" if it does
    not): a VIP contact's is raised by `VIP_PRIORITY`, at most to `MAX_PRIORITY`."""
    if facts.priority_tier.strip().lower() != VIP_TIER:
        return priority, ""
    raised = min(MAX_PRIORITY, priority + VIP_PRIORITY)
    return raised, f"VIP contact: priority {priority} -> {raised}, ahead of others"


async def enrich(
    work: Sequence[NewWork],
    enrichers: Sequence[Enricher],
    timeout: float,  # noqa: ASYNC109 - bounds each enricher; enrich itself never fails
) -> list[NewWork]:
    """Ask the enrichers (the ERP bridge) about each piece of new work; never raises."""
    if not enrichers:
        return list(work)
    return [
        replace(item, facts=await gather_facts(item.facts.facts, enrichers, timeout))
        for item in work
    ]

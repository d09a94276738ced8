"""New work: open conversations routing has not matched to a queue yet, with their facts.

The facts are gathered outside the routing lock, before the pass: `find_new_work` reads what
the database knows (channel, contact, the first inbound message, form fields, the IVR choice)
and `enrich` asks the enrichers (the ERP bridge), each within a timeout, never failing. The
pass (`routing.service.run_pass`) then matches the work to queues under the lock, skipping
work another process matched meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.enrichment import Enricher, WorkFacts
from core.models import Contact, Conversation, ConversationStatus, Direction, Interaction
from routing.rules import TEXT_WINDOW, GatheredFacts, gather_facts


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

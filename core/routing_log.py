"""The routing decision log and pending offers, as far as core's own services touch them.

The routing layer (the `routing` package) writes most decisions; core writes the ones people make
by hand (a supervisor's assignment), so every change of hands is in one history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import CONFIG_FILE, Actor
from core.event_types import CONVERSATION_ASSIGNED, OFFER_UPDATED, ROUTING_DECISION
from core.events import Event, emit
from core.models import Conversation, Offer, OfferStatus, Operator, Role, RoutingDecision
from core.visibility import Placement, audience_labels, conversation_labels

MAX_REASON = 2000
# Ingest marks a conversation the customer reopened, for routing to look at again.
REOPENED_NOTE = "reopened by the customer"
# pg_advisory_xact_lock key of routing ("omni" in ASCII); no other lock uses it.
ROUTING_LOCK_KEY = 0x6F6D6E69


async def lock_routing(session: AsyncSession) -> None:
    """Serialize changes of who holds work across server processes until the transaction ends.

    Routing passes, offers answered, transfers, manual assignment and status changes all take
    it, so a pass never decides on a load or a conversation another transaction is changing.
    On SQLite the database's single writer serializes them already.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUTING_LOCK_KEY})


async def record(
    session: AsyncSession,
    *,
    kind: str,
    reason: str,
    conversation_id: int | None = None,
    lead_id: int | None = None,
    queue_id: int | None = None,
    operator_id: int | None = None,
    details: dict[str, Any] | None = None,
    actor_label: str = "routing",
    at: datetime | None = None,
) -> RoutingDecision:
    decision = RoutingDecision(
        conversation_id=conversation_id,
        lead_id=lead_id,
        kind=kind,
        queue_id=queue_id,
        operator_id=operator_id,
        reason=reason[:MAX_REASON],
        details=details or {},
        actor_label=actor_label,
    )
    if at is not None:
        decision.created_at = at
    session.add(decision)
    if conversation_id is not None:
        # Heard by the queue and operator the decision names (core.visibility).
        labels = {"kind": kind, **audience_labels([Placement(queue_id, operator_id)])}
        await emit(session, Event(ROUTING_DECISION, {"conversation": conversation_id}, labels))
    return decision


@dataclass(frozen=True)
class ActorRef:
    """Who a stored actor label names, for showing people: `kind` is operator, token, cli,
    routing, sla, config or other; `name` is the token's (or, for other, the label)."""

    kind: str
    operator_id: int | None = None
    name: str | None = None


_PROCESSES = {"cli": "cli", "system": "routing", "routing": "routing", "sla": "sla"}


def actor_ref(label: str) -> ActorRef:
    """Read a label `actor_label` (or a process) wrote: "supervisor:3" is operator 3."""
    head, _, tail = label.partition(":")
    if tail.isdigit() and head in {role.value for role in Role}:
        return ActorRef("operator", operator_id=int(tail))
    if head == "token" and tail:
        return ActorRef("token", name=tail)
    if label == CONFIG_FILE.label:
        return ActorRef("config")
    if label in _PROCESSES:
        return ActorRef(_PROCESSES[label])
    return ActorRef("other", name=label)


async def operator_names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """The names of these operators, in one query."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Operator.id, Operator.name).where(Operator.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def actor_label(actor: Actor) -> str:
    """How a person shows in the decision log: "supervisor:3", "operator:7", "token:crm"."""
    if actor.operator_id is None:
        return actor.label
    return f"{actor.role}:{actor.operator_id}"


async def end_offer(
    session: AsyncSession, offer: Offer, status: OfferStatus, now: datetime
) -> None:
    """An offer is answered, times out or is withdrawn; the console hears of it."""
    offer.status = status
    offer.answered_at = now
    await emit(
        session,
        Event(
            OFFER_UPDATED,
            {
                "offer": offer.id,
                "conversation": offer.conversation_id,
                "operator": offer.operator_id,
            },
            {
                "status": str(status),
                **audience_labels([Placement(offer.queue_id, offer.operator_id)]),
            },
        ),
    )


async def withdraw_offers(
    session: AsyncSession, conversation_id: int, now: datetime, *, status: OfferStatus
) -> list[Offer]:
    """End the pending offer of a conversation (someone else decided); return what ended."""
    offers = list(
        await session.scalars(
            select(Offer).where(
                Offer.conversation_id == conversation_id, Offer.status == OfferStatus.PENDING
            )
        )
    )
    for offer in offers:
        await end_offer(session, offer, status, now)
    return offers


async def emit_assignment(
    session: AsyncSession, conversation: Conversation, *before: Placement
) -> None:
    """Tell consoles who holds the conversation now; whoever held it `before` hears it too."""
    ids = {"conversation": conversation.id, "contact": conversation.contact_id}
    if conversation.assignee_id is not None:
        ids["operator"] = conversation.assignee_id
    labels = {"channel": conversation.channel, **conversation_labels(conversation, *before)}
    await emit(session, Event(CONVERSATION_ASSIGNED, ids, labels))

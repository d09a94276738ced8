"""What people do by hand: offers accepted, rejected and listed, transfers, consoles seen.

Like a pass, everything here that changes who holds work (accepting an offer, rejecting one,
transferring) takes the routing lock first (see `routing/service.py`), so it never decides on
stale loads. `console_seen` undoes the automatic away the pass's presence housekeeping sets
when a console disconnects.

Times come in as `now`, so tests drive the clock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, routing_log
from core.audit import Actor
from core.conversations import add_note, get_conversation
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.models import (
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    Queue,
)
from core.operators import set_presence
from core.routing_log import lock_routing
from core.visibility import Placement
from routing.capacity import channel_kind, operator_snapshots
from routing.service import AUTO_AWAY_BUSY_REASON, AUTO_REASONS
from routing.setup import enter_queue


async def accept_offer(session: AsyncSession, actor: Actor, offer_id: int, now: datetime) -> Offer:
    """The offered operator takes the work: it is theirs from now on."""
    await lock_routing(session)
    offer = await _own_offer(session, actor, offer_id, now)
    conversation = await session.get(Conversation, offer.conversation_id, with_for_update=True)
    if conversation is None or conversation.assignee_id is not None:
        raise Conflict("this work is no longer waiting for you")
    conversation.assignee_id = offer.operator_id
    conversation.routing_note = None
    await session.execute(
        update(Operator).where(Operator.id == offer.operator_id).values(last_assigned_at=now)
    )
    await routing_log.end_offer(session, offer, OfferStatus.ACCEPTED, now)
    await routing_log.record(
        session,
        kind="accepted",
        conversation_id=conversation.id,
        queue_id=offer.queue_id,
        operator_id=offer.operator_id,
        reason=f"operator {offer.operator_id} accepted the offer",
        actor_label=routing_log.actor_label(actor),
        at=now,
    )
    await routing_log.emit_assignment(session, conversation)
    return offer


async def reject_offer(session: AsyncSession, actor: Actor, offer_id: int, now: datetime) -> Offer:
    """The offered operator declines: the next candidate gets the work."""
    await lock_routing(session)
    offer = await _own_offer(session, actor, offer_id, now)
    await routing_log.end_offer(session, offer, OfferStatus.REJECTED, now)
    await routing_log.record(
        session,
        kind="rejected",
        conversation_id=offer.conversation_id,
        queue_id=offer.queue_id,
        operator_id=offer.operator_id,
        reason=f"operator {offer.operator_id} rejected the offer",
        actor_label=routing_log.actor_label(actor),
        at=now,
    )
    return offer


async def _own_offer(session: AsyncSession, actor: Actor, offer_id: int, now: datetime) -> Offer:
    offer = await session.get(Offer, offer_id, with_for_update=True)
    # Another operator's offer does not exist as far as this operator can tell.
    if offer is None or offer.operator_id != actor.operator_id:
        raise NotFound(f"no offer {offer_id} for you")
    if offer.status != OfferStatus.PENDING:
        raise Conflict(f"the offer is {offer.status.replace('_', ' ')} already")
    if offer.expires_at <= now:
        raise Conflict("the offer has expired")
    return offer


async def list_offers(
    session: AsyncSession, actor: Actor, operator_id: int | None = None
) -> list[Offer]:
    """Pending offers: an operator's own; supervisors see anyone's (or all); a caller without
    an operator id (a token) none."""
    query = select(Offer).where(Offer.status == OfferStatus.PENDING).order_by(Offer.id)
    if not actor.is_supervisor:
        if operator_id not in (None, actor.operator_id):
            raise Forbidden("operators see only their own offers")
        if actor.operator_id is None:
            return []
        operator_id = actor.operator_id
    if operator_id is not None:
        query = query.where(Offer.operator_id == operator_id)
    return list(await session.scalars(query))


async def transfer(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    now: datetime,
    *,
    queue_id: int | None = None,
    operator_id: int | None = None,
    note: str | None = None,
) -> Conversation:
    """Hand a conversation to another queue (it waits there) or straight to an operator."""
    if (queue_id is None) == (operator_id is None):
        raise InvalidInput("give either queue_id or operator_id", field="queue_id")
    await lock_routing(session)
    conversation = await get_conversation(session, actor, conversation_id, for_update=True)
    if not actor.is_supervisor and conversation.assignee_id != actor.operator_id:
        raise Forbidden("operators may transfer only conversations assigned to them")
    if conversation.status == ConversationStatus.RESOLVED:
        raise Conflict("this conversation is resolved; reopen it before transferring it")
    previous = conversation.assignee_id
    held_by = Placement(conversation.queue_id, previous)
    by = routing_log.actor_label(actor)
    if note and note.strip():
        # Written while the author still holds the conversation (after it they may not see it).
        await add_note(session, actor, conversation.id, text=note)
    if queue_id is not None:
        queue = await session.get(Queue, queue_id)
        if queue is None:
            raise InvalidInput(f"no queue {queue_id}", field="queue_id")
        conversation.queue_id = queue.id
        conversation.assignee_id = None
        enter_queue(conversation, now)
        reason = f"transferred to queue {queue.name} by {actor.label}"
    else:
        assert operator_id is not None
        target = await session.get(Operator, operator_id)
        if target is None or not target.active:
            raise InvalidInput(f"no active operator {operator_id}", field="operator_id")
        if target.id == previous:
            raise InvalidInput("the conversation is assigned to them already", field="operator_id")
        room = await _room_note(session, target, conversation.channel)
        if room and not actor.is_supervisor:
            raise Conflict(f"operator {target.name} is {room}")
        conversation.assignee_id = target.id
        conversation.routing_note = None
        reason = f"transferred to operator {target.id} by {actor.label}" + (
            f" (over capacity: {room})" if room else ""
        )
    await routing_log.withdraw_offers(session, conversation.id, now, status=OfferStatus.CANCELLED)
    await session.flush()
    if note and note.strip():
        reason += f": {note.strip()[:200]}"
    await routing_log.record(
        session,
        kind="transfer",
        conversation_id=conversation.id,
        queue_id=conversation.queue_id,
        operator_id=conversation.assignee_id,
        reason=reason,
        details={"from_operator": previous, "to_queue": queue_id, "to_operator": operator_id},
        actor_label=by,
        at=now,
    )
    await audit.record(
        session,
        actor,
        "conversation.transfer",
        "conversation",
        conversation.id,
        {"from": previous, "queue": queue_id, "operator": operator_id},
    )
    await routing_log.emit_assignment(session, conversation, held_by)
    return conversation


async def _room_note(session: AsyncSession, operator: Operator, channel: str) -> str | None:
    """Why `operator` cannot take one more conversation of `channel`, or None if they can."""
    snapshot = (await operator_snapshots(session)).get(operator.id)
    if snapshot is None:
        return "not active"
    kind = channel_kind(channel)
    if snapshot.load_of(kind) >= snapshot.capacity_of(kind):
        return f"at capacity for {kind} ({snapshot.load_of(kind)}/{snapshot.capacity_of(kind)})"
    if snapshot.total_capacity is not None and snapshot.total_load >= snapshot.total_capacity:
        return f"at total capacity ({snapshot.total_load}/{snapshot.total_capacity})"
    return None


async def console_seen(session: AsyncSession, operator_id: int, now: datetime) -> None:
    """An operator's console is connected: refresh it, and undo an automatic away."""
    operator = await session.get(Operator, operator_id)
    if operator is None:
        return
    operator.console_seen_at = now
    if operator.presence_reason in AUTO_REASONS and operator.presence != Presence.AVAILABLE:
        back = (
            Presence.BUSY
            if operator.presence_reason == AUTO_AWAY_BUSY_REASON
            else Presence.AVAILABLE
        )
        await set_presence(session, operator, back, None, at=now)

"""Routing's invariants, checked from what the database holds (issue 4, acceptance item 9).

Each check returns the violations it finds, as sentences a failing test can print. They count
for themselves rather than asking the routing service: the load of an operator is what they
hold (open or pending conversations assigned to them) plus the offers they have not answered,
per channel kind (`routing.capacity.channel_kind`).

Which hold when:

- Always, after any committed change: `capacity_violations` (nobody above capacity for a
  channel kind, nor above their total cap; with `before_pass`, as work reopened by its customer
  counts only once a pass has looked at it) and `offer_violations` (at most one pending offer
  per conversation, and only while it is unassigned). Going over capacity by hand is allowed
  by design; the tests using these checks do not do it. On PostgreSQL, read them in one
  snapshot (REPEATABLE READ) while other transactions run, or a change between two queries
  counts twice.
- After a routing pass, or once routing is quiet:
  `settled_violations` (every pending offer stands: to an available operator, unexpired, for
  open unassigned work; no waiting work while a member of its queue is eligible for it, its
  room counted as above, not from the service's snapshots; no work awaiting a reply left with
  an operator offline past the requeue grace). Queues with sticky routing or business hours
  may rightly keep work waiting: they are not checked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Operator,
    Presence,
    Queue,
    QueueMember,
)
from routing.capacity import channel_kind
from routing.config import QueueConfigError, parse_queue_config
from routing.expressions import operator_attributes

HELD = (ConversationStatus.OPEN, ConversationStatus.PENDING)
REFUSED = (OfferStatus.REJECTED, OfferStatus.TIMED_OUT)


async def operator_work(
    session: AsyncSession, *, before_pass: bool = False
) -> dict[int, dict[str, list[str]]]:
    """What each operator holds or is offered, per channel kind, named ("conversation 4").

    `before_pass`: leave out work routing has still to look at (`queue_entered_at` unset: a
    conversation its customer reopened is re-decided by the next pass, which takes it from its
    operator if they have no room for it).
    """
    work: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    query = select(Conversation.assignee_id, Conversation.channel, Conversation.id).where(
        Conversation.assignee_id.is_not(None), Conversation.status.in_(HELD)
    )
    if before_pass:
        query = query.where(Conversation.queue_entered_at.is_not(None))
    held = await session.execute(query)
    for operator_id, channel, conversation_id in held:
        if operator_id is not None:
            work[operator_id][channel_kind(channel)].append(f"conversation {conversation_id}")
    offered = await session.execute(
        select(Offer.operator_id, Conversation.channel, Offer.id)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(Offer.status == OfferStatus.PENDING)
    )
    for operator_id, channel, offer_id in offered:
        work[operator_id][channel_kind(channel)].append(f"offer {offer_id}")
    return work


def _room(operator: Operator, kinds: Mapping[str, list[str]], kind: str) -> bool:
    if len(kinds.get(kind, ())) >= operator.capacity.get(kind, 0):
        return False
    total = sum(len(items) for items in kinds.values())
    return operator.total_capacity is None or total < operator.total_capacity


async def has_room_for(session: AsyncSession, operator_id: int, channel: str) -> bool:
    """Whether one more conversation of `channel` fits the operator's capacity."""
    operator = await session.get(Operator, operator_id)
    assert operator is not None
    return _room(operator, (await operator_work(session))[operator_id], channel_kind(channel))


async def capacity_violations(session: AsyncSession, *, before_pass: bool = False) -> list[str]:
    """Operators holding or being offered more than their capacity allows (`before_pass`: see
    `operator_work`)."""
    work = await operator_work(session, before_pass=before_pass)
    found = []
    for operator in await session.scalars(select(Operator).where(Operator.id.in_(list(work)))):
        kinds = work[operator.id]
        for kind, items in sorted(kinds.items()):
            limit = operator.capacity.get(kind, 0)
            if len(items) > limit:
                found.append(
                    f"operator {operator.id} has {len(items)} {kind} ({', '.join(items)})"
                    f" with a capacity of {limit}"
                )
        total = sum(len(items) for items in kinds.values())
        if operator.total_capacity is not None and total > operator.total_capacity:
            found.append(
                f"operator {operator.id} has {total} in all with a total capacity of"
                f" {operator.total_capacity}"
            )
    return found


async def offer_violations(session: AsyncSession) -> list[str]:
    """Conversations with two pending offers, or with a pending offer and an assignee."""
    pending = list(
        await session.execute(
            select(Offer.id, Offer.conversation_id, Offer.operator_id, Conversation.assignee_id)
            .join(Conversation, Conversation.id == Offer.conversation_id)
            .where(Offer.status == OfferStatus.PENDING)
        )
    )
    found = [
        f"conversation {conversation_id} has {count} pending offers"
        for conversation_id, count in Counter(row.conversation_id for row in pending).items()
        if count > 1
    ]
    found.extend(
        f"offer {row.id} to operator {row.operator_id} is pending, but conversation"
        f" {row.conversation_id} is assigned to operator {row.assignee_id}"
        for row in pending
        if row.assignee_id is not None
    )
    return found


async def accepted_offer_violations(session: AsyncSession) -> list[str]:
    """Conversations accepted twice, or held by someone other than who accepted them.

    Only meaningful while work changes hands by accepting offers alone (no transfers,
    requeues or manual assignments), as in the two-process test.
    """
    accepted = list(
        await session.execute(
            select(Offer.id, Offer.conversation_id, Offer.operator_id, Conversation.assignee_id)
            .join(Conversation, Conversation.id == Offer.conversation_id)
            .where(Offer.status == OfferStatus.ACCEPTED)
        )
    )
    found = [
        f"conversation {conversation_id} was accepted {count} times"
        for conversation_id, count in Counter(row.conversation_id for row in accepted).items()
        if count > 1
    ]
    found.extend(
        f"operator {row.operator_id} accepted offer {row.id}, but conversation"
        f" {row.conversation_id} is assigned to {row.assignee_id}"
        for row in accepted
        if row.assignee_id != row.operator_id
    )
    return found


async def settled_violations(
    session: AsyncSession, now: datetime, requeue_after_offline: timedelta
) -> list[str]:
    """What must be true once a routing pass has run (see the module docstring)."""
    return [
        *await _standing_offer_violations(session, now),
        *await stranded_work(session),
        *await _offline_holders(session, now, requeue_after_offline),
    ]


async def _standing_offer_violations(session: AsyncSession, now: datetime) -> list[str]:
    rows = await session.execute(
        select(Offer, Operator.presence, Operator.active, Conversation.status)
        .join(Operator, Operator.id == Offer.operator_id)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(Offer.status == OfferStatus.PENDING)
    )
    found = []
    for offer, presence, active, status in rows:
        where = f"offer {offer.id} of conversation {offer.conversation_id}"
        if presence != Presence.AVAILABLE or not active:
            found.append(f"{where} stands, but operator {offer.operator_id} is {presence}")
        if offer.expires_at <= now:
            found.append(f"{where} expired at {offer.expires_at:%H:%M:%S} and still stands")
        if status != ConversationStatus.OPEN:
            found.append(f"{where} stands, but the conversation is {status}")
    return found


async def stranded_work(session: AsyncSession) -> list[str]:
    """Work waiting in a queue while a member of the queue is eligible to take it.

    Eligible: active, available, with room for the work's channel kind (and in all), not
    having rejected or let time out an offer of it since it entered the queue, and having the
    queue's required skills.
    """
    pending_offer = (
        select(Offer.id)
        .where(Offer.conversation_id == Conversation.id, Offer.status == OfferStatus.PENDING)
        .exists()
    )
    waiting = list(
        await session.scalars(
            select(Conversation).where(
                Conversation.status == ConversationStatus.OPEN,
                Conversation.assignee_id.is_(None),
                Conversation.queue_id.is_not(None),
                Conversation.queue_entered_at.is_not(None),
                ~pending_offer,
            )
        )
    )
    if not waiting:
        return []
    members: dict[int, list[int]] = defaultdict(list)
    for queue_id, operator_id in await session.execute(
        select(QueueMember.queue_id, QueueMember.operator_id)
    ):
        members[queue_id].append(operator_id)
    queues = {queue.id: queue for queue in await session.scalars(select(Queue))}
    operators = {
        operator.id: operator
        for operator in await session.scalars(select(Operator).where(Operator.active.is_(True)))
    }
    work = await operator_work(session)
    refused: dict[int, set[int]] = defaultdict(set)
    for conversation_id, operator_id in await session.execute(
        select(Offer.conversation_id, Offer.operator_id)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(
            Offer.status.in_(REFUSED),
            Offer.answered_at >= Conversation.queue_entered_at,
            Offer.conversation_id.in_([conversation.id for conversation in waiting]),
        )
    ):
        refused[conversation_id].add(operator_id)
    found = []
    for conversation in waiting:
        assert conversation.queue_id is not None
        try:
            config = parse_queue_config(queues[conversation.queue_id].config)
        except QueueConfigError:
            continue
        if "sticky" in config.strategies or config.business_hours is not None:
            continue
        kind = channel_kind(conversation.channel)
        for operator_id in members.get(conversation.queue_id, []):
            operator = operators.get(operator_id)
            if operator is None or operator.presence != Presence.AVAILABLE:
                continue
            if not _room(operator, work[operator_id], kind):
                continue
            if operator_id in refused[conversation.id]:
                continue
            attributes = operator_attributes(
                operator.skills, operator.languages, {"channel": conversation.channel}
            )
            if config.required_skills and not config.required_skills.matches(attributes):
                continue
            found.append(
                f"conversation {conversation.id} ({kind}) waits in queue {conversation.queue_id}"
                f" while operator {operator_id} is eligible (holding {dict(work[operator_id])},"
                f" capacity {operator.capacity}); routing note: {conversation.routing_note}"
            )
            break
    return found


async def _offline_holders(
    session: AsyncSession, now: datetime, requeue_after_offline: timedelta
) -> list[str]:
    rows = await session.execute(
        select(Conversation.id, Operator.id)
        .join(Operator, Operator.id == Conversation.assignee_id)
        .where(
            Conversation.status == ConversationStatus.OPEN,
            Conversation.last_inbound_at.is_not(None),
            or_(
                Conversation.last_outbound_at.is_(None),
                Conversation.last_inbound_at > Conversation.last_outbound_at,
            ),
            Operator.presence == Presence.OFFLINE,
            Operator.presence_since <= now - requeue_after_offline,
        )
    )
    return [
        f"conversation {conversation_id} awaits a reply from operator {operator_id}, offline"
        f" for {requeue_after_offline} or longer"
        for conversation_id, operator_id in rows
    ]

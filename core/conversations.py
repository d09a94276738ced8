"""Conversations: reading them as `core.visibility` allows, and what operators do with them
(status, notes, assignment, replies through the outbox)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, channels, reply_rules, routing_log
from core.audit import Actor
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.event_types import CONVERSATION_ASSIGNED, CONVERSATION_UPDATED, INTERACTION_CREATED
from core.events import Event, emit
from core.html import html_to_text, sanitize_html
from core.ingest import MAX_TEXT
from core.mentions import notify_mentions
from core.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Identity,
    Interaction,
    InteractionKind,
    OfferStatus,
    Operator,
    OutboxItem,
    RoutingDecision,
    utcnow,
)
from core.outbox import enqueue
from core.pagination import DEFAULT_LIMIT, MAX_ID, keyset_page
from core.queues import queue_ids_of
from core.suggestions import index as suggestion_index
from core.visibility import (
    Placement,
    conversation_filter,
    conversation_labels,
    interaction_filter,
)

# The rule lives in core.visibility; this name stays for the callers that import it from here.
visible_to = conversation_filter

MAX_SNOOZE = timedelta(days=366 * 5)


async def get_conversation(
    session: AsyncSession, actor: Actor, conversation_id: int, *, for_update: bool = False
) -> Conversation:
    """The conversation if `actor` may see it; 404 if missing, 403 if not theirs to see.

    `for_update` locks the row until the transaction ends, so read-check-write sequences
    (assignment, status) cannot interleave with another transaction's on PostgreSQL.
    """
    conversation = await session.get(
        Conversation, conversation_id, with_for_update=for_update, populate_existing=for_update
    )
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    allowed = await session.scalar(
        select(Conversation.id).where(
            Conversation.id == conversation_id, conversation_filter(actor)
        )
    )
    if allowed is None:
        raise Forbidden("this conversation is not in your queues or assigned to you")
    return conversation


async def get_interaction(session: AsyncSession, actor: Actor, interaction_id: int) -> Interaction:
    """The interaction if `actor` may see it (`core.visibility`); 404 if missing, 403 if not."""
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"no interaction {interaction_id}")
    allowed = await session.scalar(
        select(Interaction.id).where(Interaction.id == interaction_id, interaction_filter(actor))
    )
    if allowed is None:
        if interaction.conversation_id is None:
            raise Forbidden("only supervisors see interactions outside conversations")
        raise Forbidden("this interaction is not in a conversation of your queues or yours")
    return interaction


async def get_attachment(
    session: AsyncSession, actor: Actor, interaction_id: int, index: int
) -> dict[str, Any]:
    """The stored attachment entry `index` of an interaction `actor` may see; 404 when there
    is none or it was too large to keep."""
    interaction = await get_interaction(session, actor, interaction_id)
    if not 0 <= index < len(interaction.attachments):
        raise NotFound(f"interaction {interaction_id} has no attachment {index}")
    entry = interaction.attachments[index]
    if not entry.get("key"):
        raise NotFound("this attachment was too large to keep; only its name and size are known")
    return entry


async def list_conversations(
    session: AsyncSession,
    actor: Actor,
    *,
    status: ConversationStatus | None = None,
    queue_id: int | None = None,
    assignee_id: int | Literal["me"] | None = None,
    unassigned: bool = False,
    contact_id: int | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[Conversation], str | None]:
    """Visible conversations, newest activity first, and the cursor of the next page."""
    if unassigned and assignee_id is not None:
        raise InvalidInput("give either assignee_id or unassigned, not both", field="unassigned")
    query = select(Conversation).where(conversation_filter(actor))
    if status is not None:
        query = query.where(Conversation.status == status)
    if queue_id is not None:
        query = query.where(Conversation.queue_id == queue_id)
    if assignee_id == "me":
        if actor.operator_id is None:
            raise InvalidInput(
                "only an operator has conversations of their own", field="assignee_id"
            )
        query = query.where(Conversation.assignee_id == actor.operator_id)
    elif assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    if unassigned:
        query = query.where(Conversation.assignee_id.is_(None))
    if contact_id is not None:
        query = query.where(Conversation.contact_id == contact_id)
    return await keyset_page(
        session,
        query,
        Conversation.updated_at,
        Conversation.id,
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )


async def list_interactions(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[Interaction], str | None]:
    """The conversation's interactions, oldest first."""
    await get_conversation(session, actor, conversation_id)
    query = select(Interaction).where(
        Interaction.conversation_id == conversation_id, interaction_filter(actor)
    )
    return await keyset_page(
        session,
        query,
        Interaction.occurred_at,
        Interaction.id,
        cursor=cursor,
        limit=limit,
        newest_first=False,
    )


async def list_outbox(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[OutboxItem], str | None]:
    """Delivery state of the conversation's outbound messages, newest first."""
    await get_conversation(session, actor, conversation_id)
    query = select(OutboxItem).where(OutboxItem.conversation_id == conversation_id)
    return await keyset_page(
        session,
        query,
        OutboxItem.created_at,
        OutboxItem.id,
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )


async def set_status(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    status: str,
    *,
    snoozed_until: datetime | None = None,
) -> Conversation:
    try:
        new_status = ConversationStatus(status)
    except ValueError:
        choices = ", ".join(ConversationStatus)
        raise InvalidInput(f"status must be one of {choices}", field="status") from None
    if new_status is ConversationStatus.SNOOZED:
        if snoozed_until is None:
            raise InvalidInput("snoozing needs snoozed_until", field="snoozed_until")
        if snoozed_until.tzinfo is None:
            raise InvalidInput("snoozed_until needs a time zone offset", field="snoozed_until")
        if snoozed_until <= utcnow():
            raise InvalidInput("snoozed_until must be in the future", field="snoozed_until")
        if snoozed_until > utcnow() + MAX_SNOOZE:
            raise InvalidInput("snoozed_until may be at most 5 years ahead", field="snoozed_until")
    elif snoozed_until is not None:
        raise InvalidInput("snoozed_until is only for status snoozed", field="snoozed_until")
    await routing_log.lock_routing(session)
    conversation = await get_conversation(session, actor, conversation_id, for_update=True)
    old_status = conversation.status
    if old_status == new_status and conversation.snoozed_until == snoozed_until:
        return conversation
    conversation.status = new_status
    conversation.snoozed_until = snoozed_until
    if new_status is ConversationStatus.OPEN:
        # Open again: if nobody holds it, it waits anew, to be explained anew (routing/scope.py).
        conversation.routing_note = None
    if new_status is not ConversationStatus.OPEN:
        # Work that no longer waits is no longer offered (the offer held a place in capacity).
        await routing_log.withdraw_offers(
            session, conversation.id, utcnow(), status=OfferStatus.CANCELLED
        )
    if new_status is ConversationStatus.RESOLVED:
        await mark_resolved(session, conversation, utcnow())
    else:
        conversation.resolved_at = None
        if old_status == ConversationStatus.RESOLVED:
            conversation.reopened_count += 1
            # Measured again when it is resolved again (routing/metrics.py).
            conversation.resolution_seconds = None
        await session.flush()
    details: dict[str, Any] = {"from": old_status, "to": new_status}
    if snoozed_until is not None:
        details["snoozed_until"] = snoozed_until.isoformat()
    await audit.record(
        session, actor, "conversation.status", "conversation", conversation.id, details
    )
    await emit(
        session,
        Event(
            CONVERSATION_UPDATED,
            {"conversation": conversation.id, "contact": conversation.contact_id},
            {
                "channel": conversation.channel,
                "status": new_status,
                **conversation_labels(conversation),
            },
        ),
    )
    return conversation


async def mark_resolved(session: AsyncSession, conversation: Conversation, now: datetime) -> None:
    """`conversation` is resolved (since `now`, unless it already was) and its replies become
    suggestions for the team, in this transaction: the one way a conversation is resolved,
    by an operator (`set_status`) or by the system (a phone call's own conversation when the
    call ends, channels/twilio/voice/store.py). The caller audits and announces it."""
    conversation.status = ConversationStatus.RESOLVED
    if conversation.resolved_at is None:
        conversation.resolved_at = now
    await session.flush()
    await suggestion_index.index_conversation(session, conversation.id)


async def assign(
    session: AsyncSession, actor: Actor, conversation_id: int, assignee_id: int | None
) -> Conversation:
    """Supervisors assign anyone active or unassign; an operator takes an unassigned
    conversation of their queues for themselves."""
    if assignee_id is not None and not 1 <= assignee_id <= MAX_ID:
        raise InvalidInput(f"no active operator {assignee_id}", field="assignee_id")
    await routing_log.lock_routing(session)
    conversation = await get_conversation(session, actor, conversation_id, for_update=True)
    previous = conversation.assignee_id
    if not actor.is_supervisor:
        if assignee_id is None or assignee_id != actor.operator_id:
            raise Forbidden("operators may only take conversations for themselves")
        if previous == assignee_id:
            return conversation
        if conversation.queue_id not in await queue_ids_of(session, assignee_id):
            raise Forbidden("operators may only take conversations of their own queues")
        if previous is not None:
            raise Conflict("this conversation is assigned to someone else already")
    elif previous == assignee_id:
        return conversation
    if assignee_id is not None:
        active = await session.scalar(
            select(Operator.id).where(Operator.id == assignee_id, Operator.active.is_(True))
        )
        if active is None:
            raise InvalidInput(f"no active operator {assignee_id}", field="assignee_id")
    conversation.assignee_id = assignee_id
    # Given by hand, or back to waiting anew: routing's last "why it waits" no longer holds
    # (unexplained work is what a routing pass always reads, routing/scope.py).
    conversation.routing_note = None
    now = utcnow()
    await routing_log.withdraw_offers(session, conversation.id, now, status=OfferStatus.CANCELLED)
    await routing_log.record(
        session,
        kind="manual_assign",
        conversation_id=conversation.id,
        queue_id=conversation.queue_id,
        operator_id=assignee_id,
        reason=_assignment_reason(actor, previous, assignee_id),
        actor_label=routing_log.actor_label(actor),
        at=now,
    )
    await session.flush()
    await audit.record(
        session,
        actor,
        "conversation.assign",
        "conversation",
        conversation.id,
        {"from": previous, "to": assignee_id},
    )
    ids = {"conversation": conversation.id, "contact": conversation.contact_id}
    if assignee_id is not None:
        ids["operator"] = assignee_id
    labels = {
        "channel": conversation.channel,
        **conversation_labels(conversation, Placement(conversation.queue_id, previous)),
    }
    await emit(session, Event(CONVERSATION_ASSIGNED, ids, labels))
    return conversation


def _assignment_reason(actor: Actor, previous: int | None, assignee_id: int | None) -> str:
    if assignee_id is None:
        return f"unassigned by {actor.label} (was operator {previous})"
    if actor.operator_id == assignee_id and not actor.is_supervisor:
        return f"taken by operator {assignee_id} from the queue"
    moved = f" from operator {previous}" if previous is not None else ""
    return f"assigned{moved} to operator {assignee_id} by {actor.label}"


async def list_routing(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[RoutingDecision], str | None]:
    """A conversation's routing history, oldest first (as get_conversation: 404 or 403)."""
    await get_conversation(session, actor, conversation_id)
    query = select(RoutingDecision).where(RoutingDecision.conversation_id == conversation_id)
    return await keyset_page(
        session,
        query,
        RoutingDecision.created_at,
        RoutingDecision.id,
        cursor=cursor,
        limit=limit,
        newest_first=False,
    )


async def add_note(
    session: AsyncSession, actor: Actor, conversation_id: int, *, text: str
) -> Interaction:
    """An internal note, seen by operators only."""
    if not text.strip():
        raise InvalidInput("a note needs text", field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput("the note is too long", field="text")
    conversation = await get_conversation(session, actor, conversation_id)
    note = Interaction(
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        kind=InteractionKind.NOTE,
        direction=Direction.INTERNAL,
        channel=conversation.channel,
        text=text,
        operator_id=actor.operator_id,
        occurred_at=utcnow(),
    )
    session.add(note)
    conversation.updated_at = note.occurred_at
    await session.flush()
    notified = await notify_mentions(session, actor, note)
    await audit.record(
        session,
        actor,
        "conversation.note",
        "conversation",
        conversation.id,
        {"interaction": note.id, **({"notified": notified} if notified else {})},
    )
    await _emit_interaction(session, note, conversation)
    return note


async def reply(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    *,
    text: str,
    html: str | None = None,
    channel: str | None = None,
    template: Mapping[str, Any] | None = None,
    media_urls: Sequence[str] = (),
    automatic: bool = False,
) -> tuple[Interaction, OutboxItem]:
    """Answer the customer: the outbound interaction and its outbox item commit together;
    a channel's sender delivers it afterwards. What the channel would refuse (an opted-out
    address, free text outside a reply window: core.reply_rules) is a 400 instead.

    `template` is a channel template the caller resolved (`name`, the `text` shown, the
    provider's fields), sent instead of free text; `media_urls` are public addresses of
    media the provider fetches (channels that send media). An `automatic` answer (a channel's
    greeting) is marked so in its meta and is no one's first response."""
    clean_html = sanitize_html(html) if html else None
    if template is not None:
        text = str(template.get("text") or template.get("name") or "")
    if not text.strip() and clean_html:
        text = html_to_text(clean_html)
    if not text.strip():
        raise InvalidInput("a reply needs text", field="text")
    if len(text) > MAX_TEXT or len(clean_html or "") > MAX_TEXT:
        raise InvalidInput("the reply is too long", field="text")
    conversation = await get_conversation(session, actor, conversation_id)
    reply_channel = channel or channels.catalog().reply_channel(conversation.channel)
    recipient = await _recipient(session, conversation.contact_id, reply_channel)
    await reply_rules.check_reply(
        session,
        conversation.contact_id,
        channels.catalog().sending(reply_channel),
        recipient,
        template=template is not None,
        media=bool(media_urls),
    )
    reply_facts = channels.catalog().sending(reply_channel)
    subject = _reply_subject(conversation.subject) if reply_facts.subjects else ""
    now = utcnow()
    message = Interaction(
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        kind=InteractionKind.MESSAGE,
        direction=Direction.OUT,
        channel=reply_channel,
        external_id=None,
        subject=subject,
        text=text,
        html=clean_html,
        operator_id=actor.operator_id,
        occurred_at=now,
        meta={
            **({"template": str(template.get("name", ""))} if template is not None else {}),
            **({"media_urls": list(media_urls)} if media_urls else {}),
            **({"automatic": True} if automatic else {}),
        },
    )
    session.add(message)
    if conversation.first_response_at is None and not automatic:
        conversation.first_response_at = now
    conversation.last_outbound_at = now
    conversation.updated_at = now
    await session.flush()
    item = await enqueue(
        session,
        channel=reply_channel,
        recipient=recipient,
        payload={
            "text": text,
            "html": clean_html,
            "subject": subject,
            "conversation_id": conversation.id,
            "interaction_id": message.id,
            # Lets channels thread the answer (email In-Reply-To, a quoted chat message).
            "in_reply_to": await _last_inbound_external_id(session, conversation.id, reply_channel),
            **({"template": dict(template)} if template is not None else {}),
            **({"media_urls": list(media_urls)} if media_urls else {}),
        },
        conversation_id=conversation.id,
        interaction_id=message.id,
    )
    await audit.record(
        session,
        actor,
        "conversation.reply",
        "conversation",
        conversation.id,
        {"interaction": message.id, "outbox": item.id, "channel": reply_channel},
    )
    await _emit_interaction(session, message, conversation)
    return message, item


async def _recipient(session: AsyncSession, contact_id: int, channel: str) -> str:
    """The contact's address on `channel`; their first one if they have several. A channel
    that cannot send is a 400 naming those that can."""
    kind = channels.catalog().sending(channel).identity_kind
    address = await session.scalar(
        select(Identity.address)
        .where(Identity.contact_id == contact_id, Identity.kind == kind)
        .order_by(Identity.id)
        .limit(1)
    )
    if address is None:
        raise InvalidInput(
            f"the contact has no {kind} address to reply on {channel}", field="channel"
        )
    return address


async def _last_inbound_external_id(
    session: AsyncSession, conversation_id: int, channel: str
) -> str | None:
    found: str | None = await session.scalar(
        select(Interaction.external_id)
        .where(
            Interaction.conversation_id == conversation_id,
            Interaction.channel == channel,
            Interaction.direction == Direction.IN,
            Interaction.external_id.is_not(None),
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    return found


def _reply_subject(subject: str) -> str:
    if not subject or subject.lower().startswith("re:"):
        return subject
    return f"Re: {subject}"[:500]


async def _emit_interaction(
    session: AsyncSession, interaction: Interaction, conversation: Conversation
) -> None:
    ids = {
        "contact": interaction.contact_id,
        "conversation": conversation.id,
        "interaction": interaction.id,
    }
    labels = {"channel": interaction.channel, **conversation_labels(conversation)}
    await emit(session, Event(INTERACTION_CREATED, ids, labels))

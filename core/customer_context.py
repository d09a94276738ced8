"""The customer's history in the defaults: what the console shows beside a conversation.

For the contact of a conversation the caller may see (`core.conversations.get_conversation`):

- **reply channel**: where the customer wrote last (their newest message, form or call in any
  of their conversations the caller may see), the channel a reply to it goes out on (a web
  form's is answered by email, a call's by SMS: `ChannelCatalog.reply_channel`) and whether
  it is another channel than this conversation's; and the **default channel** of a reply
  (`reply_default`): that one if one of the customer's addresses can be reached there, else
  the conversation's own. The reply API (when no channel is named), its reply options and
  the console's composer all default to it (`default_reply_channel`);
- **language** and **priority tier** of the contact (the language is kept by `core.ingest`,
  detected per message);
- **repeat**: order numbers the customer wrote in at least `REPEAT_MIN_MESSAGES` of their
  messages within the last `REPEAT_WINDOW` (by `core.clock`, the one clock), with how many
  messages, the first and the last; and how many messages they sent in that window. What an
  order number looks like is the caller's to say (`find_numbers`: the ERP bridge's pattern,
  passed in by the web layer, since core imports no other package);
- **open tasks** of the contact the caller may see (`core.visibility.task_filter`);
- **unresolved elsewhere**: the contact's other conversations that are not resolved, on any
  channel, that the caller may see (`conversation_filter`), latest activity first.

Every read goes through `core.visibility`: messages (`interaction_filter`), conversations and
tasks. Messages a machine sent for the customer (auto-replies, bounces: `meta["machine_made"]`,
set by ingest) and interactions of other kinds (internal notes, events from other systems)
count for nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import channels
from core.audit import Actor
from core.clock import utcnow
from core.conversations import get_conversation
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Task,
)
from core.reply_rules import addresses_of
from core.visibility import conversation_filter, interaction_filter, task_filter

REPEAT_WINDOW = timedelta(days=7)
# An order number is a repeat from its second message.
REPEAT_MIN_MESSAGES = 2
# The newest messages of the window searched for order numbers, and how much of each.
MAX_SCANNED = 500
SCANNED_CHARS = 4000
# Open tasks and unresolved conversations listed (a contact rarely has this many).
MAX_LISTED = 20
# What the customer sends: a message, a form, a call.
CUSTOMER_KINDS = (InteractionKind.MESSAGE, InteractionKind.FORM, InteractionKind.CALL)

# The order numbers in a text, as the ERP writes them (the caller's pattern).
NumberFinder = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class ReplyChannel:
    """Where the customer wrote last, and where a reply to it goes out."""

    channel: str
    conversation_id: int
    at: datetime
    send_on: str
    differs: bool


@dataclass(frozen=True)
class RepeatedOrder:
    number: str
    messages: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class Repeat:
    since: datetime
    messages: int
    orders: tuple[RepeatedOrder, ...]


@dataclass(frozen=True)
class OpenTask:
    id: int
    kind: str
    due_at: datetime
    overdue: bool
    conversation_id: int | None


@dataclass(frozen=True)
class Unresolved:
    id: int
    channel: str
    status: str
    subject: str
    last_activity_at: datetime
    same_channel: bool


@dataclass(frozen=True)
class CustomerContext:
    conversation_id: int
    contact_id: int
    channel: str
    language: str | None
    priority_tier: str
    reply_channel: ReplyChannel | None
    default_channel: str
    repeat: Repeat
    open_tasks: tuple[OpenTask, ...]
    unresolved_elsewhere: tuple[Unresolved, ...]


# --- pure parts ---------------------------------------------------------------------------------


def repeated_orders(
    messages: Iterable[tuple[datetime, str]],
    find_numbers: NumberFinder,
    minimum: int = REPEAT_MIN_MESSAGES,
) -> list[RepeatedOrder]:
    """The order numbers written in at least `minimum` of `messages` (when, text), each
    counted once per message; most messages first, then the latest."""
    seen: dict[str, list[datetime]] = {}
    for at, text in messages:
        for number in dict.fromkeys(find_numbers(text)):
            seen.setdefault(number, []).append(at)
    found = [
        RepeatedOrder(number, len(times), min(times), max(times))
        for number, times in seen.items()
        if len(times) >= minimum
    ]
    return sorted(found, key=lambda order: (-order.messages, -order.last_at.timestamp()))


def reply_default(
    conversation_channel: str, last: ReplyChannel | None, addresses: Mapping[str, str]
) -> str:
    """The channel a reply goes out on when none is chosen: the one answering where the
    customer wrote last (`last.send_on`) if they have an address it sends to (`addresses`:
    the contact's, by kind), else the one answering the conversation's own channel."""
    own = channels.catalog().reply_channel(conversation_channel)
    if last is None or last.send_on == own:
        return own
    facts = channels.catalog().get(last.send_on)
    if facts is None or not facts.can_send or (facts.identity_kind or "") not in addresses:
        return own
    return last.send_on


def last_activity(conversation: Conversation) -> datetime:
    """When the customer or the team last wrote in `conversation` (else when it began)."""
    moments = [
        moment
        for moment in (conversation.last_inbound_at, conversation.last_outbound_at)
        if moment is not None
    ]
    return max(moments, default=conversation.created_at)


def _written_by_the_customer(actor: Actor) -> list[ColumnElement[bool]]:
    """Conditions for the customer's own messages, forms and calls the caller may see."""
    machine_made = Interaction.meta["machine_made"].as_boolean()
    return [
        Interaction.direction == Direction.IN,
        Interaction.kind.in_(CUSTOMER_KINDS),
        Interaction.conversation_id.is_not(None),
        func.coalesce(machine_made, false()).is_(false()),
        interaction_filter(actor),
    ]


# --- queries ------------------------------------------------------------------------------------


async def customer_context(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    find_numbers: NumberFinder,
    now: datetime | None = None,
) -> CustomerContext:
    """The history of the conversation's customer that `actor` may see (module docstring);
    NotFound or Forbidden like `get_conversation`."""
    conversation = await get_conversation(session, actor, conversation_id)
    contact = await session.get(Contact, conversation.contact_id)
    now = now or utcnow()
    last = await reply_channel(session, actor, conversation)
    addresses = await addresses_of(session, conversation.contact_id)
    return CustomerContext(
        conversation_id=conversation.id,
        contact_id=conversation.contact_id,
        channel=conversation.channel,
        language=contact.language if contact is not None else None,
        priority_tier=contact.priority_tier if contact is not None else "standard",
        reply_channel=last,
        default_channel=reply_default(conversation.channel, last, addresses),
        repeat=await repeat(session, actor, conversation.contact_id, find_numbers, now),
        open_tasks=await open_tasks(session, actor, conversation.contact_id, now),
        unresolved_elsewhere=await unresolved_elsewhere(session, actor, conversation),
    )


async def reply_channel(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> ReplyChannel | None:
    """Where the customer wrote last, among what `actor` may see; None if nowhere."""
    row = (
        await session.execute(
            select(Interaction.channel, Interaction.conversation_id, Interaction.occurred_at)
            .where(
                Interaction.contact_id == conversation.contact_id,
                *_written_by_the_customer(actor),
            )
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.conversation_id is None:
        return None
    return ReplyChannel(
        channel=row.channel,
        conversation_id=row.conversation_id,
        at=row.occurred_at,
        send_on=channels.catalog().reply_channel(row.channel),
        differs=row.channel != conversation.channel,
    )


async def default_reply_channel(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> str:
    """The channel a reply to `conversation` goes out on when none is chosen (`reply_default`,
    over what `actor` may see)."""
    last = await reply_channel(session, actor, conversation)
    return reply_default(
        conversation.channel, last, await addresses_of(session, conversation.contact_id)
    )


async def repeat(
    session: AsyncSession,
    actor: Actor,
    contact_id: int,
    find_numbers: NumberFinder,
    now: datetime,
) -> Repeat:
    """The customer's messages within `REPEAT_WINDOW` before `now`, and the order numbers
    they wrote in more than one of them (an email's subject counts as written)."""
    since = now - REPEAT_WINDOW
    conditions = [
        Interaction.contact_id == contact_id,
        Interaction.occurred_at > since,
        *_written_by_the_customer(actor),
    ]
    count = await session.scalar(select(func.count()).select_from(Interaction).where(*conditions))
    rows = (
        await session.execute(
            select(
                Interaction.occurred_at,
                Interaction.kind,
                Interaction.subject,
                func.substr(Interaction.text, 1, SCANNED_CHARS).label("start"),
            )
            .where(*conditions)
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(MAX_SCANNED)
        )
    ).all()
    # A form's subject is the form's title, not the customer's words.
    texts = [
        (
            row.occurred_at,
            f"{row.subject}\n{row.start or ''}"
            if row.kind == InteractionKind.MESSAGE
            else row.start or "",
        )
        for row in rows
    ]
    return Repeat(since, int(count or 0), tuple(repeated_orders(texts, find_numbers)))


async def open_tasks(
    session: AsyncSession, actor: Actor, contact_id: int, now: datetime
) -> tuple[OpenTask, ...]:
    """The contact's open tasks `actor` may see, soonest due first."""
    tasks = await session.scalars(
        select(Task)
        .where(Task.contact_id == contact_id, Task.done_at.is_(None), task_filter(actor))
        .order_by(Task.due_at, Task.id)
        .limit(MAX_LISTED)
    )
    return tuple(
        OpenTask(task.id, task.kind, task.due_at, task.due_at < now, task.conversation_id)
        for task in tasks
    )


async def unresolved_elsewhere(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> tuple[Unresolved, ...]:
    """The contact's other conversations, not resolved, `actor` may see; latest first."""
    others = await session.scalars(
        select(Conversation)
        .where(
            Conversation.contact_id == conversation.contact_id,
            Conversation.id != conversation.id,
            Conversation.status != ConversationStatus.RESOLVED,
            conversation_filter(actor),
        )
        .order_by(Conversation.id.desc())
        .limit(MAX_LISTED)
    )
    found = [
        Unresolved(
            id=other.id,
            channel=other.channel,
            status=other.status,
            subject=other.subject,
            last_activity_at=last_activity(other),
            same_channel=other.channel == conversation.channel,
        )
        for other in others
    ]
    return tuple(sorted(found, key=lambda item: (item.last_activity_at, item.id), reverse=True))

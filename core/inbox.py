"""The console's inbox: an operator's sections of conversations, read markers, unread counts,
and the HTML view of a message.

Sections, each bounded by a limit and counted in full:

- ``mine``: assigned to the operator, status open or pending; newest activity first.
- ``queues``: open or pending in the queues the operator works, held by a colleague (or
  pending with nobody); newest activity first. Not the operator's own (those are ``mine``)
  nor the waiting ones (``unassigned``): the sections never repeat a conversation. (It used to
  be "everything in my queues", which repeated "Assigned to me" and the waiting ones.)
- ``unassigned``: open and unassigned in the operator's queues (snoozed ones are not open);
  highest priority first, then the longest waiting (``queue_entered_at``, else ``created_at``).

The sections are views of `core.views` (scopes ``mine``, ``queues``, ``unassigned``); each
answers a cursor for the rest, so nothing is cut off. Snoozed and resolved conversations are
in the views with those statuses.

A read marker holds, per operator and conversation, the id of the newest interaction when the
operator last marked it read. Unread are the inbound interactions (customer messages, forms,
calls) with a higher id; the operator's own replies and notes never count. Ids grow with
insertion, so a message imported late with an old date still counts as unread.

Every section holds only conversations the operator may see (`core.visibility`), and the HTML
view only interactions they may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import views
from core.audit import Actor
from core.conversations import get_conversation, get_interaction
from core.errors import InvalidInput, NotFound
from core.event_types import CONVERSATION_READ
from core.events import Event, emit
from core.html import sanitize_html
from core.models import (
    Contact,
    Conversation,
    Direction,
    Interaction,
    ReadMarker,
    utcnow,
)
from core.sql import insert_ignoring_conflicts
from core.views import ViewFilters

DEFAULT_SECTION_LIMIT = 50
MAX_SECTION_LIMIT = 200
PREVIEW_CHARS = 160
SECTIONS = ("mine", "queues", "unassigned")


@dataclass(frozen=True)
class InboxItem:
    conversation: Conversation
    contact_name: str
    preview: str
    preview_direction: str | None
    last_interaction_at: datetime | None
    unread: int


@dataclass(frozen=True)
class InboxSection:
    items: list[InboxItem]
    # Every conversation of the section, and those with something unread (not only the shown).
    total: int
    unread_conversations: int
    # The rest of the section: GET /api/v1/views/conversations?scope=<section>&cursor=...
    next_cursor: str | None = None


def _operator_id(actor: Actor) -> int:
    if actor.operator_id is None:
        raise InvalidInput("only a signed-in operator has an inbox")
    return actor.operator_id


SECTION_FILTERS: dict[str, ViewFilters] = {
    "mine": ViewFilters(scope="mine", status="active"),
    "queues": ViewFilters(scope="queues", status="active"),
    "unassigned": ViewFilters(scope="unassigned"),
}


def _has_unread(operator_id: int) -> ColumnElement[bool]:
    marker = (
        select(ReadMarker.last_read_interaction_id)
        .where(
            ReadMarker.operator_id == operator_id,
            ReadMarker.conversation_id == Conversation.id,
        )
        # Two levels down from the conversation query, so correlated by name.
        .correlate(Conversation)
        .scalar_subquery()
    )
    return exists().where(
        Interaction.conversation_id == Conversation.id,
        Interaction.direction == Direction.IN,
        Interaction.id > func.coalesce(marker, 0),
    )


async def inbox(
    session: AsyncSession, actor: Actor, *, limit: int = DEFAULT_SECTION_LIMIT
) -> dict[str, InboxSection]:
    """The actor's three inbox sections, at most `limit` conversations each."""
    operator_id = _operator_id(actor)
    if not 1 <= limit <= MAX_SECTION_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_SECTION_LIMIT}", field="limit")
    sections: dict[str, InboxSection] = {}
    dialect = session.get_bind().dialect.name
    for name in SECTIONS:
        filters = SECTION_FILTERS[name]
        rows, next_cursor = await views.list_view(session, actor, filters, cursor=None, limit=limit)
        where = and_(*views.conditions(dialect, actor, filters))
        total = await session.scalar(select(func.count()).select_from(Conversation).where(where))
        unread_conversations = await session.scalar(
            select(func.count()).select_from(Conversation).where(where, _has_unread(operator_id))
        )
        sections[name] = InboxSection(
            items=await describe(session, operator_id, rows),
            total=total or 0,
            unread_conversations=unread_conversations or 0,
            next_cursor=next_cursor,
        )
    return sections


async def describe(
    session: AsyncSession, operator_id: int, rows: list[Conversation]
) -> list[InboxItem]:
    """Contact names, the last message and unread counts of these conversations."""
    if not rows:
        return []
    ids = [conversation.id for conversation in rows]
    # (A Result has keys(), so dict() would take it for a mapping.)
    names = {
        row[0]: row[1]
        for row in await session.execute(
            select(Contact.id, Contact.display_name).where(
                Contact.id.in_({conversation.contact_id for conversation in rows})
            )
        )
    }
    counts = await unread_counts(session, operator_id, ids)
    previews = await _previews(session, ids)
    items = []
    for conversation in rows:
        text, direction, at = previews.get(conversation.id, ("", None, None))
        items.append(
            InboxItem(
                conversation=conversation,
                contact_name=names.get(conversation.contact_id, ""),
                preview=text,
                preview_direction=direction,
                last_interaction_at=at,
                unread=counts.get(conversation.id, 0),
            )
        )
    return items


async def unread_counts(
    session: AsyncSession, operator_id: int, conversation_ids: list[int]
) -> dict[int, int]:
    """Unread inbound interactions per conversation (conversations with none are left out)."""
    if not conversation_ids:
        return {}
    marker = and_(
        ReadMarker.operator_id == operator_id,
        ReadMarker.conversation_id == Interaction.conversation_id,
    )
    rows = await session.execute(
        select(Interaction.conversation_id, func.count(Interaction.id))
        .outerjoin(ReadMarker, marker)
        .where(
            Interaction.conversation_id.in_(conversation_ids),
            Interaction.direction == Direction.IN,
            Interaction.id > func.coalesce(ReadMarker.last_read_interaction_id, 0),
        )
        .group_by(Interaction.conversation_id)
    )
    return {conversation_id: count for conversation_id, count in rows if conversation_id}


async def _previews(
    session: AsyncSession, conversation_ids: list[int]
) -> dict[int, tuple[str, str | None, datetime | None]]:
    """The latest interaction seen by the customer (not a note) of each conversation."""
    ranked = (
        select(
            Interaction.conversation_id,
            func.substr(Interaction.text, 1, PREVIEW_CHARS * 4).label("text"),
            Interaction.direction,
            Interaction.occurred_at,
            func.row_number()
            .over(
                partition_by=Interaction.conversation_id,
                order_by=(Interaction.occurred_at.desc(), Interaction.id.desc()),
            )
            .label("rank"),
        )
        .where(
            Interaction.conversation_id.in_(conversation_ids),
            Interaction.direction != Direction.INTERNAL,
        )
        .subquery()
    )
    rows = await session.execute(
        select(
            ranked.c.conversation_id, ranked.c.text, ranked.c.direction, ranked.c.occurred_at
        ).where(ranked.c.rank == 1)
    )
    previews: dict[int, tuple[str, str | None, datetime | None]] = {}
    for conversation_id, text, direction, occurred_at in rows:
        previews[conversation_id] = (_preview(text or ""), direction, occurred_at)
    return previews


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


async def mark_read(session: AsyncSession, actor: Actor, conversation_id: int) -> ReadMarker:
    """Mark the conversation read up to its newest interaction; markers only move forward."""
    operator_id = _operator_id(actor)
    await get_conversation(session, actor, conversation_id)
    newest = await session.scalar(
        select(func.max(Interaction.id)).where(Interaction.conversation_id == conversation_id)
    )
    now = utcnow()
    newest = newest or 0
    await session.execute(
        insert_ignoring_conflicts(session, ReadMarker, ["operator_id", "conversation_id"]).values(
            operator_id=operator_id,
            conversation_id=conversation_id,
            last_read_interaction_id=newest,
            read_at=now,
        )
    )
    await session.execute(
        update(ReadMarker)
        .where(
            ReadMarker.operator_id == operator_id,
            ReadMarker.conversation_id == conversation_id,
            ReadMarker.last_read_interaction_id < newest,
        )
        .values(last_read_interaction_id=newest, read_at=now)
        .execution_options(synchronize_session=False)
    )
    marker = await session.get(ReadMarker, (operator_id, conversation_id), populate_existing=True)
    if marker is None:
        raise RuntimeError("the read marker inserted above is gone")
    await emit(
        session,
        Event(CONVERSATION_READ, {"conversation": conversation_id, "operator": operator_id}),
    )
    return marker


async def interaction_html(session: AsyncSession, actor: Actor, interaction_id: int) -> str:
    """The interaction's HTML, sanitized once more on the way out (it was on the way in), for
    those who may see the interaction (403 otherwise); 404 if it has none."""
    interaction = await get_interaction(session, actor, interaction_id)
    if not interaction.html:
        raise NotFound(f"interaction {interaction_id} has no HTML; its text is all there is")
    return sanitize_html(interaction.html)

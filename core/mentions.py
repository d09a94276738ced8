"""@mentions in internal notes, and the notifications they leave for operators.

How to mention: ``@`` followed by an operator's handle, which is the local part of their sign-in
email (``@anna`` for anna@example.com), case-blind. Where two active operators share a local
part (anna@example.com and anna@example.org), write the whole address: ``@anna@example.org``.
An ``@`` inside a word (an email address quoted in the note, ``jane@shop.example``) is no
mention, and a handle that matches no active operator is plain text.

Who is notified: only operators who may see the conversation (supervisors and admins, its
assignee, the members of its queue). Mentioning someone else does not open the conversation to
them; the note says so instead: its ``meta["mentions"]`` lists every operator mentioned with
``notified`` and, when not notified, the ``reason`` (no access, or the author themself), so the
console can tell the author. Each notified operator gets one `Notification` row and an
``operator.mentioned`` event (ids operator, conversation, interaction).

The notifications list holds task reminders too (kind ``task_due``, left by routing when a
task an operator owns falls due; routing/tasks.py): they have a ``task_id`` and no
interaction, and show the task's note (or, without one, the contact's name) as their
excerpt. A mention is listed while its reader may see the note (`conversation_filter`,
`interaction_filter`); a reminder while they may see the task (`task_filter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import InvalidInput, NotFound
from core.event_types import NOTIFICATION_READ, OPERATOR_MENTIONED
from core.events import Event, emit
from core.models import (
    Contact,
    Conversation,
    Interaction,
    Notification,
    Operator,
    Role,
    Task,
    utcnow,
)
from core.visibility import conversation_filter, interaction_filter, task_filter

# At most this many distinct handles of one note are looked up; a note is no mailing list.
MAX_MENTIONS = 20
EXCERPT_CHARS = 200
_MENTION = re.compile(
    r"(?<![\w.%+@-])@([\w.%+-]+(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?)", re.UNICODE
)


def handles_in(text: str) -> list[str]:
    """The handles mentioned in `text`, lower-cased, each once, in order of appearance."""
    found = (match.group(1).rstrip(".").lower() for match in _MENTION.finditer(text))
    return list(dict.fromkeys(handle for handle in found if handle))[:MAX_MENTIONS]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def resolve_handles(session: AsyncSession, handles: list[str]) -> dict[str, Operator]:
    """Each handle that names exactly one active operator, with that operator."""
    if not handles:
        return {}
    conditions = []
    for handle in handles:
        if "@" in handle:
            conditions.append(Operator.email == handle)
        else:
            conditions.append(Operator.email.like(f"{_escape_like(handle)}@%", escape="\\"))
    candidates = list(
        await session.scalars(select(Operator).where(Operator.active.is_(True), or_(*conditions)))
    )
    resolved: dict[str, Operator] = {}
    for handle in handles:
        if "@" in handle:
            matches = [op for op in candidates if op.email == handle]
        else:
            matches = [op for op in candidates if op.email.rpartition("@")[0] == handle]
        if len(matches) == 1:
            resolved[handle] = matches[0]
    return resolved


async def can_see(session: AsyncSession, operator: Operator, conversation_id: int) -> bool:
    actor = Actor(f"operator:{operator.email}", Role(operator.role), operator.id)
    found = await session.scalar(
        select(Conversation.id).where(
            Conversation.id == conversation_id, conversation_filter(actor)
        )
    )
    return found is not None


async def notify_mentions(session: AsyncSession, actor: Actor, note: Interaction) -> list[int]:
    """Notify the operators `note` mentions who may see its conversation; record every
    mention on the note's meta. Returns the ids of the operators notified."""
    if note.conversation_id is None:
        return []
    resolved = await resolve_handles(session, handles_in(note.text))
    mentions: list[dict[str, Any]] = []
    notified: list[int] = []
    for handle, operator in resolved.items():
        if any(entry["operator_id"] == operator.id for entry in mentions):
            continue  # @anna and @anna@example.com in one note: one mention
        entry: dict[str, Any] = {"operator_id": operator.id, "handle": handle, "notified": False}
        if operator.id == actor.operator_id:
            entry["reason"] = "you mentioned yourself"
        elif not await can_see(session, operator, note.conversation_id):
            entry["reason"] = f"{operator.name} cannot see this conversation (not in its queue)"
        else:
            entry["notified"] = True
            notified.append(operator.id)
        mentions.append(entry)
    if not mentions:
        return []
    note.meta = {**note.meta, "mentions": mentions}
    for operator_id in notified:
        session.add(
            Notification(
                operator_id=operator_id,
                kind="mention",
                conversation_id=note.conversation_id,
                interaction_id=note.id,
                author_id=actor.operator_id,
                created_at=note.occurred_at,
            )
        )
    await session.flush()
    for operator_id in notified:
        await emit(
            session,
            Event(
                OPERATOR_MENTIONED,
                {
                    "operator": operator_id,
                    "conversation": note.conversation_id,
                    "interaction": note.id,
                },
            ),
        )
    return notified


@dataclass(frozen=True)
class NotificationView:
    """A notification with what the console shows about it."""

    notification: Notification
    excerpt: str
    author_name: str | None
    contact_name: str
    conversation_subject: str


def _operator_id(actor: Actor) -> int:
    if actor.operator_id is None:
        raise InvalidInput("only a signed-in operator has notifications")
    return actor.operator_id


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _visible(actor: Actor) -> ColumnElement[bool]:
    """The notifications `actor` may still see: a mention with its note, a reminder with its
    task (the query joins both, outer)."""
    return or_(
        and_(
            Notification.interaction_id.is_not(None),
            Interaction.id.is_not(None),
            conversation_filter(actor),
            interaction_filter(actor),
        ),
        and_(Notification.task_id.is_not(None), Task.id.is_not(None), task_filter(actor)),
    )


def _joined(query: Select[Any]) -> Select[Any]:
    return (
        query.join(Conversation, Conversation.id == Notification.conversation_id)
        .outerjoin(Interaction, Interaction.id == Notification.interaction_id)
        .outerjoin(Task, Task.id == Notification.task_id)
        .join(Contact, Contact.id == Conversation.contact_id)
    )


def _views(actor: Actor, operator_id: int) -> Select[Notification, str, str | None, str, str]:
    """Notifications of `operator_id` that `actor` may still see, with what the console shows
    about each: a mention's note, a reminder's task note or else the contact's name."""
    task_excerpt = case(
        (
            func.length(func.coalesce(Task.note, "")) > 0,
            func.substr(Task.note, 1, EXCERPT_CHARS * 2),
        ),
        else_=Contact.display_name,
    )
    excerpt = case(
        (
            Notification.interaction_id.is_not(None),
            func.substr(Interaction.text, 1, EXCERPT_CHARS * 2),
        ),
        else_=task_excerpt,
    )
    query = select(
        Notification,
        excerpt,
        Operator.name,
        Contact.display_name,
        Conversation.subject,
    )
    return (
        _joined(query)
        .outerjoin(Operator, Operator.id == Notification.author_id)
        .where(Notification.operator_id == operator_id, _visible(actor))
    )


def _view(row: Row[Notification, str, str | None, str, str]) -> NotificationView:
    return NotificationView(row[0], _excerpt(row[1] or ""), row[2], row[3], row[4])


async def list_notifications(
    session: AsyncSession, actor: Actor, *, unread_only: bool = False, limit: int = 50
) -> tuple[list[NotificationView], int]:
    """The actor's notifications (of conversations they may still see), unread first, then
    newest first; and how many are unread."""
    operator_id = _operator_id(actor)
    unread = Notification.read_at.is_(None)
    query = _views(actor, operator_id)
    if unread_only:
        query = query.where(unread)
    query = query.order_by(
        case((unread, 0), else_=1), Notification.created_at.desc(), Notification.id.desc()
    ).limit(limit)
    views = [_view(row) for row in await session.execute(query)]
    unread_count = await session.scalar(
        _joined(select(func.count()).select_from(Notification)).where(
            Notification.operator_id == operator_id, _visible(actor), unread
        )
    )
    return views, unread_count or 0


async def mark_read(session: AsyncSession, actor: Actor, notification_id: int) -> NotificationView:
    """Mark one of the actor's notifications read (again: no change); others' are not found,
    and so are those of conversations the actor may no longer see."""
    operator_id = _operator_id(actor)
    row = (
        await session.execute(_views(actor, operator_id).where(Notification.id == notification_id))
    ).first()
    if row is None:
        raise NotFound(f"no notification {notification_id}")
    notification = row[0]
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.flush()
        await emit(
            session,
            Event(NOTIFICATION_READ, {"operator": operator_id, "notification": notification.id}),
        )
    return _view(row)


async def mark_all_read(session: AsyncSession, actor: Actor) -> int:
    """Mark every unread notification of the actor read; how many were."""
    operator_id = _operator_id(actor)
    now: datetime = utcnow()
    result = await session.execute(
        update(Notification)
        .where(Notification.operator_id == operator_id, Notification.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        await emit(session, Event(NOTIFICATION_READ, {"operator": operator_id}))
    return count

"""Lists of conversations ("views"): a scope, a status and filters, paged with a cursor; and
the views operators save for themselves.

Scopes (relative to the operator asking):

- ``all``: every conversation the caller may see (`core.visibility`).
- ``mine``: assigned to the caller.
- ``queues``: in the caller's queues and assigned to a colleague, or pending with nobody;
  i.e. what the caller's queues hold that neither ``mine`` nor ``unassigned`` shows. So the
  three inbox sections never repeat a conversation.
- ``unassigned``: open, in the caller's queues, nobody assigned (waiting for routing).

Statuses: ``open``, ``pending``, ``snoozed``, ``resolved``, ``active`` (open or pending) and
``all``. Filters: channel, queue, assignee (an operator, ``me`` or ``none``), a contact's tag,
and a range of last activity (``updated_at``, the order of the lists).

Every list pages with a cursor, with no cap on how far: ``unassigned`` by priority, then the
longest waiting; the others by newest activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Contact, Conversation, ConversationStatus, QueueMember, SavedView, utcnow
from core.pagination import MAX_LIMIT, decode_cursor, encode_cursor, keyset_page
from core.search import has_tag
from core.visibility import conversation_filter

Scope = Literal["all", "mine", "queues", "unassigned"]
StatusFilter = Literal["open", "pending", "snoozed", "resolved", "active", "all"]
ACTIVE = (ConversationStatus.OPEN, ConversationStatus.PENDING)
MAX_SAVED_VIEWS = 50


@dataclass(frozen=True)
class ViewFilters:
    scope: Scope = "all"
    status: StatusFilter = "all"
    channel: str | None = None
    queue_id: int | None = None
    assignee: int | Literal["me", "none"] | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _operator_id(actor: Actor, what: str) -> int:
    if actor.operator_id is None:
        raise InvalidInput(f"only a signed-in operator has {what}", field="scope")
    return actor.operator_id


def scope_filter(scope: Scope, actor: Actor) -> ColumnElement[bool] | None:
    if scope == "all":
        return None
    me = _operator_id(actor, "conversations of their own")
    my_queues = select(QueueMember.queue_id).where(QueueMember.operator_id == me)
    if scope == "mine":
        return Conversation.assignee_id == me
    if scope == "unassigned":
        return and_(
            Conversation.queue_id.in_(my_queues),
            Conversation.assignee_id.is_(None),
            Conversation.status == ConversationStatus.OPEN,
        )
    return and_(
        Conversation.queue_id.in_(my_queues),
        or_(
            Conversation.assignee_id != me,
            and_(
                Conversation.assignee_id.is_(None),
                Conversation.status != ConversationStatus.OPEN,
            ),
        ),
    )


def status_filter(status: StatusFilter) -> ColumnElement[bool] | None:
    if status == "all":
        return None
    if status == "active":
        return Conversation.status.in_(ACTIVE)
    return Conversation.status == status


def conditions(dialect: str, actor: Actor, filters: ViewFilters) -> list[ColumnElement[bool]]:
    """Every condition of the view, visibility first."""
    where: list[ColumnElement[bool]] = [conversation_filter(actor)]
    for condition in (scope_filter(filters.scope, actor), status_filter(filters.status)):
        if condition is not None:
            where.append(condition)
    if filters.channel is not None:
        where.append(Conversation.channel == filters.channel)
    if filters.queue_id is not None:
        where.append(Conversation.queue_id == filters.queue_id)
    if filters.assignee == "me":
        where.append(Conversation.assignee_id == _operator_id(actor, "conversations"))
    elif filters.assignee == "none":
        where.append(Conversation.assignee_id.is_(None))
    elif filters.assignee is not None:
        where.append(Conversation.assignee_id == filters.assignee)
    if filters.tag is not None:
        tagged = select(Contact.id).where(has_tag(dialect, filters.tag))
        where.append(Conversation.contact_id.in_(tagged))
    if filters.since is not None:
        where.append(Conversation.updated_at >= filters.since)
    if filters.until is not None:
        where.append(Conversation.updated_at < filters.until)
    return where


async def count(session: AsyncSession, actor: Actor, filters: ViewFilters) -> int:
    where = conditions(session.get_bind().dialect.name, actor, filters)
    total = await session.scalar(select(func.count()).select_from(Conversation).where(*where))
    return total or 0


async def list_view(
    session: AsyncSession,
    actor: Actor,
    filters: ViewFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Conversation], str | None]:
    """One page of the view and the cursor of the next (None at the end)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    where = conditions(session.get_bind().dialect.name, actor, filters)
    query = select(Conversation).where(*where)
    if filters.scope != "unassigned":
        return await keyset_page(
            session, query, Conversation.updated_at, Conversation.id, cursor=cursor, limit=limit
        )
    return await _waiting_page(session, query, cursor=cursor, limit=limit)


def _waiting_since() -> ColumnElement[datetime]:
    return func.coalesce(Conversation.queue_entered_at, Conversation.created_at)


async def _waiting_page(
    session: AsyncSession, query: Any, *, cursor: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """Highest priority first, then the longest waiting, then the id: keyset on all three."""
    if cursor:
        priority, since, after = decode_cursor(cursor, int, datetime, int)
        query = query.where(
            or_(
                Conversation.priority < priority,
                and_(Conversation.priority == priority, _waiting_since() > since),
                and_(
                    Conversation.priority == priority,
                    _waiting_since() == since,
                    Conversation.id > after,
                ),
            )
        )
    query = query.order_by(
        Conversation.priority.desc(), _waiting_since().asc(), Conversation.id.asc()
    ).limit(limit + 1)
    rows = list(await session.scalars(query))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    waiting = last.queue_entered_at or last.created_at
    return rows[:limit], encode_cursor(last.priority, waiting, last.id)


# --- saved views ----------------------------------------------------------------------------


async def list_saved(session: AsyncSession, actor: Actor) -> list[SavedView]:
    """The caller's own saved views, by name."""
    me = _operator_id(actor, "saved views")
    rows = await session.scalars(
        select(SavedView).where(SavedView.operator_id == me).order_by(SavedView.name, SavedView.id)
    )
    return list(rows)


async def get_saved(session: AsyncSession, actor: Actor, view_id: int) -> SavedView:
    """One of the caller's saved views; another operator's is no view of theirs (404)."""
    me = _operator_id(actor, "saved views")
    row = await session.get(SavedView, view_id)
    if row is None or row.operator_id != me:
        raise NotFound(f"no saved view with id {view_id}")
    return row


async def _name_taken(session: AsyncSession, me: int, name: str, but: int | None) -> bool:
    query = select(SavedView.id).where(SavedView.operator_id == me, SavedView.name == name)
    if but is not None:
        query = query.where(SavedView.id != but)
    return await session.scalar(query) is not None


async def create_saved(
    session: AsyncSession, actor: Actor, name: str, filters: dict[str, Any]
) -> SavedView:
    me = _operator_id(actor, "saved views")
    name = name.strip()
    if await _name_taken(session, me, name, None):
        raise Conflict(f"you already have a view named {name!r}")
    mine = await session.scalar(
        select(func.count()).select_from(SavedView).where(SavedView.operator_id == me)
    )
    if (mine or 0) >= MAX_SAVED_VIEWS:
        raise Conflict(f"at most {MAX_SAVED_VIEWS} saved views each; delete one first")
    row = SavedView(operator_id=me, name=name, filters=filters)
    session.add(row)
    await session.flush()
    await audit.record(
        session, actor, "saved_view.create", "saved_view", row.id, {"name": name, **filters}
    )
    return row


async def update_saved(
    session: AsyncSession,
    actor: Actor,
    view_id: int,
    *,
    name: str | None,
    filters: dict[str, Any] | None,
) -> SavedView:
    row = await get_saved(session, actor, view_id)
    changed: dict[str, Any] = {}
    if name is not None and name.strip() != row.name:
        name = name.strip()
        if await _name_taken(session, row.operator_id, name, row.id):
            raise Conflict(f"you already have a view named {name!r}")
        changed["name"] = {"from": row.name, "to": name}
        row.name = name
    if filters is not None and filters != row.filters:
        changed["filters"] = {"from": row.filters, "to": filters}
        row.filters = filters
    if changed:
        row.updated_at = utcnow()
        await audit.record(session, actor, "saved_view.update", "saved_view", row.id, changed)
    await session.flush()
    return row


async def delete_saved(session: AsyncSession, actor: Actor, view_id: int) -> None:
    row = await get_saved(session, actor, view_id)
    await session.delete(row)
    await audit.record(
        session, actor, "saved_view.delete", "saved_view", view_id, {"name": row.name}
    )

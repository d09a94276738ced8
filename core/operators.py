"""Operators: accounts, roles, skills, capacity, presence."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, passwords
from core.audit import Actor
from core.auth import revoke_all_sessions
from core.changes import UNSET, Unset
from core.channels import CAPACITY_KINDS, EMAIL, MESSAGING, VOICE
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import (
    OPERATOR_CREATED,
    OPERATOR_PRESENCE,
    OPERATOR_UPDATED,
    QUEUE_UPDATED,
)
from core.events import Event, emit
from core.identity import normalize_email
from core.models import Operator, Presence, Queue, QueueMember, Role, utcnow

OPERATOR_ROLES = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)
MAX_PRESENCE_REASON = 200
# What an operator added without a capacity may carry at once, per capacity kind: one call,
# five chats, ten emails. Without it routing would never give them work (capacity 0).
DEFAULT_CAPACITY: Mapping[str, int] = {VOICE: 1, MESSAGING: 5, EMAIL: 10}


def check_capacity(capacity: Mapping[str, Any]) -> dict[str, Any]:
    """The capacity if every key is a capacity kind (voice, messaging, email); else a 400
    naming each unknown key as its own field (`capacity.<key>`)."""
    unknown = [key for key in capacity if key not in CAPACITY_KINDS]
    if unknown:
        kinds = ", ".join(CAPACITY_KINDS)
        error = InvalidInput(f"capacity is counted per kind of work: {kinds}")
        error.fields = {f"capacity.{key}": f"not a capacity kind (use {kinds})" for key in unknown}
        raise error
    return dict(capacity)


def _check_role(role: Role | str) -> Role:
    if role not in OPERATOR_ROLES:
        raise InvalidInput("role must be operator, supervisor or admin", field="role")
    return Role(role)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    return name


async def create_operator(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: Role,
    password: str | None,
    skills: Mapping[str, Any] | None = None,
    languages: Mapping[str, Any] | None = None,
    capacity: Mapping[str, Any] | None = None,
    total_capacity: int | None = None,
) -> Operator:
    role = _check_role(role)
    try:
        address = normalize_email(email)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="email") from None
    name = _check_name(name)
    # Hashed before this function's first statement: a caller that opens its transaction just
    # for this holds no database connection while the hash is made.
    password_hash = await passwords.hash_password(password) if password is not None else None
    if await session.scalar(select(Operator.id).where(Operator.email == address)):
        raise Conflict(f"an operator with email {address} exists already", field="email")
    operator = Operator(
        email=address,
        name=name,
        role=role,
        password_hash=password_hash,
        skills=dict(skills or {}),
        languages=dict(languages or {}),
        capacity=check_capacity(DEFAULT_CAPACITY if capacity is None else capacity),
        total_capacity=total_capacity,
        presence=Presence.OFFLINE,
    )
    session.add(operator)
    await session.flush()
    await audit.record(
        session, actor, "operator.create", "operator", operator.id, {"role": role, "email": address}
    )
    await emit(session, Event(OPERATOR_CREATED, {"operator": operator.id}))
    return operator


async def list_operators(session: AsyncSession, *, active: bool | None = None) -> list[Operator]:
    query = select(Operator).order_by(Operator.name, Operator.id)
    if active is not None:
        query = query.where(Operator.active.is_(active))
    return list(await session.scalars(query))


async def get_operator(session: AsyncSession, operator_id: int) -> Operator:
    operator = await session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"no operator {operator_id}")
    return operator


async def update_operator(
    session: AsyncSession,
    actor: Actor,
    operator_id: int,
    *,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    skills: Mapping[str, Any] | None = None,
    languages: Mapping[str, Any] | None = None,
    capacity: Mapping[str, Any] | None = None,
    total_capacity: int | Unset | None = UNSET,
) -> Operator:
    """Change what is given; a role change or deactivation signs the operator out everywhere."""
    operator = await get_operator(session, operator_id)
    wanted: dict[str, Any] = {}
    if name is not None:
        wanted["name"] = _check_name(name)
    if role is not None:
        wanted["role"] = _check_role(role)
    if active is not None:
        wanted["active"] = active
    for field, value in (("skills", skills), ("languages", languages)):
        if value is not None:
            wanted[field] = dict(value)
    if capacity is not None:
        wanted["capacity"] = check_capacity(capacity)
    if total_capacity is not UNSET:
        wanted["total_capacity"] = total_capacity
    changes = {key: value for key, value in wanted.items() if getattr(operator, key) != value}
    loses_admin = (
        operator.role == Role.ADMIN
        and operator.active
        and (changes.get("role", Role.ADMIN) != Role.ADMIN or changes.get("active") is False)
    )
    if loses_admin:
        field = "active" if "active" in changes else "role"
        if actor.operator_id == operator.id:
            raise InvalidInput("you cannot deactivate or demote yourself", field=field)
        if not await _other_active_admin_exists(session, operator.id):
            raise InvalidInput("this is the last active admin", field=field)
    if not changes:
        return operator
    for key, value in changes.items():
        setattr(operator, key, value)
    if "role" in changes or changes.get("active") is False:
        await revoke_all_sessions(session, operator.id)
    if changes.get("active") is False:
        await set_presence(session, operator, Presence.OFFLINE, None)
    await session.flush()
    await audit.record(session, actor, "operator.update", "operator", operator.id, changes)
    await emit(session, Event(OPERATOR_UPDATED, {"operator": operator.id}))
    return operator


async def set_queues(
    session: AsyncSession, actor: Actor, operator_id: int, queue_ids: list[int]
) -> list[int]:
    """Replace the queues an operator works (the other side of `queues.set_members`)."""
    await get_operator(session, operator_id)
    wanted = set(queue_ids)
    known = set(await session.scalars(select(Queue.id).where(Queue.id.in_(wanted))))
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidInput(f"no queues with ids {unknown}", field="queue_ids")
    current = set(
        await session.scalars(
            select(QueueMember.queue_id).where(QueueMember.operator_id == operator_id)
        )
    )
    if current == wanted:
        return sorted(wanted)
    for queue_id in current - wanted:
        member = await session.get(QueueMember, (queue_id, operator_id))
        if member is not None:
            await session.delete(member)
    for queue_id in wanted - current:
        session.add(QueueMember(queue_id=queue_id, operator_id=operator_id))
    await session.flush()
    await audit.record(
        session, actor, "operator.queues", "operator", operator_id, {"queue_ids": sorted(wanted)}
    )
    for queue_id in sorted(current ^ wanted):
        await emit(session, Event(QUEUE_UPDATED, {"queue": queue_id}))
    await emit(session, Event(OPERATOR_UPDATED, {"operator": operator_id}))
    return sorted(wanted)


async def _other_active_admin_exists(session: AsyncSession, operator_id: int) -> bool:
    count = await session.scalar(
        select(func.count())
        .select_from(Operator)
        .where(Operator.role == Role.ADMIN, Operator.active.is_(True), Operator.id != operator_id)
    )
    return bool(count)


async def set_password(
    session: AsyncSession, actor: Actor, operator_id: int, password: str
) -> Operator:
    """An admin sets a new password; every session of that operator ends.

    The hash is made before the first statement (see `create_operator`)."""
    password_hash = await passwords.hash_password(password)
    operator = await get_operator(session, operator_id)
    operator.password_hash = password_hash
    await revoke_all_sessions(session, operator.id)
    await audit.record(session, actor, "operator.password", "operator", operator.id)
    return operator


async def set_presence(
    session: AsyncSession,
    operator: Operator,
    presence: Presence,
    reason: str | None,
    *,
    at: datetime | None = None,
) -> bool:
    """Set presence (routing and the console call this); True and an event if it changed."""
    if operator.presence == presence and operator.presence_reason == reason:
        return False
    operator.presence = presence
    operator.presence_reason = reason
    operator.presence_since = at or utcnow()
    await emit(
        session,
        Event(OPERATOR_PRESENCE, {"operator": operator.id}, {"presence": str(presence)}),
    )
    return True


async def change_own_presence(
    session: AsyncSession, actor: Actor, presence: Presence, reason: str | None
) -> Operator:
    """An operator says whether they can take work, and optionally why not."""
    if actor.operator_id is None:
        raise InvalidInput("only a signed-in operator has a presence")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_PRESENCE_REASON:
        raise InvalidInput(
            f"reason must be at most {MAX_PRESENCE_REASON} characters", field="reason"
        )
    operator = await get_operator(session, actor.operator_id)
    # Said by the operator: routing's automatic away starts over from the next console contact.
    operator.console_seen_at = None
    if await set_presence(session, operator, presence, reason):
        await audit.record(
            session,
            actor,
            "operator.presence",
            "operator",
            operator.id,
            {"presence": str(presence), "reason": reason},
        )
    return operator


async def require_active_operator(session: AsyncSession, operator_id: int, field: str) -> None:
    """400 unless `operator_id` is an operator who can still sign in (owners must be)."""
    active = await session.scalar(select(Operator.active).where(Operator.id == operator_id))
    if not active:
        raise InvalidInput(f"no active operator with id {operator_id}", field=field)

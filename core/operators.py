"""Operators: accounts, roles, presence."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.auth import hash_password
from core.errors import Conflict, InvalidInput
from core.identity import normalize_email
from core.models import Operator, Presence, Role, utcnow

OPERATOR_ROLES = (Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)


async def create_operator(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: Role,
    password: str | None,
) -> Operator:
    if role not in OPERATOR_ROLES:
        raise InvalidInput("role must be operator, supervisor or admin", field="role")
    try:
        address = normalize_email(email)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="email") from None
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field="name")
    if await session.scalar(select(Operator.id).where(Operator.email == address)):
        raise Conflict(f"an operator with email {address} exists already", field="email")
    operator = Operator(
        email=address,
        name=name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        presence=Presence.OFFLINE,
    )
    session.add(operator)
    await session.flush()
    await audit.record(
        session, actor, "operator.create", "operator", operator.id, {"role": role, "email": address}
    )
    return operator


async def set_presence(
    session: AsyncSession, operator: Operator, presence: Presence, reason: str | None
) -> None:
    if operator.presence != presence or operator.presence_reason != reason:
        operator.presence = presence
        operator.presence_reason = reason
        operator.presence_since = utcnow()

"""Passwords (argon2), console sessions and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput
from core.models import ApiToken, AuthSession, Operator, Role, utcnow

_hasher = PasswordHasher()
MIN_PASSWORD = 10
# Verifying against this keeps a login for an unknown email as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _digest(secret_key: str, token: str) -> str:
    # Keyed, so a copy of the database alone cannot be used to forge a session cookie.
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    cookie_value: str
    csrf_token: str
    operator: Operator


async def authenticate(session: AsyncSession, email: str, password: str) -> Operator | None:
    operator = await session.scalar(select(Operator).where(Operator.email == email.strip().lower()))
    ok = verify_password(operator.password_hash if operator else None, password)
    if operator is None or not ok or not operator.active:
        return None
    return operator


async def open_session(
    session: AsyncSession, operator: Operator, secret_key: str, ttl: timedelta
) -> NewSession:
    cookie_value = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            operator_id=operator.id,
            token_hash=_digest(secret_key, cookie_value),
            csrf_token=csrf_token,
            expires_at=utcnow() + ttl,
        )
    )
    await audit.record(session, actor_of(operator), "login", "operator", operator.id)
    return NewSession(cookie_value, csrf_token, operator)


async def session_operator(
    session: AsyncSession, cookie_value: str, secret_key: str
) -> tuple[Operator, AuthSession] | None:
    """The operator behind a session cookie, if the session is live and the operator active."""
    row = (
        await session.execute(
            select(AuthSession, Operator)
            .join(Operator, Operator.id == AuthSession.operator_id)
            .where(
                AuthSession.token_hash == _digest(secret_key, cookie_value),
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > utcnow(),
                Operator.active.is_(True),
            )
        )
    ).first()
    return None if row is None else (row.Operator, row.AuthSession)


async def revoke_session(session: AsyncSession, auth_session_id: int) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth_session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_all_sessions(session: AsyncSession, operator_id: int) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.operator_id == operator_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def change_password(
    session: AsyncSession, operator: Operator, current: str, new: str
) -> None:
    """Set a new password and sign out every session of this operator."""
    if not verify_password(operator.password_hash, current):
        raise InvalidInput("current password is wrong", field="current_password")
    operator.password_hash = hash_password(new)
    await revoke_all_sessions(session, operator.id)
    await audit.record(session, actor_of(operator), "password.change", "operator", operator.id)


async def create_token(
    session: AsyncSession, actor: Actor, name: str, role: Role = Role.INTEGRATION
) -> tuple[ApiToken, str]:
    """Create an API token; the plain token is returned once and stored only as a hash."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("token name must be 1 to 100 characters", field="name")
    if await session.scalar(select(ApiToken.id).where(ApiToken.name == name)):
        raise Conflict(f"a token named {name!r} exists already", field="name")
    plain = "omni_" + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=_token_digest(plain), role=role)
    session.add(token)
    await session.flush()
    await audit.record(session, actor, "token.create", "api_token", token.id, {"name": name})
    return token, plain


async def token_actor(session: AsyncSession, plain: str) -> Actor | None:
    token = await session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == _token_digest(plain), ApiToken.revoked_at.is_(None)
        )
    )
    if token is None:
        return None
    return Actor(f"token:{token.name}", Role(token.role))


async def revoke_token(session: AsyncSession, actor: Actor, token_id: int) -> bool:
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    revoked = bool(getattr(result, "rowcount", 0))
    if revoked:
        await audit.record(session, actor, "token.revoke", "api_token", token_id)
    return revoked


def actor_of(operator: Operator) -> Actor:
    return Actor(f"operator:{operator.email}", Role(operator.role), operator.id)


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    """Every API token, revoked ones included, newest first."""
    return list(await session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))

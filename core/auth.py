"""Signing in (passwords checked off the loop and off the database), console sessions and
API tokens.

Invariant: no password is hashed or verified while a database connection is held. Signing in
and changing a password read what they need in one short transaction, check the password in
`core.passwords`' thread pool with no transaction open, then write in a new transaction; so a
slow hash never holds SQLite's one connection or a PostgreSQL row lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, login_throttle, passwords
from core.audit import Actor
from core.db import SessionFactory
from core.errors import Conflict, InvalidInput
from core.login_throttle import Attempt
from core.models import ApiToken, AuthSession, Operator, Role, utcnow
from core.passwords import MIN_PASSWORD as MIN_PASSWORD


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


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a new session, or a failure to answer after `delay`
    seconds, or a refusal (throttled) to retry after `retry_after` seconds."""

    opened: NewSession | None = None
    delay: float = 0.0
    retry_after: int | None = None


async def sign_in(
    sessions: SessionFactory,
    email: str,
    password: str,
    *,
    address: str,
    policy: login_throttle.Policy,
    secret_key: str,
    ttl: timedelta,
) -> SignIn:
    """Check `email`/`password` from a client at `address` and open a session if they match.

    Owns its transactions (see the module's invariant): the attempt is counted and the
    operator's hash read in the first; the second opens the session (and resets the account's
    count) or audits the failure, and a lock-out when this failure used up a scope's window.
    A refused attempt is audited and never checks the password. An unknown email or an
    inactive operator fails like a wrong password and takes as long.
    """
    account = login_throttle.account_key(email)
    actor = Actor(f"anonymous:{address}", Role.OPERATOR)
    async with sessions() as session, session.begin():
        attempt = await login_throttle.count_attempt(session, account, address, policy)
        if attempt.refused_by:
            await audit.record(
                session, actor, "login.refused", "operator", None, _throttle_details(attempt)
            )
            return SignIn(retry_after=attempt.retry_after_seconds)
        found = (
            await session.execute(
                select(Operator.id, Operator.password_hash, Operator.active).where(
                    Operator.email == account
                )
            )
        ).first()
    stored = found.password_hash if found is not None else None
    verdict = await passwords.verify(stored, password)
    matched = found is not None and found.active and verdict.ok
    # A hash made with parameters that are no longer the current ones is replaced on success.
    upgraded = await passwords.rehash(password) if matched and verdict.needs_rehash else None
    async with sessions() as session, session.begin():
        operator = (
            # Locked, so a password change committing meanwhile revokes this session too.
            await session.get(Operator, found.id, with_for_update=True)
            if matched and found is not None
            else None
        )
        if operator is not None and operator.active and operator.password_hash == stored:
            await login_throttle.forgive(session, attempt)
            if upgraded is not None:
                operator.password_hash = upgraded
            opened = await open_session(session, operator, secret_key, ttl)
            await login_throttle.purge(session, policy)
            return SignIn(opened)
        await _record_failure(session, actor, attempt)
        await login_throttle.purge(session, policy)
    return SignIn(delay=login_throttle.failure_delay(attempt.account.failures, policy))


async def _record_failure(session: AsyncSession, actor: Actor, attempt: Attempt) -> None:
    """Audit a failed attempt, and the lock-out of each scope whose window it used up."""
    details = {"email": attempt.account.key, "address": attempt.address.key}
    await audit.record(session, actor, "login.failed", "operator", None, details)
    for count in attempt.counts:
        if count.locks:
            locked = {
                "scope": count.scope.value,
                "key": count.key,
                "failures": count.failures,
                "until": count.window_ends_at.isoformat(),
            }
            await audit.record(session, actor, "login.locked", "operator", None, locked)


def _throttle_details(attempt: Attempt) -> dict[str, object]:
    return {
        "email": attempt.account.key,
        "address": attempt.address.key,
        "scopes": [count.scope.value for count in attempt.refused_by],
        "retry_after": attempt.retry_after_seconds,
    }


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
    sessions: SessionFactory, operator_id: int, current: str, new: str
) -> None:
    """Set a new password and sign out every session of this operator.

    Owns its transactions (see the module's invariant). A wrong `current` is an InvalidInput on
    `current_password`; a password changed by someone else meanwhile is a Conflict.
    """
    passwords.check_strength(new)
    async with sessions() as session:
        stored = await session.scalar(
            select(Operator.password_hash).where(
                Operator.id == operator_id, Operator.active.is_(True)
            )
        )
    if not (await passwords.verify(stored, current)).ok:
        raise InvalidInput("current password is wrong", field="current_password")
    new_hash = await passwords.hash_password(new)
    async with sessions() as session, session.begin():
        changed = await session.execute(
            update(Operator)
            .where(Operator.id == operator_id, Operator.password_hash == stored)
            .values(password_hash=new_hash)
        )
        operator = await session.get(Operator, operator_id)
        if operator is None or not getattr(changed, "rowcount", 0):
            raise Conflict("the password was changed meanwhile; sign in again")
        await revoke_all_sessions(session, operator_id)
        await audit.record(session, actor_of(operator), "password.change", "operator", operator_id)


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

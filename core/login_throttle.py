"""Throttling of sign-in attempts, per account and per client address, in the database.

Every attempt is counted *before* its password is checked, in one atomic upsert per scope
(the account's normalized email, then the client's address: always in that order, so two
attempts never wait on each other crosswise). An attempt that finds a scope over its limit is
refused without checking the password, even a right one, until that scope's window ends. A
success then takes its attempt back: the account's count is reset, the address's lowered by
one; a failure leaves it counted.

Invariants:
- Counts live in `login_throttle` rows, so every server process sharing the database sees
  the same counts; a row's window is fixed, starting at the first attempt counted in it and
  lasting `window`; an attempt after it starts a new window at 1.
- Times come from `core.clock.utcnow`; nothing here sleeps: `failure_delay` says how long the
  caller should wait before answering a failure.
- The caller owns the transactions; rows whose window has ended are equivalent to no row, so
  `purge` may delete them at any time.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import LoginThrottle, UTCDateTime, utcnow
from core.settings import Settings
from core.sql import dialect_insert, supports_skip_locked

# Failures before the first delay; each further one doubles it, at most MAX_DOUBLINGS times.
FREE_FAILURES = 2
MAX_DOUBLINGS = 3
# Rows deleted per purge, so one sign-in never pays for a whole backlog.
PURGE_BATCH = 500


class Scope(enum.StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass(frozen=True)
class Policy:
    """How many attempts a scope may fail within `window`, and the delay schedule."""

    per_account: int = 10
    per_address: int = 50
    window: timedelta = timedelta(seconds=60)
    first_delay_seconds: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            window=timedelta(seconds=settings.login_failure_window_seconds),
            first_delay_seconds=settings.login_failure_delay_seconds,
        )

    def limit(self, scope: Scope) -> int:
        return self.per_account if scope is Scope.ACCOUNT else self.per_address


@dataclass(frozen=True)
class Count:
    """One scope's count after an attempt was added to it."""

    scope: Scope
    key: str
    failures: int
    window_started_at: datetime
    limit: int
    window: timedelta

    @property
    def refused(self) -> bool:
        return self.failures > self.limit

    @property
    def locks(self) -> bool:
        """This attempt is the last the window allows: if it fails, the scope is locked."""
        return self.failures == self.limit

    @property
    def window_ends_at(self) -> datetime:
        return self.window_started_at + self.window


@dataclass(frozen=True)
class Attempt:
    """A counted sign-in attempt: the account's count, then the address's."""

    account: Count
    address: Count
    at: datetime

    @property
    def counts(self) -> tuple[Count, Count]:
        return (self.account, self.address)

    @property
    def refused_by(self) -> list[Count]:
        return [count for count in self.counts if count.refused]

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until every scope that refuses this attempt has a new window."""
        waits = [(count.window_ends_at - self.at).total_seconds() for count in self.refused_by]
        return max(1, math.ceil(max(waits, default=0)))


def account_key(email: str) -> str:
    """The account an email names, normalized as sign-in looks operators up."""
    return email.strip().lower()


def failure_delay(failures: int, policy: Policy) -> float:
    """Seconds to wait before answering the `failures`-th failure of an account in a window:
    none for the first FREE_FAILURES, then doubling from `first_delay_seconds`, capped."""
    if failures <= FREE_FAILURES:
        return 0.0
    return policy.first_delay_seconds * (1 << min(failures - FREE_FAILURES - 1, MAX_DOUBLINGS))


async def count_attempt(session: AsyncSession, email: str, address: str, policy: Policy) -> Attempt:
    """Count one attempt against the account and the address; see `Attempt.refused_by`."""
    now = utcnow()
    account = await _count(session, Scope.ACCOUNT, account_key(email), now, policy)
    by_address = await _count(session, Scope.ADDRESS, address, now, policy)
    return Attempt(account, by_address, now)


async def forgive(session: AsyncSession, attempt: Attempt) -> None:
    """The attempt succeeded: reset the account, take the attempt back from the address."""
    await session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.scope == Scope.ACCOUNT, LoginThrottle.key == attempt.account.key
        )
    )
    await session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.scope == Scope.ADDRESS,
            LoginThrottle.key == attempt.address.key,
            # Only the window it was counted in, and never below zero.
            LoginThrottle.window_started_at == attempt.address.window_started_at,
            LoginThrottle.failures > 0,
        )
        .values(failures=LoginThrottle.failures - 1)
    )


async def purge(session: AsyncSession, policy: Policy) -> None:
    """Delete up to PURGE_BATCH rows whose window has ended; never waits for a row lock."""
    ended = select(LoginThrottle.scope, LoginThrottle.key).where(
        LoginThrottle.window_started_at <= utcnow() - policy.window
    )
    ended = ended.limit(PURGE_BATCH)
    if supports_skip_locked(session):
        ended = ended.with_for_update(skip_locked=True)
    await session.execute(
        delete(LoginThrottle).where(tuple_(LoginThrottle.scope, LoginThrottle.key).in_(ended))
    )


async def _count(
    session: AsyncSession, scope: Scope, key: str, now: datetime, policy: Policy
) -> Count:
    # One statement, so concurrent attempts (in any process) each see their own count.
    insert = dialect_insert(session.get_bind().dialect.name)
    at = literal(now, UTCDateTime())
    ended = LoginThrottle.window_started_at <= literal(now - policy.window, UTCDateTime())
    statement = (
        insert(LoginThrottle)
        .values(scope=scope.value, key=key, failures=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.scope, LoginThrottle.key],
            set_={
                "failures": case((ended, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": case((ended, at), else_=LoginThrottle.window_started_at),
            },
        )
        .returning(LoginThrottle.failures, LoginThrottle.window_started_at)
    )
    row = (await session.execute(statement)).one()
    return Count(
        scope, key, row.failures, row.window_started_at, policy.limit(scope), policy.window
    )

"""Password hashing (argon2id), off the event loop and off the database.

Invariants:
- Hashing and verifying run in a small, bounded thread pool (argon2-cffi releases the GIL) at
  a lower CPU priority, so a burst of logins costs spare CPU but never stalls the event loop;
  callers await them with no database connection held (read, end the transaction, then hash).
- New hashes use the installed parameters: `STRONG` (argon2-cffi's default, RFC 9106's
  low-memory profile) unless a test suite installs cheap ones with `install()`/`using()`.
  A hash embeds its parameters, so verifying costs what it cost to make, in any process.
- Verifying with no stored hash (an unknown email, an operator without a password) still
  costs one verification against a dummy hash made with the current parameters, so the
  answer takes as long as for a wrong password.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import InvalidInput

MIN_PASSWORD = 10
# Production's parameters: 64 MiB, 3 passes, 4 lanes (argon2-cffi's default since 21.2).
STRONG: Parameters = profiles.RFC_9106_LOW_MEMORY
# For test suites only: microseconds per hash instead of the better part of a second.
CHEAP: Parameters = profiles.CHEAPEST
# Each strong hash holds 64 MiB while it runs, so the pool stays small; with more logins at
# once than threads, they wait their turn in the pool's queue (the event loop does not).
POOL_THREADS = max(1, min(4, os.cpu_count() or 1))

# Hashing threads run at a lower CPU priority (Linux: niceness is per thread and the four
# lane threads of each hash inherit it), so a burst of logins cannot starve the event loop or
# the database of CPU time; idle CPU is still theirs.
HASHING_NICENESS = 10

_parameters: Parameters = STRONG
_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a password: `ok`, and whether its stored hash should be
    replaced by one with the current parameters."""

    ok: bool
    needs_rehash: bool = False


def parameters() -> Parameters:
    """The parameters new hashes get."""
    return _parameters


def install(chosen: Parameters) -> Parameters:
    """Hash with `chosen` from now on in this process; returns the parameters it replaces."""
    global _parameters  # one hashing policy per process, like the one clock
    previous, _parameters = _parameters, chosen
    return previous


@contextmanager
def using(chosen: Parameters) -> Iterator[Parameters]:
    """Run a block with `chosen` installed, then put the previous parameters back."""
    previous = install(chosen)
    try:
        yield chosen
    finally:
        install(previous)


# Keyed by the parameters' fields: argon2's Parameters is a dataclass that cannot be hashed.
_hashers: dict[tuple[object, ...], PasswordHasher] = {}
_dummies: dict[tuple[object, ...], str] = {}


def _hasher(chosen: Parameters) -> PasswordHasher:
    key = dataclasses.astuple(chosen)
    if key not in _hashers:
        _hashers[key] = PasswordHasher.from_parameters(chosen)
    return _hashers[key]


def _dummy_hash(chosen: Parameters) -> str:
    key = dataclasses.astuple(chosen)
    if key not in _dummies:
        _dummies[key] = _hasher(chosen).hash("not-a-real-password")
    return _dummies[key]


def _executor() -> ThreadPoolExecutor:
    global _pool  # created on first use: a CLI command that never hashes starts no threads
    if _pool is None:
        _pool = ThreadPoolExecutor(
            POOL_THREADS, thread_name_prefix="omnicrm-passwords", initializer=_yield_cpu
        )
    return _pool


def _yield_cpu() -> None:
    if sys.platform.startswith("linux"):  # elsewhere the call would renice the whole process
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters", field="password")


def _hash(password: str, chosen: Parameters) -> str:
    return _hasher(chosen).hash(password)


def _verify(password_hash: str | None, password: str, current: Parameters) -> Verdict:
    hasher = _hasher(current)
    try:
        matched = hasher.verify(password_hash or _dummy_hash(current), password)
    except (VerificationError, InvalidHashError):
        return Verdict(False)
    if not password_hash or not matched:
        return Verdict(False)
    return Verdict(True, hasher.check_needs_rehash(password_hash))


async def hash_password(password: str) -> str:
    """An argon2id hash of `password` with the installed parameters, made in the pool.

    Too short a password is an InvalidInput on the `password` field (checked before hashing).
    """
    check_strength(password)
    return await rehash(password)


async def rehash(password: str) -> str:
    """A new hash of a password already in use (no strength check), made in the pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _hash, password, _parameters)


async def verify(password_hash: str | None, password: str) -> Verdict:
    """Whether `password` matches `password_hash`, checked in the pool; None never matches but
    costs the same as a wrong password."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _verify, password_hash, password, _parameters)

"""The one clock: every "now" of omnicrm (state changes, deadlines, audit, sessions) reads it.

`utcnow()` is the only way core, channels, routing and web ask for the time of day; nothing
calls `datetime.now()` itself. The clock is the system's by default; tests and tools install
another one (`ManualClock` to drive time by hand, `ShiftedClock` to run everything at a
far-away date) with `using()`. Elapsed-time measurements (timeouts, backoff, latency) use
`time.monotonic()` and are not part of this: they never become stored timestamps.

Invariant: `utcnow()` always returns an aware datetime in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    at: datetime

    def __post_init__(self) -> None:
        self.at = _aware_utc(self.at)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        """Move forward by `seconds` (and/or timedelta keywords); returns the new time."""
        self.at += timedelta(seconds=seconds, **delta)
        return self.at

    def set(self, at: datetime) -> None:
        self.at = _aware_utc(at)


@dataclass(frozen=True)
class ShiftedClock:
    """The machine's clock moved by a fixed offset: time passes, at another date."""

    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


_clock: Clock = SystemClock()


def utcnow() -> datetime:
    """Now, from the installed clock."""
    return _clock.now()


def current() -> Clock:
    return _clock


def install(clock: Clock) -> Clock:
    """Make `clock` the clock of this process; returns the one it replaces."""
    global _clock  # the process has exactly one clock, by design
    previous, _clock = _clock, clock
    return previous


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Run a block with `clock` installed, then put the previous one back."""
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a clock needs an aware datetime")
    return value.astimezone(UTC)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant `day` begins in `zone`, in UTC (a day's start for filters and reports)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)

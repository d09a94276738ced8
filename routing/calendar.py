"""Business hours: when a queue is open, and SLA time counted in open time only.

A queue keeps its calendar as JSON in ``Queue.config["business_hours"]``::

    {
      "timezone": "Europe/Berlin",
      "weekly": {"mon": ["09:00-12:30", "13:30-17:30"], "tue": ["09:00-17:30"],
                 "sat": ["22:00-24:00"], "sun": ["00:00-06:00"]},
      "holidays": ["2025-12-25", "2025-12-26"],
      "special_days": {"2025-12-24": ["09:00-12:00"]}
    }

Hours are local wall-clock times in ``timezone`` (an IANA name). Weekdays left out of ``weekly``
are closed; ``"weekly": "24/7"`` is short for open around the clock (stored expanded). An
interval stays within one day: an overnight shift is ``22:00-24:00`` plus ``00:00-06:00`` of the
next day. A holiday is closed all day; a special day has its own hours instead of its weekday's
(``[]`` closes it too).

The routing service parses the config once per queue (``BusinessHours.model_validate(...)``) and
keeps the object, which remembers the open time of the days it has worked out. Then:

- SLA due time: ``hours.add_business_time(conversation.created_at, timedelta(hours=4))``;
- waited in business time (service level reports): ``hours.business_time_between(created, now)``;
- ``hours.is_open(now)`` and ``hours.next_open(now)`` ("closed, back on Monday 09:00").

Arguments are aware datetimes (naive ones raise ValueError); results are in UTC. Business time
is real elapsed time while open, so ``00:00-24:00`` lasts 23 hours on the day the clocks spring
forward and 25 on the day they fall back. An interval opens at the first instant the local clock
shows its start and closes at the first instant it shows its end; a time the clock skips counts
as the instant of the jump, so an interval inside a skipped hour is empty that day. Searches look
at most ``SEARCH_HORIZON`` ahead: a calendar without (enough) open time in it gives None.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, cached_property
from itertools import pairwise
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# In the order of date.weekday().
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROUND_THE_CLOCK = "24/7"
SEARCH_HORIZON = timedelta(days=731)
MAX_INTERVALS_PER_DAY = 24
MAX_LISTED_DAYS = 1000

# Bounds keep day arithmetic (a day after, the horizon ahead) clear of date.min and date.max.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - wall times here are naive on purpose
# Past this many cached days the cache starts over: enough for years of lookups near "now".
_CACHED_DAYS = 4096
# Not places: "localtime" means whatever the host is set to, "Factory" is a placeholder.
_NOT_PLACES = frozenset({"localtime", "Factory"})
_INTERVAL = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")

_Range = tuple[datetime, datetime]
_Minutes = tuple[int, int]


def _interval_minutes(text: str) -> _Minutes:
    """Parse "09:00-17:30" into minutes after midnight (end up to 24:00 = 1440)."""
    match = _INTERVAL.fullmatch(text)
    if match is None:
        raise ValueError(f'{text!r} must look like "09:00-17:30"')
    start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
    if start_hour > 23 or start_minute > 59 or end_minute > 59 or end_hour > 24:
        raise ValueError(f"{text!r}: times run from 00:00 to 24:00")
    if end_hour == 24 and end_minute:
        raise ValueError(f"{text!r}: times run from 00:00 to 24:00")
    start = start_hour * 60 + start_minute
    end = end_hour * 60 + end_minute
    if end <= start:
        raise ValueError(
            f"{text!r} must end after it starts; an overnight shift is two intervals, "
            "such as 22:00-24:00 and 00:00-06:00 of the next day"
        )
    return start, end


def _check_interval(text: str) -> str:
    _interval_minutes(text)
    return text


def _sorted_without_overlaps(intervals: tuple[str, ...]) -> tuple[str, ...]:
    # "HH:MM" is zero-padded, so text order is time order.
    ordered = tuple(sorted(intervals))
    for earlier, later in pairwise(ordered):
        if _interval_minutes(later)[0] < _interval_minutes(earlier)[1]:
            raise ValueError(f"{earlier} and {later} overlap")
    return ordered


def _expand_round_the_clock(value: Any) -> Any:
    if value == ROUND_THE_CLOCK:
        return {day: ["00:00-24:00"] for day in WEEKDAYS}
    if isinstance(value, str):
        raise ValueError(f'must map weekdays to hours, or be "{ROUND_THE_CLOCK}"')
    return value


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_PLACES


def _known_timezone(name: str) -> str:
    if name not in _zone_names():
        raise ValueError(f"{name!r} is not a known IANA time zone, such as Europe/Berlin")
    return name


# An IANA time zone name of a place (not "localtime", which depends on the host).
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_timezone)]


Interval = Annotated[str, AfterValidator(_check_interval)]
DayHours = Annotated[
    tuple[Interval, ...],
    Field(max_length=MAX_INTERVALS_PER_DAY),
    AfterValidator(_sorted_without_overlaps),
]


class BusinessHours(BaseModel):
    """When a queue is open: weekly hours in a timezone, holidays and special days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName
    weekly: Annotated[dict[Weekday, DayHours], BeforeValidator(_expand_round_the_clock)]
    holidays: tuple[date, ...] = Field(default=(), max_length=MAX_LISTED_DAYS)
    special_days: dict[date, DayHours] = Field(default_factory=dict, max_length=MAX_LISTED_DAYS)

    @field_validator("holidays")
    @classmethod
    def _each_holiday_once_in_order(cls, holidays: tuple[date, ...]) -> tuple[date, ...]:
        return tuple(sorted(set(holidays)))

    @model_validator(mode="after")
    def _holidays_are_not_special_days(self) -> Self:
        both = sorted(set(self.holidays) & self.special_days.keys())
        if both:
            raise ValueError(
                f"{both[0].isoformat()} is both a holiday and a special day; keep one of them"
            )
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        # The copy may have other hours: it works its open time out afresh.
        copied.__dict__.pop("_timeline", None)
        return copied

    @cached_property
    def _timeline(self) -> _Timeline:
        return _Timeline(self)

    def is_open(self, at: datetime) -> bool:
        at = _as_utc(at, "at")
        timeline = self._timeline
        day = timeline.local_date(at)
        return any(
            opens <= at < closes
            for near in (day, day + _ONE_DAY)
            for opens, closes in timeline.ranges_of(near)
        )

    def next_open(self, at: datetime) -> datetime | None:
        """`at` if open then, else when it next opens; None if not within SEARCH_HORIZON."""
        at = _as_utc(at, "at")
        timeline = self._timeline
        first = next(timeline.ranges_from(at, timeline.local_date(at) + SEARCH_HORIZON), None)
        return None if first is None else first[0]

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime | None:
        """The instant `duration` of open time after `start` (an SLA due time).

        Lands in open time or at the close of an interval (4 hours from 13:00 with hours until
        17:00 is 17:00 that day); a zero duration gives `start`. None if the open time within
        SEARCH_HORIZON of `start` falls short of `duration`.
        """
        start = _as_utc(start, "start")
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        if duration == timedelta(0):
            return start
        timeline = self._timeline
        remaining = duration
        for opens, closes in timeline.ranges_from(
            start, timeline.local_date(start) + SEARCH_HORIZON
        ):
            if remaining <= closes - opens:
                return opens + remaining
            remaining -= closes - opens
        return None

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from `start` to `end`; negative if `end` is before `start`."""
        start = _as_utc(start, "start")
        end = _as_utc(end, "end")
        if end < start:
            return -self.business_time_between(end, start)
        timeline = self._timeline
        total = timedelta(0)
        # Up to the day after `end`'s, which may have begun before it (see _Timeline).
        for opens, closes in timeline.ranges_from(start, timeline.local_date(end) + _ONE_DAY):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (UTC), not a naive one")
    moment = moment.astimezone(UTC)
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError(f"{name} must be from the years 1900 to 8999")
    return moment


class _Timeline:
    """A calendar's open time as UTC ranges, worked out one local day at a time and remembered.

    The ranges of a day lie between the first instants of its midnight and of the next one, and
    each interval maps to one range, so walking the days in order walks the ranges in order.
    An instant is in the ranges of its local date or of the next day: the next day's when the
    clock falls back across midnight (St. John's from 00:01 to 23:01 until 2010), where the
    repeated late evening comes after the next day began.
    """

    def __init__(self, hours: BusinessHours) -> None:
        self._zone = ZoneInfo(hours.timezone)
        self._weekly = tuple(_merged_minutes(hours.weekly.get(weekday, ())) for weekday in WEEKDAYS)
        self._holidays = frozenset(hours.holidays)
        self._special = {
            day: _merged_minutes(intervals) for day, intervals in hours.special_days.items()
        }
        self._days: dict[date, tuple[_Range, ...]] = {}

    def local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def ranges_of(self, day: date) -> tuple[_Range, ...]:
        ranges = self._days.get(day)
        if ranges is None:
            if len(self._days) >= _CACHED_DAYS:
                self._days.clear()
            ranges = self._days[day] = self._work_out(day)
        return ranges

    def ranges_from(self, at: datetime, last_day: date) -> Iterator[_Range]:
        """The open ranges up to `last_day` that end after `at`, cut to start no earlier."""
        day = self.local_date(at)
        while day <= last_day:
            for opens, closes in self.ranges_of(day):
                if closes > at:
                    yield max(opens, at), closes
            day += _ONE_DAY

    def _work_out(self, day: date) -> tuple[_Range, ...]:
        intervals = self._special.get(day)
        if intervals is None:
            intervals = () if day in self._holidays else self._weekly[day.weekday()]
        midnight = datetime.combine(day, time())
        ranges: list[_Range] = []
        for start, end in intervals:
            opens = self._first_instant(midnight + timedelta(minutes=start))
            closes = self._first_instant(midnight + timedelta(minutes=end))
            if opens < closes:
                ranges.append((opens, closes))
        return tuple(ranges)

    def _first_instant(self, wall: datetime) -> datetime:
        """The first instant the local clock shows `wall`, or the jump if the clock skips it."""
        # For a repeated wall time fold=0 is the earlier instant, with the offset from before
        # the change; for a skipped one fold=0 and fold=1 bracket the jump.
        before = _offset(wall.replace(tzinfo=self._zone))
        after = _offset(wall.replace(tzinfo=self._zone, fold=1))
        if before >= after:
            return (wall - before).replace(tzinfo=UTC)
        return self._jump_between(wall - after, wall - before, after)

    def _jump_between(
        self, earliest: datetime, latest: datetime, offset_after: timedelta
    ) -> datetime:
        """The instant in (earliest, latest] (naive UTC) the offset becomes `offset_after`."""
        # tz database changes happen on whole seconds: bisect whole seconds since the epoch.
        low = (earliest - _EPOCH) // _ONE_SECOND
        high = -((_EPOCH - latest) // _ONE_SECOND)
        while high - low > 1:
            middle = (low + high) // 2
            if _offset(datetime.fromtimestamp(middle, self._zone)) == offset_after:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)


def _merged_minutes(intervals: tuple[str, ...]) -> tuple[_Minutes, ...]:
    """Validated (sorted, non-overlapping) intervals as minutes, touching ones joined."""
    merged: list[_Minutes] = []
    for start, end in map(_interval_minutes, intervals):
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:  # never for a ZoneInfo; the check narrows the type
        raise ValueError(f"{moment!r} has no UTC offset")
    return offset

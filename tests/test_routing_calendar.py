"""Business hours: hand-checked SLA arithmetic, clock changes, validation, and properties."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.calendar import SEARCH_HORIZON, WEEKDAYS, BusinessHours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
OVERNIGHT = {"sat": ["22:00-24:00"], "sun": ["00:00-06:00"]}
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    """A Berlin wall-clock time as the UTC instant the methods take and give."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN, fold=fold).astimezone(UTC)


def new_york(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=NEW_YORK).astimezone(UTC)


def every(days: tuple[str, ...], interval: str) -> dict[str, list[str]]:
    return {day: [interval] for day in days}


def calendar(timezone: str = "Europe/Berlin", **fields: Any) -> BusinessHours:
    return BusinessHours.model_validate({"timezone": timezone, **fields})


# Office hours, Monday to Friday 09:00-17:00 in Berlin; 2025-01-10 is a Friday.
OFFICE = calendar(weekly=every(WORKDAYS, "09:00-17:00"))


def test_four_business_hours_from_friday_afternoon_end_on_monday() -> None:
    due = OFFICE.add_business_time(berlin(2025, 1, 10, 16), 4 * HOUR)

    # One hour on Friday, three from Monday 09:00.
    assert due == berlin(2025, 1, 13, 12)
    assert due is not None
    assert due.tzinfo is UTC


def test_a_target_reached_at_closing_time_is_due_at_closing_time() -> None:
    due = OFFICE.add_business_time(berlin(2025, 1, 10, 16), HOUR)

    assert due == berlin(2025, 1, 10, 17)
    assert not OFFICE.is_open(berlin(2025, 1, 10, 17))


def test_work_arriving_on_the_weekend_is_counted_from_monday() -> None:
    saturday = berlin(2025, 1, 11, 10)

    assert not OFFICE.is_open(saturday)
    assert OFFICE.next_open(saturday) == berlin(2025, 1, 13, 9)
    assert OFFICE.add_business_time(saturday, 2 * HOUR) == berlin(2025, 1, 13, 11)
    assert OFFICE.business_time_between(saturday, berlin(2025, 1, 13, 10)) == HOUR


def test_next_open_while_open_is_the_moment_asked_about() -> None:
    monday = berlin(2025, 1, 13, 10, 15)

    assert OFFICE.is_open(monday)
    assert OFFICE.next_open(monday) == monday


def test_business_time_counts_only_open_hours_and_is_negative_backwards() -> None:
    friday, monday = berlin(2025, 1, 10, 16), berlin(2025, 1, 13, 10)

    assert OFFICE.business_time_between(friday, monday) == 2 * HOUR
    assert OFFICE.business_time_between(monday, friday) == -2 * HOUR
    assert OFFICE.business_time_between(friday, friday) == timedelta(0)


def test_a_lunch_break_is_skipped() -> None:
    hours = calendar(weekly={"mon": ["13:30-17:30", "09:00-12:30"]})

    assert hours.add_business_time(berlin(2025, 1, 13, 12), HOUR) == berlin(2025, 1, 13, 14)
    assert not hours.is_open(berlin(2025, 1, 13, 13))
    assert hours.next_open(berlin(2025, 1, 13, 13)) == berlin(2025, 1, 13, 13, 30)
    assert hours.business_time_between(berlin(2025, 1, 13), berlin(2025, 1, 14)) == 450 * MINUTE


def test_touching_intervals_are_open_without_a_gap() -> None:
    hours = calendar(weekly={"mon": ["12:00-17:00", "09:00-12:00"]})

    assert hours.is_open(berlin(2025, 1, 13, 12))
    assert hours.add_business_time(berlin(2025, 1, 13, 11), 2 * HOUR) == berlin(2025, 1, 13, 13)


def test_holidays_are_closed_and_special_days_keep_their_own_hours() -> None:
    # 2025-12-24 is a Wednesday with short hours; Christmas falls on Thursday and Friday.
    hours = calendar(
        weekly=every(WORKDAYS, "09:00-17:00"),
        holidays=["2025-12-26", "2025-12-25"],
        special_days={"2025-12-24": ["09:00-12:00"], "2025-12-21": ["10:00-14:00"]},
    )

    assert not hours.is_open(berlin(2025, 12, 24, 14))
    assert not hours.is_open(berlin(2025, 12, 25, 10))
    # One hour on the 24th, then nothing until Monday the 29th.
    assert hours.add_business_time(berlin(2025, 12, 24, 11), 2 * HOUR) == berlin(2025, 12, 29, 10)
    # A special day opens a Sunday.
    assert hours.next_open(berlin(2025, 12, 20, 12)) == berlin(2025, 12, 21, 10)


def test_a_special_day_without_hours_closes_a_workday() -> None:
    hours = calendar(weekly=every(WORKDAYS, "09:00-17:00"), special_days={"2025-12-31": []})

    assert not hours.is_open(berlin(2025, 12, 31, 10))
    assert hours.next_open(berlin(2025, 12, 31, 10)) == berlin(2026, 1, 1, 9)


def test_round_the_clock_counts_real_time_across_a_clock_change() -> None:
    hours = calendar(weekly="24/7")
    saturday_noon = berlin(2025, 3, 29, 13)

    due = hours.add_business_time(saturday_noon, 24 * HOUR)

    # 24 real hours, although the Berlin clock shows 25 hours later.
    assert due == saturday_noon + 24 * HOUR
    assert due == berlin(2025, 3, 30, 14)
    assert all(hours.is_open(saturday_noon + n * 7 * HOUR) for n in range(100))
    assert hours.business_time_between(saturday_noon, saturday_noon + 72 * HOUR) == 72 * HOUR


# Berlin springs forward on 2025-03-30 at 02:00 (01:00 UTC) and falls back on 2025-10-26 at
# 03:00 (01:00 UTC); New York on 2025-03-09 and 2025-11-02 at 02:00 local time.


@pytest.mark.parametrize(
    ("sunday", "open_hours"),
    [(date(2025, 3, 30), 23), (date(2025, 10, 26), 25), (date(2025, 1, 12), 24)],
)
def test_a_whole_sunday_lasts_as_long_as_the_clock_says(sunday: date, open_hours: int) -> None:
    hours = calendar(weekly={"sun": ["00:00-24:00"]})
    saturday, monday = sunday - timedelta(days=1), sunday + timedelta(days=1)

    assert (
        hours.business_time_between(
            berlin(saturday.year, saturday.month, saturday.day, 12),
            berlin(monday.year, monday.month, monday.day, 12),
        )
        == open_hours * HOUR
    )


def test_hours_starting_in_the_skipped_hour_open_when_the_clock_jumps() -> None:
    hours = calendar(weekly={"sun": ["02:30-05:00"]})

    assert hours.next_open(utc(2025, 3, 30)) == utc(2025, 3, 30, 1)
    assert not hours.is_open(utc(2025, 3, 30, 0, 59, 59, 999999))
    assert hours.is_open(utc(2025, 3, 30, 1))
    assert not hours.is_open(berlin(2025, 3, 30, 5))
    assert hours.business_time_between(utc(2025, 3, 29), utc(2025, 3, 31)) == 2 * HOUR


def test_hours_entirely_in_the_skipped_hour_are_closed_that_day() -> None:
    hours = calendar(weekly={"sun": ["02:15-02:45"]})

    assert hours.business_time_between(utc(2025, 3, 29), utc(2025, 3, 31)) == timedelta(0)
    assert hours.next_open(utc(2025, 3, 29)) == berlin(2025, 4, 6, 2, 15)


def test_hours_over_the_repeated_hour_count_it_twice() -> None:
    hours = calendar(weekly={"sun": ["01:00-05:00"]})

    # 01:00 summer time to 05:00 winter time.
    assert hours.business_time_between(utc(2025, 10, 25), utc(2025, 10, 27)) == 5 * HOUR


def test_hours_in_the_repeated_hour_run_from_the_first_start_to_the_first_end() -> None:
    hours = calendar(weekly={"sun": ["02:30-03:00"]})

    # Opens at the first 02:30 (summer time) and stays open until the clock first shows 03:00,
    # which is an hour and a half later, after the clock went back from 03:00 to 02:00.
    assert hours.next_open(utc(2025, 10, 26)) == berlin(2025, 10, 26, 2, 30)
    assert hours.is_open(berlin(2025, 10, 26, 2, 15, fold=1))
    assert not hours.is_open(berlin(2025, 10, 26, 3))
    assert hours.business_time_between(utc(2025, 10, 25), utc(2025, 10, 27)) == 90 * MINUTE


def test_a_night_shift_in_new_york_is_shorter_in_spring_and_longer_in_autumn() -> None:
    hours = calendar("America/New_York", weekly=OVERNIGHT)

    spring_start = new_york(2025, 3, 8, 22)
    assert hours.business_time_between(spring_start, spring_start + 48 * HOUR) == 7 * HOUR
    assert hours.add_business_time(spring_start, 7 * HOUR) == new_york(2025, 3, 9, 6)
    # Four hours after 22:00: 01:00 standard time plus the hour up to 02:00, which is 03:00.
    assert hours.add_business_time(spring_start, 4 * HOUR) == new_york(2025, 3, 9, 3)

    autumn_start = new_york(2025, 11, 1, 22)
    assert hours.business_time_between(autumn_start, autumn_start + 48 * HOUR) == 9 * HOUR
    # 01:30 happens twice that night; the shift is open both times.
    assert hours.is_open(utc(2025, 11, 2, 5, 30))
    assert hours.is_open(utc(2025, 11, 2, 6, 30))


def test_a_clock_jump_at_midnight_joins_the_two_halves_of_a_night_shift() -> None:
    # Sao Paulo went from Saturday 24:00 straight to Sunday 01:00 on 2018-11-04 (03:00 UTC).
    hours = calendar("America/Sao_Paulo", weekly=OVERNIGHT)
    jump = utc(2018, 11, 4, 3)

    assert hours.is_open(jump - timedelta(microseconds=1))
    assert hours.is_open(jump)
    assert hours.business_time_between(utc(2018, 11, 3), utc(2018, 11, 5)) == 7 * HOUR


def test_a_clock_going_back_at_midnight_lengthens_the_evening() -> None:
    # Santiago went from Saturday 24:00 back to Saturday 23:00 on 2025-04-06 (03:00 UTC).
    hours = calendar("America/Santiago", weekly={"sat": ["22:00-24:00"]})

    assert hours.next_open(utc(2025, 4, 5)) == utc(2025, 4, 6, 1)
    assert hours.is_open(utc(2025, 4, 6, 3, 30))
    assert hours.next_open(utc(2025, 4, 6, 4)) == utc(2025, 4, 13, 2)
    assert hours.business_time_between(utc(2025, 4, 5), utc(2025, 4, 7)) == 3 * HOUR


def test_a_clock_going_back_across_midnight_repeats_an_evening_in_the_new_day() -> None:
    # St. John's went from Sunday 00:01 back to Saturday 23:01 on 2009-11-01 (02:31 UTC).
    hours = calendar("America/St_Johns", weekly={"sun": ["00:00-06:00"]})
    repeated_saturday_evening = utc(2009, 11, 1, 3)

    # Sunday's hours began at the first Sunday 00:00 (02:30 UTC) and run on through the
    # repeated Saturday 23:01-24:00 to 06:00 standard time.
    assert hours.next_open(utc(2009, 10, 31, 12)) == utc(2009, 11, 1, 2, 30)
    assert hours.is_open(repeated_saturday_evening)
    assert hours.business_time_between(utc(2009, 10, 31, 12), repeated_saturday_evening) == (
        30 * MINUTE
    )
    assert hours.business_time_between(utc(2009, 10, 31), utc(2009, 11, 2)) == 7 * HOUR


def test_a_day_the_calendar_skipped_has_no_business_hours() -> None:
    # Samoa skipped 2011-12-30, going from the 29th 24:00 (-10:00) to the 31st 00:00 (+14:00).
    daily = calendar("Pacific/Apia", weekly=every(WEEKDAYS, "09:00-17:00"))
    always = calendar("Pacific/Apia", weekly="24/7")
    from_29th, to_31st = utc(2011, 12, 29, 10), utc(2011, 12, 31, 10)

    assert daily.business_time_between(from_29th, to_31st) == 16 * HOUR
    assert always.business_time_between(from_29th, to_31st) == 48 * HOUR


# Calendars that never open, and the search horizon.


def test_a_calendar_without_hours_never_opens() -> None:
    closed = calendar(weekly={}, special_days={"2024-06-01": ["09:00-17:00"]})
    start = utc(2025, 1, 1)

    assert not closed.is_open(start)
    assert closed.next_open(start) is None
    assert closed.add_business_time(start, timedelta(microseconds=1)) is None
    assert closed.business_time_between(start, start + 1000 * timedelta(days=1)) == timedelta(0)


def test_searches_stop_after_the_horizon() -> None:
    hours = calendar(
        weekly={}, special_days={"2026-06-01": ["09:00-17:00"], "2029-06-01": ["09:00-17:00"]}
    )

    assert hours.next_open(utc(2025, 1, 1)) == berlin(2026, 6, 1, 9)
    assert hours.add_business_time(utc(2025, 1, 1), HOUR) == berlin(2026, 6, 1, 10)
    assert hours.add_business_time(utc(2025, 1, 1), 9 * HOUR) is None
    assert hours.next_open(utc(2027, 1, 1)) is None
    assert utc(2029, 6, 1) - utc(2027, 1, 1) > SEARCH_HORIZON
    assert calendar(weekly="24/7").add_business_time(utc(2025, 1, 1), 3 * 365 * 24 * HOUR) is None


# Arguments.


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2025, 1, 10, 16)  # noqa: DTZ001 - the mistake under test

    with pytest.raises(ValueError, match="aware"):
        OFFICE.is_open(naive)
    with pytest.raises(ValueError, match="aware"):
        OFFICE.next_open(naive)
    with pytest.raises(ValueError, match="aware"):
        OFFICE.add_business_time(naive, HOUR)
    with pytest.raises(ValueError, match="aware"):
        OFFICE.business_time_between(utc(2025, 1, 10), naive)


def test_other_offsets_are_accepted_and_answers_are_in_utc() -> None:
    friday = datetime(2025, 1, 10, 16, tzinfo=BERLIN)

    due = OFFICE.add_business_time(friday, 4 * HOUR)

    assert due is not None
    assert due.tzinfo is UTC
    assert due == berlin(2025, 1, 13, 12)


def test_negative_durations_and_far_off_years_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add_business_time(utc(2025, 1, 10), -HOUR)
    with pytest.raises(ValueError, match="years"):
        OFFICE.is_open(utc(9999, 12, 31))
    with pytest.raises(ValueError, match="years"):
        OFFICE.business_time_between(utc(2025, 1, 1), utc(1, 1, 1))


def test_zero_business_time_is_due_at_once_even_when_closed() -> None:
    saturday = berlin(2025, 1, 11, 10)

    assert OFFICE.add_business_time(saturday, timedelta(0)) == saturday


# Validation and storage.


@pytest.mark.parametrize(
    "timezone",
    ["Mars/Olympus", "europe/berlin", "localtime", "Factory", "../../etc/passwd", "", "posix/UTC"],
)
def test_unknown_timezones_are_refused(timezone: str) -> None:
    with pytest.raises(ValidationError, match=r"time zone|at most 64"):
        calendar(timezone, weekly={})


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("17:00-09:00", "overnight shift is two intervals"),
        ("09:00-09:00", "must end after it starts"),
        ("9:00-17:00", "must look like"),
        ("09:00 - 17:00", "must look like"),
        ("\u0660\u0669:00-17:00", "must look like"),
        ("09:60-10:00", "00:00 to 24:00"),
        ("24:00-24:00", "00:00 to 24:00"),
        ("22:00-24:30", "00:00 to 24:00"),
        ("22:00-25:00", "00:00 to 24:00"),
    ],
)
def test_malformed_intervals_are_refused(interval: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        calendar(weekly={"tue": [interval]})

    assert caught.value.errors()[0]["loc"] == ("weekly", "tue", 0)


def test_overlapping_intervals_are_refused_with_both_named() -> None:
    with pytest.raises(ValidationError, match="09:00-13:00 and 12:00-17:00 overlap"):
        calendar(weekly={}, special_days={"2025-12-24": ["12:00-17:00", "09:00-13:00"]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"weekly": {"monday": ["09:00-17:00"]}}, "'mon', 'tue'"),
        ({"weekly": "24/5"}, "24/7"),
        ({"weekly": {}, "open": True}, "Extra inputs are not permitted"),
        ({"weekly": {}, "holidays": ["2025-13-01"]}, "valid date"),
        (
            {"weekly": {}, "holidays": ["2025-12-24"], "special_days": {"2025-12-24": []}},
            "2025-12-24 is both a holiday and a special day",
        ),
        ({"weekly": {"mon": [f"09:{m:02}-09:{m + 1:02}" for m in range(0, 50, 2)]}}, "at most 24"),
    ],
)
def test_malformed_calendars_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        calendar(**fields)


def test_a_calendar_is_stored_as_json_and_read_back_equal() -> None:
    hours = calendar(
        weekly={"mon": ["13:00-17:00", "08:00-12:00"], "sat": ["22:00-24:00"]},
        holidays=["2025-12-26", "2025-12-25", "2025-12-25"],
        special_days={"2025-12-24": ["09:00-12:00"]},
    )

    stored = json.loads(hours.model_dump_json())

    assert stored == {
        "timezone": "Europe/Berlin",
        "weekly": {"mon": ["08:00-12:00", "13:00-17:00"], "sat": ["22:00-24:00"]},
        "holidays": ["2025-12-25", "2025-12-26"],
        "special_days": {"2025-12-24": ["09:00-12:00"]},
    }
    assert BusinessHours.model_validate(stored) == hours


def test_round_the_clock_is_stored_as_every_day_all_day() -> None:
    stored = calendar(weekly="24/7").model_dump(mode="json")

    assert stored["weekly"] == every(WEEKDAYS, "00:00-24:00")


def test_a_changed_copy_answers_with_its_own_hours() -> None:
    saturday = berlin(2025, 1, 11, 10)
    assert not OFFICE.is_open(saturday)

    weekends_too = OFFICE.model_copy(update={"weekly": calendar(weekly="24/7").weekly})

    assert weekends_too.is_open(saturday)
    assert not OFFICE.is_open(saturday)


# Properties, on random calendars in zones with unusual clock changes, at random instants that
# are often within days of a change.

CLOCK_CHANGES = {
    "Europe/Berlin": [utc(2025, 3, 30, 1), utc(2025, 10, 26, 1)],
    "America/New_York": [utc(2025, 3, 9, 7), utc(2025, 11, 2, 6)],
    "America/Sao_Paulo": [utc(2018, 11, 4, 3), utc(2019, 2, 17, 2)],
    "America/Santiago": [utc(2025, 4, 6, 3), utc(2025, 9, 7, 4)],
    "Australia/Lord_Howe": [utc(2025, 4, 5, 15), utc(2025, 10, 4, 15, 30)],
    "Pacific/Chatham": [utc(2025, 4, 5, 14), utc(2025, 9, 27, 14)],
    "Pacific/Apia": [utc(2011, 12, 30, 10)],
    "Europe/Dublin": [utc(2025, 3, 30, 1), utc(2025, 10, 26, 1)],
    "America/St_Johns": [utc(2009, 11, 1, 2, 31), utc(2010, 3, 14, 3, 31)],
    "Antarctica/Casey": [utc(2010, 3, 4, 15)],
    # A 23-hour repeat in 1969, a skipped day in 1993.
    "Pacific/Kwajalein": [utc(1969, 9, 30, 13), utc(1993, 8, 21, 12)],
    "Asia/Kolkata": [utc(2025, 1, 1)],
}
# Minutes where clocks change, so hours often begin or end inside a skipped or repeated time.
NOTABLE_MINUTES = [0, 60, 90, 120, 135, 150, 165, 180, 1380, 1440]


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    minute = st.one_of(st.sampled_from(NOTABLE_MINUTES), st.integers(0, 1440))
    cuts = sorted(draw(st.lists(minute, max_size=6, unique=True)))
    return [
        f"{_clock(start)}-{_clock(end)}" for start, end in zip(cuts[::2], cuts[1::2], strict=False)
    ]


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02}:{minutes % 60:02}"


@st.composite
def calendars(draw: st.DrawFn) -> BusinessHours:
    timezone = draw(st.sampled_from(sorted(CLOCK_CHANGES)))
    near = draw(st.sampled_from(CLOCK_CHANGES[timezone])).date()
    days = st.dates(near - timedelta(days=10), near + timedelta(days=10))
    weekly: Any = draw(
        st.one_of(
            st.just("24/7"),
            st.dictionaries(st.sampled_from(WEEKDAYS), day_hours()),
        )
    )
    special = draw(st.dictionaries(days, day_hours(), max_size=4))
    holidays = [day for day in draw(st.lists(days, max_size=4)) if day not in special]
    return calendar(timezone, weekly=weekly, holidays=holidays, special_days=special)


def instants(hours: BusinessHours) -> st.SearchStrategy[datetime]:
    changes = st.sampled_from(CLOCK_CHANGES[hours.timezone])
    return st.one_of(
        st.builds(
            lambda change, minutes: change + timedelta(minutes=minutes),
            changes,
            st.integers(-3 * 24 * 60, 3 * 24 * 60),
        ),
        st.builds(
            lambda change, microseconds: change + timedelta(microseconds=microseconds),
            changes,
            st.integers(-(10**12), 10**12),
        ),
        # Naive bounds are how hypothesis takes them; it attaches `timezones`.
        st.datetimes(
            datetime(2000, 1, 1),  # noqa: DTZ001
            datetime(2040, 1, 1),  # noqa: DTZ001
            timezones=st.just(UTC),
        ),
    )


durations = st.one_of(
    st.integers(0, 20 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    st.integers(0, 20 * 24 * 3600 * 10**6).map(lambda micro: timedelta(microseconds=micro)),
)
properties = settings(max_examples=200, deadline=None)
A_WHILE = 700 * timedelta(days=1)  # less than SEARCH_HORIZON


@properties
@given(hours=calendars(), data=st.data())
def test_added_business_time_is_measured_back_exactly(
    hours: BusinessHours, data: st.DataObject
) -> None:
    start = data.draw(instants(hours))
    duration = data.draw(durations)

    due = hours.add_business_time(start, duration)

    if due is None:
        assert hours.business_time_between(start, start + A_WHILE) < duration
        return
    assert hours.business_time_between(start, due) == duration
    assert due >= start
    if duration:
        # Due in open time, or right where an interval closes.
        assert hours.is_open(due - timedelta(microseconds=1))


@properties
@given(hours=calendars(), data=st.data())
def test_more_business_time_is_never_due_earlier(hours: BusinessHours, data: st.DataObject) -> None:
    start = data.draw(instants(hours))
    shorter, longer = sorted((data.draw(durations), data.draw(durations)))

    due_shorter = hours.add_business_time(start, shorter)
    due_longer = hours.add_business_time(start, longer)

    if due_longer is not None:
        assert due_shorter is not None
        assert due_shorter <= due_longer


@properties
@given(hours=calendars(), data=st.data())
def test_next_open_is_open_with_no_open_time_before_it(
    hours: BusinessHours, data: st.DataObject
) -> None:
    at = data.draw(instants(hours))

    opens = hours.next_open(at)

    if opens is None:
        assert hours.business_time_between(at, at + A_WHILE) == timedelta(0)
        return
    assert opens >= at
    assert hours.is_open(opens)
    assert hours.business_time_between(at, opens) == timedelta(0)
    assert (opens == at) == hours.is_open(at)


@properties
@given(hours=calendars(), data=st.data())
def test_is_open_agrees_with_the_wall_clock(hours: BusinessHours, data: st.DataObject) -> None:
    at = data.draw(instants(hours))
    wall = at.astimezone(ZoneInfo(hours.timezone))
    # While the clock repeats an hour, the wall time alone cannot say which pass it is.
    repeated = wall.replace(fold=1 - wall.fold).utcoffset() != wall.utcoffset()

    if not repeated:
        assert hours.is_open(at) == _open_by_wall_clock(hours, wall)
    assert hours.is_open(at) == (
        hours.business_time_between(at, at + timedelta(microseconds=1)) == timedelta(microseconds=1)
    )


def _open_by_wall_clock(hours: BusinessHours, wall: datetime) -> bool:
    day = wall.date()
    if day in hours.special_days:
        intervals = hours.special_days[day]
    elif day in hours.holidays:
        intervals = ()
    else:
        intervals = hours.weekly.get(WEEKDAYS[day.weekday()], ())
    since_midnight = wall - wall.replace(hour=0, minute=0, second=0, microsecond=0)
    for interval in intervals:
        start, end = (
            timedelta(hours=int(clock[:2]), minutes=int(clock[3:])) for clock in interval.split("-")
        )
        if start <= since_midnight < end:
            return True
    return False


@properties
@given(hours=calendars(), data=st.data())
def test_business_time_adds_up_and_never_exceeds_elapsed_time(
    hours: BusinessHours, data: st.DataObject
) -> None:
    first = data.draw(instants(hours))
    second = first + data.draw(durations)
    third = second + data.draw(durations)

    first_part = hours.business_time_between(first, second)
    second_part = hours.business_time_between(second, third)

    assert timedelta(0) <= first_part <= second - first
    assert first_part + second_part == hours.business_time_between(first, third)
    assert hours.business_time_between(third, first) == -(first_part + second_part)

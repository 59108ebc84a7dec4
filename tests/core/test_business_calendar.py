"""Business calendars: hours grammar, DST, weekends, holidays, pauses, and their properties."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc.core.business_calendar import (
    BusinessCalendar,
    CalendarError,
    add_business_time,
    as_utc,
    business_time_between,
    holidays_between,
    is_working_time,
    next_working_time,
    parse_business_hours,
    public_holidays,
)

UTC = dt.UTC
H = dt.timedelta(hours=1)


def cal(zone: str, country: str | None, hours: str = "Mon-Fri 09:00-17:00") -> BusinessCalendar:
    return BusinessCalendar(parse_business_hours(hours), ZoneInfo(zone), country)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


LONDON = cal("Europe/London", "GB")
NEW_YORK = cal("America/New_York", "US")
MEXICO = cal("America/Mexico_City", "MX", "Mon-Fri 09:00-14:00,15:00-18:00")
MADRID = cal("Europe/Madrid", "ES")
TOKYO = cal("Asia/Tokyo", None, "Sun-Thu 08:30-17:30")
ALWAYS = cal("Europe/London", "GB", "24x7")


@pytest.mark.parametrize(
    ("spec", "canonical", "monday", "saturday"),
    [
        ("Mon-Fri 09:00-17:00", "Mon-Fri 09:00-17:00", ((540, 1020),), ()),
        ("mon - fri 9:00 - 17:00", "Mon-Fri 09:00-17:00", ((540, 1020),), ()),
        (
            "Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-14:00",
            "Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-14:00",
            ((480, 720), (780, 1020)),
            (),
        ),
        (
            "Sat-Mon 10:00-24:00",
            "Mon 10:00-24:00; Sat-Sun 10:00-24:00",
            ((600, 1440),),
            ((600, 1440),),
        ),
        (
            "Mon 09:00-12:00; Mon 11:00-13:00, 14:00-15:00",
            "Mon 09:00-13:00,14:00-15:00",
            ((540, 780), (840, 900)),
            (),
        ),
        ("24x7", "24x7", ((0, 1440),), ((0, 1440),)),
        ("24/7", "24x7", ((0, 1440),), ((0, 1440),)),
        ("Mon-Sun 00:00-24:00", "24x7", ((0, 1440),), ((0, 1440),)),
    ],
)
def test_parse_business_hours(
    spec: str,
    canonical: str,
    monday: tuple[tuple[int, int], ...],
    saturday: tuple[tuple[int, int], ...],
) -> None:
    hours = parse_business_hours(spec)
    assert (hours.spec, hours.days[0], hours.days[5]) == (canonical, monday, saturday)
    assert hours.always == (canonical == "24x7")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "Mon-Fri",
        "09:00-17:00",
        "Mon-Fri 17:00-09:00",
        "Mon-Fri 09:00-09:00",
        "Mon-Fri 09:00-24:30",
        "Mon-Fri 25:00-26:00",
        "Mon-Fri 09:60-17:00",
        "Mo-Fr 09:00-17:00",
        "Mon-Fri 9-17",
        "Mon-Fri 09:00-17:00;",
        "Monday 09:00-17:00",
    ],
)
def test_bad_business_hours_are_refused(spec: str) -> None:
    with pytest.raises(CalendarError):
        parse_business_hours(spec)


@pytest.mark.parametrize(
    ("calendar", "start", "hours", "due"),
    [
        # inside hours, same day; ends exactly at closing time
        (LONDON, utc(2025, 1, 13, 10), 4, utc(2025, 1, 13, 14)),
        (LONDON, utc(2025, 1, 13, 9), 8, utc(2025, 1, 13, 17)),
        # §3.2: received 07:00 GMT, the clock starts at 09:00 GMT
        (LONDON, utc(2025, 1, 13, 7), 4, utc(2025, 1, 13, 13)),
        # received after hours on Friday: Monday morning
        (LONDON, utc(2025, 1, 17, 18, 30), 4, utc(2025, 1, 20, 13)),
        # received on Saturday
        (LONDON, utc(2025, 1, 18, 12), 1, utc(2025, 1, 20, 10)),
        # spans several days, carried across a weekend
        (LONDON, utc(2025, 1, 16, 15), 24, utc(2025, 1, 21, 15)),
        # UK Christmas and Boxing Day 2025, then the weekend
        (LONDON, utc(2025, 12, 24, 15), 4, utc(2025, 12, 29, 11)),
        # Christmas 2027 falls on a Saturday: the substitute days (Mon 27, Tue 28) are off
        (LONDON, utc(2027, 12, 24, 16), 2, utc(2027, 12, 29, 10)),
        # DST starts 30 Mar 2025: Friday 15:00-17:00 GMT, then Monday from 09:00 BST = 08:00 UTC
        (LONDON, utc(2025, 3, 28, 15), 4, utc(2025, 3, 31, 10)),
        # DST ends 26 Oct 2025: Friday 16:00-17:00 BST, then Monday from 09:00 GMT = 09:00 UTC
        (LONDON, utc(2025, 10, 24, 15), 4, utc(2025, 10, 27, 12)),
        # New York DST starts 9 Mar 2025 (16:00 EST → Monday 09:00 EDT) and ends 2 Nov 2025
        (NEW_YORK, utc(2025, 3, 7, 21), 2, utc(2025, 3, 10, 14)),
        (NEW_YORK, utc(2025, 10, 31, 20), 2, utc(2025, 11, 3, 15)),
        # Juneteenth and Independence Day (observed on Friday 3 Jul 2026)
        (NEW_YORK, utc(2025, 6, 18, 20), 2, utc(2025, 6, 20, 14)),
        (NEW_YORK, utc(2026, 7, 2, 20), 2, utc(2026, 7, 6, 14)),
        # Mexico: lunch break, Independence Day 16 Sep 2025; Mexico City has no DST (UTC-6)
        (MEXICO, utc(2025, 9, 15, 19), 2, utc(2025, 9, 15, 22)),
        (MEXICO, utc(2025, 9, 15, 23), 2, utc(2025, 9, 17, 16)),
        # Spain: Epiphany (6 Jan 2025 is a Monday)
        (MADRID, utc(2025, 1, 3, 15), 2, utc(2025, 1, 7, 9)),
        # a Sunday-to-Thursday week without holidays: Friday 09:00 JST → Sunday 09:30 JST
        (TOKYO, utc(2025, 1, 10, 0), 1, utc(2025, 1, 12, 0, 30)),
        # 24x7 runs through weekends, DST and holidays
        (ALWAYS, utc(2025, 12, 24, 23), 30, utc(2025, 12, 26, 5)),
        (ALWAYS, utc(2025, 3, 30, 0), 3, utc(2025, 3, 30, 3)),
    ],
)
def test_add_business_time(
    calendar: BusinessCalendar, start: dt.datetime, hours: float, due: dt.datetime
) -> None:
    assert add_business_time(calendar, start, hours * H) == due


def test_a_long_target_counts_working_days_only() -> None:
    # 72 working hours from Monday 14 Apr 09:00 BST = 9 working days; Good Friday is off
    # (Easter Monday is a bank holiday only in parts of the UK, not UK-wide)
    due = add_business_time(LONDON, utc(2025, 4, 14, 8), 72 * H)
    assert due == utc(2025, 4, 25, 16)


def test_pauses_do_not_count_and_may_overlap() -> None:
    start = utc(2025, 1, 13, 9)
    pauses = [
        (utc(2025, 1, 13, 10), utc(2025, 1, 13, 12)),
        (utc(2025, 1, 13, 11), utc(2025, 1, 13, 13)),  # overlaps the first
        (utc(2025, 1, 13, 20), utc(2025, 1, 14, 10)),  # mostly outside hours: 1 h counts
        (utc(2025, 1, 10, 9), utc(2025, 1, 10, 17)),  # before the start: ignored
    ]
    assert add_business_time(LONDON, start, 4 * H) == utc(2025, 1, 13, 13)
    assert add_business_time(LONDON, start, 4 * H, pauses) == utc(2025, 1, 13, 16)
    assert add_business_time(LONDON, start, 8 * H, pauses) == utc(2025, 1, 14, 13)


def test_next_working_time_and_is_working_time() -> None:
    assert next_working_time(LONDON, utc(2025, 1, 13, 10)) == utc(2025, 1, 13, 10)
    assert next_working_time(LONDON, utc(2025, 1, 13, 17)) == utc(2025, 1, 14, 9)
    assert is_working_time(LONDON, utc(2025, 1, 13, 9))
    assert not is_working_time(LONDON, utc(2025, 1, 13, 17))
    assert not is_working_time(LONDON, utc(2025, 12, 25, 12))
    assert is_working_time(ALWAYS, utc(2025, 12, 25, 3))


def test_business_time_between() -> None:
    week = business_time_between(LONDON, utc(2025, 1, 13), utc(2025, 1, 20))
    christmas_week = business_time_between(LONDON, utc(2025, 12, 22), utc(2025, 12, 29))
    assert (week, christmas_week) == (40 * H, 24 * H)
    assert business_time_between(LONDON, utc(2025, 1, 20), utc(2025, 1, 13)) == dt.timedelta(0)


def test_holidays_between_lists_skipped_working_days() -> None:
    skipped = holidays_between(LONDON, utc(2025, 12, 20), utc(2026, 1, 5))
    assert [day.isoformat() for day, _ in skipped] == ["2025-12-25", "2025-12-26", "2026-01-01"]
    assert holidays_between(ALWAYS, utc(2025, 12, 20), utc(2026, 1, 5)) == ()
    assert holidays_between(TOKYO, utc(2025, 12, 20), utc(2026, 1, 5)) == ()


def test_public_holidays_are_cached_per_country_and_year() -> None:
    assert public_holidays("GB", 2025) is public_holidays("GB", 2025)
    assert dt.date(2025, 12, 26) in public_holidays("gb", 2025)
    assert public_holidays("ZZ", 2025) == {}


def test_naive_times_and_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        as_utc(dt.datetime(2025, 1, 13, 9))
    with pytest.raises(ValueError, match="negative"):
        add_business_time(LONDON, utc(2025, 1, 13, 9), -H)


def test_aware_times_in_any_zone_give_utc() -> None:
    paris = dt.datetime(2025, 1, 13, 8, tzinfo=ZoneInfo("Europe/Paris"))  # 07:00 UTC
    due = add_business_time(LONDON, paris, 4 * H)
    assert due == utc(2025, 1, 13, 13) and due.tzinfo is UTC


CALENDARS = [LONDON, NEW_YORK, MEXICO, MADRID, TOKYO]
moments = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=1, max_value=120 * 60).map(lambda m: dt.timedelta(minutes=m))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CALENDARS), moments, durations)
def test_due_is_after_start_inside_working_time_and_exact(
    calendar: BusinessCalendar, start: dt.datetime, duration: dt.timedelta
) -> None:
    due = add_business_time(calendar, start, duration)
    assert due >= start + duration
    assert is_working_time(calendar, due - dt.timedelta(microseconds=1))
    assert business_time_between(calendar, start, due) == duration


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([*CALENDARS, ALWAYS]),
    moments,
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=10)),
    durations,
)
def test_due_is_monotonic_in_start(
    calendar: BusinessCalendar, start: dt.datetime, delay: dt.timedelta, duration: dt.timedelta
) -> None:
    assert add_business_time(calendar, start, duration) <= add_business_time(
        calendar, start + delay, duration
    )

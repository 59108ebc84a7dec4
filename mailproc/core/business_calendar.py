"""Business calendars: weekly working hours in a zone, public holidays, business-time arithmetic."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo

import holidays

UTC = dt.UTC
ALWAYS = "24x7"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {name.lower(): index for index, name in enumerate(WEEKDAYS)}
_MINUTES_PER_DAY = 24 * 60
_MAX_IDLE_DAYS = 400  # consecutive days without working time before a calendar counts as empty
_SEGMENT = re.compile(
    r"(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)"
    r" (?P<ranges>\d{1,2}:\d{2}-\d{1,2}:\d{2}(?:,\d{1,2}:\d{2}-\d{1,2}:\d{2})*)"
)
_SEPARATOR_SPACES = re.compile(r"\s*([,\-;])\s*")

Span = tuple[dt.datetime, dt.datetime]
_T = TypeVar("_T", int, dt.datetime)


class CalendarError(ValueError):
    """A business-hours specification or a calendar cannot be used."""


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Working minutes per weekday, Monday first: ``days[0]`` is a tuple of [start, end) pairs."""

    spec: str
    days: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def always(self) -> bool:
        """True for round-the-clock hours (24x7), which also ignore public holidays."""
        return self.spec == ALWAYS


@lru_cache(maxsize=256)
def parse_business_hours(spec: str) -> WeeklyHours:
    """Parse a business-hours specification.

    Grammar (case-insensitive, spaces around ``,`` ``-`` ``;`` ignored)::

        hours   := "24x7" | segment (";" segment)*
        segment := days " " ranges
        days    := day ["-" day] ("," day ["-" day])*      day := Mon | Tue | … | Sun
        ranges  := HH:MM "-" HH:MM ("," HH:MM "-" HH:MM)*  00:00 ≤ start < end ≤ 24:00

    A day range may wrap (``Fri-Mon``); ranges given twice for a day are merged.
    Examples: ``Mon-Fri 09:00-17:00``, ``Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-14:00``.
    """
    text = _SEPARATOR_SPACES.sub(r"\1", " ".join(spec.split())).lower()
    if text in {"24x7", "24/7"}:
        text = "mon-sun 00:00-24:00"
    minutes: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
    for segment in text.split(";"):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise CalendarError(f"business hours {spec!r}: cannot read {segment!r}")
        ranges = [_minute_range(part, spec) for part in match["ranges"].split(",")]
        for day in _weekdays(match["days"], spec):
            minutes[day].extend(ranges)
    if not any(minutes):
        raise CalendarError(f"business hours {spec!r}: no working time")
    days = tuple(tuple(_merged(day)) for day in minutes)
    return WeeklyHours(spec=_canonical(days), days=days)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working hours in a time zone, minus the public holidays of ``country`` (None: none)."""

    hours: WeeklyHours
    zone: ZoneInfo
    country: str | None

    @property
    def holiday_country(self) -> str | None:
        """The country whose public holidays are days off; None for 24x7 hours or no country."""
        return None if self.hours.always else self.country

    @property
    def description(self) -> str:
        """Human-readable summary, e.g. ``Mon-Fri 09:00-17:00 Europe/London, holidays of GB``."""
        country = self.holiday_country
        holidays_part = f"public holidays of {country}" if country else "no public holidays"
        return f"{self.hours.spec} {self.zone.key}, {holidays_part}"

    def is_holiday(self, day: dt.date) -> bool:
        """True when ``day`` is a public holiday that this calendar takes off."""
        country = self.holiday_country
        return country is not None and day in public_holidays(country, day.year)


@lru_cache(maxsize=256)
def holidays_supported(country: str) -> bool:
    """True when the ``holidays`` package knows the public holidays of ``country``.

    Asks for that one country (``list_supported_countries`` imports every country's module).
    """
    try:
        holidays.country_holidays(country.upper())
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=1024)
def public_holidays(country: str, year: int) -> Mapping[dt.date, str]:
    """Public holidays (date → name) of ``country`` in ``year``; empty when unknown."""
    try:
        calendar = holidays.country_holidays(country.upper(), years=year)
    except NotImplementedError:
        return MappingProxyType({})
    return MappingProxyType(dict(calendar.items()))


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; naive datetimes are refused because their zone is unknown."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} given where an aware one is needed")
    return moment.astimezone(UTC)


def add_business_time(
    calendar: BusinessCalendar,
    start: dt.datetime,
    duration: dt.timedelta,
    pauses: Sequence[Span] = (),
) -> dt.datetime:
    """The instant at which ``duration`` of working time has elapsed since ``start``.

    Time inside ``pauses`` (UTC intervals) does not count. A due time may be the very end of a
    working interval (17:00 for 09:00-17:00); a zero duration gives the next working instant.
    """
    if duration < dt.timedelta(0):
        raise ValueError("a business duration cannot be negative")
    remaining = duration
    utc_pauses = _merged((as_utc(begin), as_utc(end)) for begin, end in pauses)
    for span_start, span_end in _spans(calendar, as_utc(start), utc_pauses):
        length = span_end - span_start
        if remaining <= length:
            return span_start + remaining
        remaining -= length
    raise CalendarError(f"calendar {calendar.description} has no working time left")


def next_working_time(calendar: BusinessCalendar, moment: dt.datetime) -> dt.datetime:
    """``moment`` itself when it is working time, else the start of the next working interval."""
    return add_business_time(calendar, moment, dt.timedelta(0))


def is_working_time(calendar: BusinessCalendar, moment: dt.datetime) -> bool:
    """True when ``moment`` lies inside a working interval (start included, end excluded)."""
    return next_working_time(calendar, moment) == as_utc(moment)


def is_working_day(calendar: BusinessCalendar, moment: dt.datetime) -> bool:
    """True when the local day of ``moment`` has working time (not a day off or a holiday)."""
    day = as_utc(moment).astimezone(calendar.zone).date()
    return any(end > start for start, end in _day_spans(calendar, day))


def business_time_between(
    calendar: BusinessCalendar, start: dt.datetime, end: dt.datetime
) -> dt.timedelta:
    """Working time between two instants (zero when ``end`` is not after ``start``)."""
    end = as_utc(end)
    total = dt.timedelta(0)
    for span_start, span_end in _spans(calendar, as_utc(start), ()):
        if span_start >= end:
            break
        total += min(span_end, end) - span_start
    return total


def holidays_between(
    calendar: BusinessCalendar, start: dt.datetime, end: dt.datetime
) -> tuple[tuple[dt.date, str], ...]:
    """Holidays that fell on working weekdays between two instants (local dates, inclusive)."""
    country = calendar.holiday_country
    if country is None:
        return ()
    day = as_utc(start).astimezone(calendar.zone).date()
    last = as_utc(end).astimezone(calendar.zone).date()
    found: list[tuple[dt.date, str]] = []
    while day <= last:
        name = public_holidays(country, day.year).get(day)
        if name is not None and calendar.hours.days[day.weekday()]:
            found.append((day, name))
        day += dt.timedelta(days=1)
    return tuple(found)


def _spans(
    calendar: BusinessCalendar, start: dt.datetime, pauses: Sequence[Span]
) -> Iterator[Span]:
    """Working intervals in UTC from ``start`` on, in order, clipped to ``start``, minus pauses."""
    day = start.astimezone(calendar.zone).date()
    idle_days = 0
    while idle_days < _MAX_IDLE_DAYS:
        idle_days += 1
        for span_start, span_end in _day_spans(calendar, day):
            if span_end > span_start:
                idle_days = 0
            if span_end > start:
                yield from _without_pauses(max(span_start, start), span_end, pauses)
        day += dt.timedelta(days=1)


@lru_cache(maxsize=8192)  # every ticket of a day walks the same days of the same calendars
def _day_spans(calendar: BusinessCalendar, day: dt.date) -> tuple[Span, ...]:
    """The working intervals of one local day, in UTC (none on a holiday)."""
    if calendar.is_holiday(day):
        return ()
    return tuple(
        (_instant(day, first, calendar.zone), _instant(day, last, calendar.zone))
        for first, last in calendar.hours.days[day.weekday()]
    )


def _without_pauses(start: dt.datetime, end: dt.datetime, pauses: Sequence[Span]) -> Iterator[Span]:
    for pause_start, pause_end in pauses:
        if pause_end <= start:
            continue
        if pause_start >= end:
            break
        if pause_start > start:
            yield start, pause_start
        start = pause_end
        if start >= end:
            return
    if start < end:
        yield start, end


def _merged(intervals: Iterable[tuple[_T, _T]]) -> list[tuple[_T, _T]]:
    """Sorted, non-empty, non-overlapping intervals covering the same points."""
    merged: list[tuple[_T, _T]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _instant(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """UTC instant of local wall time ``minute`` on ``day`` (1440 is the next midnight)."""
    days, minute = divmod(minute, _MINUTES_PER_DAY)
    local = dt.datetime.combine(
        day + dt.timedelta(days=days), dt.time(minute // 60, minute % 60), tzinfo=zone
    )
    return local.astimezone(UTC)


def _weekdays(days: str, spec: str) -> list[int]:
    selected: list[int] = []
    for part in days.split(","):
        first, _, last = part.partition("-")
        if first not in _DAY_INDEX or (last and last not in _DAY_INDEX):
            raise CalendarError(f"business hours {spec!r}: unknown day in {part!r}")
        start = _DAY_INDEX[first]
        count = (_DAY_INDEX[last] - start) % 7 + 1 if last else 1
        selected.extend((start + offset) % 7 for offset in range(count))
    return selected


def _canonical(days: tuple[tuple[tuple[int, int], ...], ...]) -> str:
    """The shortest spec for ``days``: runs of consecutive weekdays with equal hours."""
    if all(day == ((0, _MINUTES_PER_DAY),) for day in days):
        return ALWAYS
    segments: list[str] = []
    first = 0
    while first < len(days):
        last = first
        while last + 1 < len(days) and days[last + 1] == days[first]:
            last += 1
        if days[first]:
            names = WEEKDAYS[first] if first == last else f"{WEEKDAYS[first]}-{WEEKDAYS[last]}"
            ranges = ",".join(f"{_clock(start)}-{_clock(end)}" for start, end in days[first])
            segments.append(f"{names} {ranges}")
        first = last + 1
    return "; ".join(segments)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute_range(text: str, spec: str) -> tuple[int, int]:
    start, end = (_minutes(part, spec) for part in text.split("-"))
    if not start < end:
        raise CalendarError(f"business hours {spec!r}: {text!r} does not end after it starts")
    return start, end


def _minutes(text: str, spec: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    value = hours * 60 + minutes
    if minutes > 59 or value > _MINUTES_PER_DAY:
        raise CalendarError(f"business hours {spec!r}: {text!r} is not a time of day")
    return value

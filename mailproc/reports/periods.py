"""Report periods: calendar weeks (Monday to Sunday), months and quarters in the company's
time zone, with inclusive end dates and the UTC instants that bound them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo


class PeriodKind(StrEnum):
    """The lengths a report covers."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Period:
    """The local days ``first`` to ``last`` (both included) in ``zone``."""

    first: dt.date
    last: dt.date
    zone: ZoneInfo
    kind: PeriodKind = PeriodKind.CUSTOM

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"a period cannot end ({self.last}) before it starts ({self.first})")

    @property
    def start(self) -> dt.datetime:
        """The first instant of the period (UTC)."""
        return local_midnight(self.first, self.zone)

    @property
    def end(self) -> dt.datetime:
        """The first instant after the period (UTC): the bound is exclusive."""
        return local_midnight(self.last + dt.timedelta(days=1), self.zone)

    @property
    def days(self) -> list[dt.date]:
        """Every local day of the period."""
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def previous(self) -> Period:
        """The period of the same kind just before (same length for a custom one)."""
        if self.kind is PeriodKind.MONTH:
            return month_of(self.first - dt.timedelta(days=1), self.zone)
        if self.kind is PeriodKind.QUARTER:
            return quarter_of(self.first - dt.timedelta(days=1), self.zone)
        length = self.last - self.first + dt.timedelta(days=1)
        return Period(self.first - length, self.first - dt.timedelta(days=1), self.zone, self.kind)

    def label(self) -> str:
        """A short name: ``2026-W49``, ``2026-11``, ``2026-Q4`` or ``2026-11-30..2026-12-06``."""
        if self.kind is PeriodKind.WEEK:
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind is PeriodKind.MONTH:
            return f"{self.first:%Y-%m}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.first.year}-Q{(self.first.month - 1) // 3 + 1}"
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant at which ``day`` begins in ``zone``."""
    return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)


def week_of(day: dt.date, zone: ZoneInfo) -> Period:
    """The Monday-to-Sunday week holding ``day``."""
    monday = day - dt.timedelta(days=day.weekday())
    return Period(monday, monday + dt.timedelta(days=6), zone, PeriodKind.WEEK)


def month_of(day: dt.date, zone: ZoneInfo) -> Period:
    """The calendar month holding ``day``."""
    first = day.replace(day=1)
    return Period(first, _months_on(first, 1) - dt.timedelta(days=1), zone, PeriodKind.MONTH)


def quarter_of(day: dt.date, zone: ZoneInfo) -> Period:
    """The calendar quarter holding ``day``."""
    first = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return Period(first, _months_on(first, 3) - dt.timedelta(days=1), zone, PeriodKind.QUARTER)


def period_of(kind: PeriodKind, day: dt.date, zone: ZoneInfo) -> Period:
    """The week, month or quarter holding ``day``."""
    if kind is PeriodKind.WEEK:
        return week_of(day, zone)
    if kind is PeriodKind.MONTH:
        return month_of(day, zone)
    if kind is PeriodKind.QUARTER:
        return quarter_of(day, zone)
    raise ValueError(f"no calendar period of kind {kind}")


def last_full(kind: PeriodKind, now: dt.datetime, zone: ZoneInfo) -> Period:
    """The last whole period of ``kind`` before the one ``now`` falls in."""
    return period_of(kind, now.astimezone(zone).date(), zone).previous()


def choose_period(
    now: dt.datetime,
    zone: ZoneInfo,
    first: dt.date | None = None,
    last: dt.date | None = None,
    kind: PeriodKind | None = None,
) -> Period:
    """The period a ``report`` command names.

    ``--from`` and ``--to`` (inclusive) give the days; with ``--period`` alone, the last
    full week, month or quarter; ``--period`` with one date, the period holding that date;
    ``--from`` alone runs to today; ``--to`` alone is the week ending that day. Nothing at
    all: the last full week.
    """
    if first is not None and last is not None:
        return Period(first, last, zone)
    anchor = first or last
    if kind is not None and kind is not PeriodKind.CUSTOM:
        return period_of(kind, anchor, zone) if anchor else last_full(kind, now, zone)
    if first is not None:
        return Period(first, now.astimezone(zone).date(), zone)
    if last is not None:
        return Period(last - dt.timedelta(days=6), last, zone)
    return last_full(PeriodKind.WEEK, now, zone)


def _months_on(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)

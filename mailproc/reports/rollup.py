"""The hourly roll-up of the KPI report (PostgreSQL; ``store/models_reports.py``).

``refresh`` (the scheduler tick) rolls up every whole UTC hour up to the current one and
rolls up again the hours the triggers marked dirty. ``split`` tells the report which hours
of a period it may sum from the roll-up and which stretches it must count live: the dirty
hours, the hours not rolled up yet, the part-hours at the ends of a period in a zone whose
midnight is not on a UTC hour, the hour holding ``now`` (first-response deadlines not yet
passed) and the hour holding ``now`` - 48 h (low scores whose follow-up window is closing).
The roll-up counts with the same queries as the live report (``reports/counts.py``), so
the sums are exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, case, delete, false, func, or_, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailproc.reports.counts import (
    NEGATIVE_FOLLOW_UP_HOURS,
    ROLLED_UP,
    Counts,
    Within,
    count,
    error_codes,
)
from mailproc.store.models_reports import ReportDirtyHour, ReportHour, ReportHourCode, ReportRollup

HOUR: Final = dt.timedelta(hours=1)
LOCK: Final = 0x16_2026  # pg_advisory_xact_lock: one refresh at a time
MAX_LIVE_SPANS: Final = 200  # more stretches to count live than this: count it all live

Span = tuple[dt.datetime | None, dt.datetime | None]  # [start, end); None: unbounded


def active(session: Session) -> dt.datetime | None:
    """How far the roll-up reaches (None: not kept, e.g. on SQLite, or never refreshed)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.scalar(select(ReportRollup.rolled_until).where(ReportRollup.id == 1))


def refresh(session: Session, now: dt.datetime) -> int:
    """Roll up the hours before ``now``'s hour that are new or dirty; how many hours were
    (re)computed. PostgreSQL only (a no-op elsewhere)."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    session.execute(select(func.pg_advisory_xact_lock(LOCK)))
    until = floor_hour(now)
    reached = active(session)
    dirty = session.execute(select(ReportDirtyHour.id, ReportDirtyHour.hour)).all()
    spans: list[Span] = merge((hour, hour + HOUR) for hour in {hour for _, hour in dirty})
    if reached is None or reached < until:
        spans.append((reached, until))
    if not spans:
        return 0
    within = _within(spans)
    session.execute(delete(ReportHour).where(within(ReportHour.hour)))
    session.execute(delete(ReportHourCode).where(within(ReportHourCode.hour)))
    per_hour = count(session, within, None, _hour)
    rows = [
        {"hour": hour, **{name: getattr(counts, name) for name in ROLLED_UP}}
        for hour, counts in per_hour.items()
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(ReportHour), rows[start : start + 5000])
    codes = [
        {"hour": hour, "code": code, "tickets": n}
        for hour, code, n in error_codes(session, within, _hour)
    ]
    for start in range(0, len(codes), 5000):
        session.execute(insert(ReportHourCode), codes[start : start + 5000])
    if dirty:
        session.execute(
            delete(ReportDirtyHour).where(ReportDirtyHour.id.in_([row.id for row in dirty]))
        )
    if reached is None or reached < until:
        session.execute(
            insert(ReportRollup)
            .values(id=1, rolled_until=until)
            .on_conflict_do_update(index_elements=["id"], set_={"rolled_until": until})
        )
    return len(per_hour)


def split(
    session: Session, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> tuple[list[Span], list[Span]]:
    """(rolled-up spans, live spans) that together make ``[start, end)``."""
    reached = active(session)
    first, last = ceil_hour(start), floor_hour(end)
    if reached is not None:
        last = min(last, reached)
    if reached is None or first >= last:
        return [], [(start, end)]
    skip = {floor_hour(now), floor_hour(now - dt.timedelta(hours=NEGATIVE_FOLLOW_UP_HOURS))}
    skip.update(
        session.scalars(
            select(ReportDirtyHour.hour)
            .where(ReportDirtyHour.hour >= first, ReportDirtyHour.hour < last)
            .distinct()
        )
    )
    hours = [first + n * HOUR for n in range(int((last - first) / HOUR))]
    rolled = merge((hour, hour + HOUR) for hour in hours if hour not in skip)
    live: list[Span] = []
    edge = start
    for a, b in rolled:
        if edge < a:  # type: ignore[operator]
            live.append((edge, a))
        edge = b  # type: ignore[assignment]
    if edge < end:
        live.append((edge, end))
    if len(live) > MAX_LIVE_SPANS:  # e.g. a bulk change before the next tick: one plain scan
        return [], [(start, end)]
    return rolled, live


def rolled_counts(session: Session, spans: Sequence[Span], now: dt.datetime) -> Counts:
    """The sums of the roll-up over ``spans`` (whole hours) as of ``now``."""
    if not spans:
        return Counts()
    hour = ReportHour.hour
    before_now = hour < floor_hour(now)
    closed = hour < floor_hour(now - dt.timedelta(hours=NEGATIVE_FOLLOW_UP_HOURS))
    columns: dict[str, ColumnElement[Any]] = {
        name: func.sum(getattr(ReportHour, name)) for name in ROLLED_UP
    }
    columns["due"] = func.sum(case((before_now, ReportHour.due), else_=0))
    columns["due_met"] = func.sum(case((before_now, ReportHour.due_met), else_=0))
    columns["negative_due"] = func.sum(
        case((closed, ReportHour.negative), else_=ReportHour.negative_followed)
    )
    row = session.execute(
        select(*(value.label(name) for name, value in columns.items())).where(_within(spans)(hour))
    ).one()
    found = Counts()
    for name in columns:
        setattr(found, name, type(getattr(found, name))(getattr(row, name) or 0))
    return found


def rolled_codes(session: Session, spans: Sequence[Span]) -> dict[str, int]:
    """Tickets per error code opened in ``spans`` (whole hours), from the roll-up."""
    if not spans:
        return {}
    rows = session.execute(
        select(ReportHourCode.code, func.sum(ReportHourCode.tickets))
        .where(_within(spans)(ReportHourCode.hour))
        .group_by(ReportHourCode.code)
    )
    return {code: int(n) for code, n in rows}


def merge(spans: Iterable[tuple[dt.datetime, dt.datetime]]) -> list[Span]:
    """Touching or overlapping spans joined, in order."""
    merged: list[list[dt.datetime]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def floor_hour(moment: dt.datetime) -> dt.datetime:
    """The UTC hour that holds ``moment``."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: dt.datetime) -> dt.datetime:
    """The first UTC hour that starts at or after ``moment``."""
    floor = floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def in_spans(term: Any, spans: Sequence[Span]) -> ColumnElement[bool]:
    """SQL: ``term`` lies in one of ``spans``."""
    ranges = []
    for a, b in spans:
        bounds = [true()]
        if a is not None:
            bounds.append(term >= a)
        if b is not None:
            bounds.append(term < b)
        ranges.append(and_(*bounds))
    return or_(false(), *ranges)


def _within(spans: Sequence[Span]) -> Within:
    def within(column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
        return in_spans(column, spans)

    return within


def _hour(column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    return func.date_trunc("hour", column, text("'UTC'"))

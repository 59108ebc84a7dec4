"""KPI tiles and chart series for the dashboard (targets from the procedures §3, §4.3, §10.1).

A stand-in until the KPI report (``mailproc/reports/metrics.py``) lands: the same rules, kept
small, computed from one query over the tickets of the last eight weeks.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailproc.store.models import Ticket
from mailproc.tickets.board import raw_time, utc

FIRST_RESPONSE_TARGET = 0.95  # §3.1 / §10.1: 95% first-response adherence
RESOLVED_IN_TIME_TARGET = 0.80  # §3.1: 80% resolved within the resolution time
SATISFACTION_TARGET = 4.5  # §8 / §10.1
ESCALATION_TARGET = 0.10  # §4.3 / §10.1: under 10% of tickets
TICKETS_PER_DAY = 1000 / 30  # §10.1: ~1,000 a month, for reference
RESOLUTION_TIME = {  # §10.1, wall-clock from receipt
    "P0": dt.timedelta(hours=4),
    "P1": dt.timedelta(hours=24),
    "P2": dt.timedelta(hours=72),
    "P3": dt.timedelta(hours=72),
}
CHART_DAYS = 14
CHART_WEEKS = 8
CODE_DAYS = 30


@dataclass(slots=True)  # not frozen: built once per ticket of eight weeks, frozen is slower
class TicketFacts:
    """The columns of one ticket that the KPIs use."""

    received_at: dt.datetime
    priority: str | None
    first_response_due: dt.datetime | None
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    escalated: bool
    survey_score: int | None
    survey_answered_at: dt.datetime | None
    error_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tile:
    """One KPI against its target; ``ok`` is None for figures without a pass mark."""

    name: str
    value: str
    target: str
    ok: bool | None
    basis: str


@dataclass(frozen=True, slots=True)
class Series:
    """Labels and values of one chart (``None``: no data for that label)."""

    labels: tuple[str, ...]
    values: dict[str, tuple[float | None, ...]]


def load_facts(session: Session, since: dt.datetime) -> list[TicketFacts]:
    """Tickets received, answered, resolved or rated since ``since``."""
    query = select(
        raw_time(Ticket.received_at),
        Ticket.priority,
        raw_time(Ticket.first_response_due),
        raw_time(Ticket.first_responded_at),
        raw_time(Ticket.resolved_at),
        Ticket.escalated_to,
        Ticket.survey_score,
        raw_time(Ticket.survey_answered_at),
        Ticket.classification["error_codes"].label("error_codes"),
    ).where(
        or_(
            Ticket.received_at >= since,
            Ticket.first_response_due >= since,
            Ticket.resolved_at >= since,
            Ticket.survey_answered_at >= since,
        )
    )
    return [
        TicketFacts(
            received_at=utc(r.received_at) or since,
            priority=r.priority,
            first_response_due=utc(r.first_response_due),
            first_responded_at=utc(r.first_responded_at),
            resolved_at=utc(r.resolved_at),
            escalated=bool(r.escalated_to),
            survey_score=r.survey_score,
            survey_answered_at=utc(r.survey_answered_at),
            error_codes=tuple(r.error_codes or ()),
        )
        for r in session.connection().execute(query).all()  # Core rows, raw times: see utc()
    ]


def first_response_settled(facts: TicketFacts, now: dt.datetime) -> tuple[dt.datetime, bool] | None:
    """When the first-response SLA was decided and whether it was met; None while it runs."""
    due, answered = facts.first_response_due, facts.first_responded_at
    if due is None:
        return None
    if answered is not None and answered <= due:
        return answered, True
    if answered is not None:
        return answered, False
    return (due, False) if due <= now else None


def _between(moment: dt.datetime | None, start: dt.datetime, end: dt.datetime) -> bool:
    return moment is not None and start <= moment < end


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def tiles(facts: Sequence[TicketFacts], start: dt.datetime, now: dt.datetime) -> list[Tile]:
    """The KPI tiles for the period from ``start`` to ``now``."""
    end = now + dt.timedelta(microseconds=1)
    settled = [
        s for f in facts if (s := first_response_settled(f, now)) and _between(s[0], start, end)
    ]
    met = sum(ok for _, ok in settled)
    resolved = [f for f in facts if _between(f.resolved_at, start, end)]
    in_time = sum(
        f.resolved_at is not None
        and f.resolved_at - f.received_at
        <= RESOLUTION_TIME.get(f.priority or "P3", RESOLUTION_TIME["P3"])
        for f in resolved
    )
    scores = [
        f.survey_score
        for f in facts
        if f.survey_score is not None and _between(f.survey_answered_at, start, end)
    ]
    received = [f for f in facts if _between(f.received_at, start, end)]
    escalated = sum(f.escalated for f in received)
    days = max((now - start) / dt.timedelta(days=1), 1 / 24)
    expected = TICKETS_PER_DAY * max(1.0, round(days))
    return [
        Tile(
            "First response in SLA",
            _percent(met, len(settled)),
            f"≥ {FIRST_RESPONSE_TARGET:.0%}",
            met >= FIRST_RESPONSE_TARGET * len(settled) if settled else None,
            f"{met} of {len(settled)} met",
        ),
        Tile(
            "Resolved in target time",
            _percent(in_time, len(resolved)),
            f"≥ {RESOLVED_IN_TIME_TARGET:.0%}",
            in_time >= RESOLVED_IN_TIME_TARGET * len(resolved) if resolved else None,
            f"{in_time} of {len(resolved)} (P0 4 h, P1 24 h, P2-P3 72 h)",
        ),
        Tile(
            "Satisfaction",
            f"{sum(scores) / len(scores):.1f}" if scores else "n/a",
            f"≥ {SATISFACTION_TARGET}",
            sum(scores) >= SATISFACTION_TARGET * len(scores) if scores else None,
            f"{len(scores)} answer(s)",
        ),
        Tile(
            "Escalation rate",
            _percent(escalated, len(received)),
            f"< {ESCALATION_TARGET:.0%}",
            escalated < ESCALATION_TARGET * len(received) if received else None,
            f"{escalated} of {len(received)} new tickets",
        ),
        Tile("New tickets", str(len(received)), f"≈ {expected:.0f}", None, "~1,000 a month"),
    ]


def start_of_day(now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Local midnight of ``now``'s day, in UTC."""
    local = now.astimezone(zone)
    return dt.datetime.combine(local.date(), dt.time(), zone).astimezone(dt.UTC)


def start_of_week(now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Local Monday 00:00 of ``now``'s week, in UTC."""
    local = now.astimezone(zone).date()
    monday = local - dt.timedelta(days=local.weekday())
    return dt.datetime.combine(monday, dt.time(), zone).astimezone(dt.UTC)


def _local_date(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    return moment.astimezone(zone).date()


def tickets_per_day(facts: Iterable[TicketFacts], now: dt.datetime, zone: ZoneInfo) -> Series:
    """New tickets per local day of the last two weeks, per priority."""
    today = _local_date(now, zone)
    days = [today - dt.timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    counts: Counter[tuple[dt.date, str]] = Counter(
        (_local_date(f.received_at, zone), f.priority or "none") for f in facts
    )
    priorities = ["P0", "P1", "P2", "P3"]
    if any(p == "none" for _, p in counts):
        priorities.append("none")
    return Series(
        tuple(f"{d:%d %b}" for d in days),
        {p: tuple(float(counts[(d, p)]) for d in days) for p in priorities},
    )


def _weeks(now: dt.datetime, zone: ZoneInfo) -> list[dt.date]:
    monday = _local_date(start_of_week(now, zone), zone)
    return [monday - dt.timedelta(weeks=n) for n in range(CHART_WEEKS - 1, -1, -1)]


def _week_of(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    day = _local_date(moment, zone)
    return day - dt.timedelta(days=day.weekday())


def first_response_per_week(
    facts: Iterable[TicketFacts], now: dt.datetime, zone: ZoneInfo
) -> Series:
    """Share of first responses within the SLA per week (by when each was decided), in %."""
    weeks = _weeks(now, zone)
    met: Counter[dt.date] = Counter()
    total: Counter[dt.date] = Counter()
    for f in facts:
        settled = first_response_settled(f, now)
        if settled:
            week = _week_of(settled[0], zone)
            total[week] += 1
            met[week] += settled[1]
    return Series(
        tuple(f"{w:%d %b}" for w in weeks),
        {"met %": tuple(100 * met[w] / total[w] if total[w] else None for w in weeks)},
    )


def satisfaction_per_week(facts: Iterable[TicketFacts], now: dt.datetime, zone: ZoneInfo) -> Series:
    """Average survey score per week of answer."""
    weeks = _weeks(now, zone)
    scores: dict[dt.date, list[int]] = {}
    for f in facts:
        if f.survey_score is not None and f.survey_answered_at is not None:
            scores.setdefault(_week_of(f.survey_answered_at, zone), []).append(f.survey_score)
    return Series(
        tuple(f"{w:%d %b}" for w in weeks),
        {"score": tuple(sum(scores[w]) / len(scores[w]) if scores.get(w) else None for w in weeks)},
    )


def top_error_codes(
    facts: Iterable[TicketFacts], now: dt.datetime, limit: int = 8
) -> list[tuple[str, int]]:
    """The error codes of the most tickets received in the last 30 days."""
    since = now - dt.timedelta(days=CODE_DAYS)
    counts = Counter(
        code for f in facts if f.received_at >= since for code in dict.fromkeys(f.error_codes)
    )
    return counts.most_common(limit)

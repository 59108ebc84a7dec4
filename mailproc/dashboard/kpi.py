"""KPI tiles and chart series for the dashboard, from the KPI report's definitions.

Every figure comes from ``mailproc.reports.metrics`` (the ``report --json`` KPIs, with their
targets), so the dashboard and the weekly report agree; only the per-priority split of the
daily volume is counted here, with the same rule (tickets opened by people).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.reports import metrics
from mailproc.reports.counts import by_people
from mailproc.reports.periods import Period, week_of
from mailproc.store.models import Ticket
from mailproc.tickets.board import PRIORITIES, raw_time, utc

CHART_DAYS = 14
CHART_WEEKS = 8
CODE_DAYS = 30
TICKETS_PER_DAY = 1000 / 30  # §10.1: ~1,000 a month, shown for reference
SATISFACTION_TARGET = metrics.TARGETS["satisfaction_avg"].value
FIRST_RESPONSE_TARGET = metrics.TARGETS["first_response_sla_pct"].value


@dataclass(frozen=True, slots=True)
class Tile:
    """One KPI against its target; ``ok`` is None for figures without a pass mark or data."""

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


def today(now: dt.datetime, zone: ZoneInfo) -> Period:
    """The local day of ``now``."""
    day = now.astimezone(zone).date()
    return Period(day, day, zone)


def this_week(now: dt.datetime, zone: ZoneInfo) -> Period:
    """The Monday-to-Sunday week of ``now``."""
    return week_of(now.astimezone(zone).date(), zone)


def _tile(name: str, kpi: dict[str, Any], unit: str, basis: str, lower: bool = False) -> Tile:
    value = kpi["value"]
    shown = "n/a" if value is None else f"{value:.0f}{unit}" if unit else f"{value:.1f}"
    target = f"{'≤' if lower else '≥'} {kpi['target']:g}{unit}"
    return Tile(name, shown, target, kpi["met"], basis)


def tiles(session: Session, period: Period, now: dt.datetime) -> list[Tile]:
    """The KPI tiles of ``period`` as of ``now``."""
    m = metrics.compute(session, period, now)
    within = m["resolution_within_target_pct"]
    volume = m["ticket_volume"]["value"]
    expected = TICKETS_PER_DAY * len(period.days)
    return [
        _tile("First response in SLA", m["first_response_sla_pct"], "%", "deadlines passed"),
        _tile("P0-P1 resolved in 24 h", within["P0_P1_24h"], "%", "resolved in the period"),
        _tile("P2-P3 resolved in 72 h", within["P2_P3_72h"], "%", "resolved in the period"),
        _tile("FCR P2-P3", m["fcr_p2_p3_pct"], "%", "one agent reply"),
        _tile(
            "Satisfaction",
            m["satisfaction_avg"],
            "",
            f"{m['satisfaction_avg']['responses']} answer(s)",
        ),
        _tile("Escalation rate", m["escalation_rate_pct"], "%", "of new tickets", lower=True),
        Tile("New tickets", str(volume), f"≈ {expected:.0f}", None, "~1,000 a month (§10.1)"),
    ]


def tickets_per_day(session: Session, now: dt.datetime, zone: ZoneInfo) -> Series:
    """Tickets opened by people per local day of the last two weeks, per priority."""
    last = now.astimezone(zone).date()
    days = [last - dt.timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    start = Period(days[0], last, zone).start
    rows = session.connection().execute(
        select(raw_time(Ticket.received_at), Ticket.priority).where(
            by_people(), Ticket.received_at >= start
        )
    )
    counts: Counter[tuple[dt.date, str]] = Counter()
    for received, priority in rows:
        moment = utc(received)
        if moment is not None:
            counts[(moment.astimezone(zone).date(), priority or "none")] += 1
    names = [*PRIORITIES, *(["none"] if any(p == "none" for _, p in counts) else [])]
    return Series(
        tuple(f"{d:%d %b}" for d in days),
        {p: tuple(float(counts[(d, p)]) for d in days) for p in names},
    )


def weekly(session: Session, now: dt.datetime, zone: ZoneInfo) -> Series:
    """First-response SLA % and satisfaction of each of the last eight weeks."""
    week = this_week(now, zone)
    weeks = [week]
    for _ in range(CHART_WEEKS - 1):
        weeks.insert(0, weeks[0].previous())
    computed = [metrics.compute(session, w, now) for w in weeks]
    return Series(
        tuple(f"{w.first:%d %b}" for w in weeks),
        {
            "first response %": tuple(m["first_response_sla_pct"]["value"] for m in computed),
            "satisfaction": tuple(m["satisfaction_avg"]["value"] for m in computed),
        },
    )


def top_error_codes(session: Session, now: dt.datetime, limit: int = 8) -> list[tuple[str, int]]:
    """The error codes of the most tickets opened in the last 30 days."""
    found = metrics.tickets_by_error_code(session, now - dt.timedelta(days=CODE_DAYS), now)
    return list(found.items())[:limit]

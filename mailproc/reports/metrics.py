"""The KPI definitions of the support report (procedures §3.2, §4.3, §6.3, §7.3, §8.2, §10),
in one place, each computed with aggregate SQL over a period.

Every KPI counts tickets opened live by people: ``tickets.origin = 'human'`` and not a
history import (``tickets.imported_at`` empty; ``ingest --history``). Bounces, auto-replies,
bulk and spam open no ticket (bulk mail that opened one before migration 0015 is left out, as
is any other origin; a promoted bulk or spam mail is a person's). Times are compared as UTC
instants; a period is ``[start, end)``.

* ticket volume: tickets opened (first mail received) in the period.
* first-response SLA %: of the tickets whose first-response deadline fell in the period
  (and has passed), those a person answered by the deadline; unanswered counts as missed.
  SLA breach % is 100 minus that.
* FCR (P2-P3) %: of the P2 and P3 tickets resolved in the period, those resolved with
  exactly one agent reply relayed to the customer (the outbox's ``agent_reply`` mails up to
  the resolution; follow-ups after it do not count).
* resolution hours: calendar hours from the ticket's first mail to its resolution, median
  per priority, of the tickets resolved in the period; within target %: P0-P1 within 24 h,
  P2-P3 within 72 h.
* escalation rate %: tickets opened in the period escalated to a team (DevOps, Engineering,
  Product; at any time) over the volume.
* satisfaction: mean survey score answered in the period (and how many answers); response
  rate %: of the surveys sent in the period, those answered.
* negative feedback resolved within 48 h %: of the scores under 3 answered in the period, those
  followed by an agent's reply to the customer within 48 hours (answers whose 48 hours have
  not yet passed count only once they are met).
* refund rate %: tickets opened in the period with a refund or cancellation case, over the
  volume. Credits: the USD credits recorded in the period. Churn risk raised: customers
  whose survey answer in the period raised their churn risk.
* tickets by error code: error codes of the tickets opened in the period (a ticket counts
  once for each code it names).

A target's ``met`` is ``value >= target`` where higher is better and ``value <= target``
where lower is better (the target itself counts as met); an empty period gives ``null``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailproc.reports import counts, rollup
from mailproc.reports.counts import by_people
from mailproc.reports.periods import Period
from mailproc.store.models import Customer, Ticket

PRIORITIES: Final = ("P0", "P1", "P2", "P3")
WORK_MEM: Final = "64MB"  # PostgreSQL: the medians' sort of a year of tickets in memory
SCAN_SHARE: Final = 0.1  # SQLite: a period over this share of the tickets' span scans the table


@dataclass(frozen=True, slots=True)
class Target:
    """A KPI's goal and the direction in which it is met."""

    value: float
    higher_is_better: bool

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the target; None without a value."""
        if value is None:
            return None
        return value >= self.value if self.higher_is_better else value <= self.value


TARGETS: Final = {
    "first_response_sla_pct": Target(95.0, True),  # §10.1
    "sla_breach_pct": Target(5.0, False),  # §3.2
    "fcr_p2_p3_pct": Target(70.0, True),  # §7.3
    "P0_P1_24h": Target(80.0, True),
    "P2_P3_72h": Target(80.0, True),
    "escalation_rate_pct": Target(10.0, False),  # §4.3
    "satisfaction_avg": Target(4.5, True),  # §8.2
    "survey_response_rate_pct": Target(30.0, True),  # §8.2
    "negative_feedback_resolved_48h_pct": Target(90.0, True),  # §8.2
    "refund_rate_pct": Target(2.0, False),  # §6.3
}


QUERY_STEPS: Final = 8  # the aggregate statements of one report: a progress bar's length


def report(
    session: Session, period: Period, now: dt.datetime, step: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The KPI report of ``period`` as of ``now``: the stable JSON contract."""
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": period.zone.key,
        "metrics": compute(session, period, now, step),
    }


def compute(
    session: Session, period: Period, now: dt.datetime, step: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Every KPI of ``period``; deadlines and follow-up windows are judged as of ``now``.

    The additive parts come from the hourly roll-up where it is kept and clean
    (``reports/rollup.py``), the rest live; medians and churn are always counted live."""
    start, end = period.start, period.end
    rolled, live = rollup.split(session, start, end, now)
    if session.get_bind().dialect.name == "postgresql":  # the sorts and hashes stay in memory
        session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    c = rollup.rolled_counts(session, rolled, now)
    _advance(step)
    plan = planner(session, start, end)
    if live:
        c.add(counts.count(session, plan.among(live), now)[None])
    _advance(step, 4)
    codes = rollup.rolled_codes(session, rolled)
    if live:
        codes = _sum_codes(counts.error_codes(session, plan.among(live)), codes)
    _advance(step)
    churn = session.scalar(
        select(func.count(func.distinct(Ticket.customer_id))).where(
            by_people(),
            plan.among([(start, end)])(Ticket.survey_answered_at),
            Ticket.survey_score.is_not(None),
            Ticket.churn_risk_raised,  # the partial index ix_tickets_churn_answered
        )
    )
    _advance(step)
    medians = median_resolution_hours(session, period)
    _advance(step)
    first_response = _pct(c.due_met, c.due)
    breach = None if first_response is None else round(100.0 - first_response, 1)
    average = round(c.score_sum / c.answers, 2) if c.answers else None
    return {
        "ticket_volume": {"value": c.volume},
        "first_response_sla_pct": _kpi("first_response_sla_pct", first_response),
        "sla_breach_pct": _kpi("sla_breach_pct", breach),
        "fcr_p2_p3_pct": _kpi("fcr_p2_p3_pct", _pct(c.first_contact, c.resolved_low)),
        "resolution_hours_median": medians,
        "resolution_within_target_pct": {
            "P0_P1_24h": _kpi("P0_P1_24h", _pct(c.high_within, c.resolved_high)),
            "P2_P3_72h": _kpi("P2_P3_72h", _pct(c.low_within, c.resolved_low)),
        },
        "escalation_rate_pct": _kpi("escalation_rate_pct", _pct(c.escalated, c.volume)),
        "satisfaction_avg": {**_kpi("satisfaction_avg", average), "responses": c.answers},
        "survey_response_rate_pct": _kpi("survey_response_rate_pct", _pct(c.sent_answered, c.sent)),
        "negative_feedback_resolved_48h_pct": _kpi(
            "negative_feedback_resolved_48h_pct", _pct(c.negative_followed, c.negative_due)
        ),
        "refund_rate_pct": _kpi("refund_rate_pct", _pct(c.refunds, c.volume)),
        "credits_usd": {"value": float(c.credits)},
        "churn_risk_raised": {"value": churn or 0},
        "tickets_by_error_code": _ranked(codes),
    }


def median_resolution_hours(session: Session, period: Period) -> dict[str, float | None]:
    """Median calendar hours from first mail to resolution, per priority: PostgreSQL's
    ``percentile_cont(0.5)``; on SQLite, window functions (the middle row, or the mean of the
    two middle rows)."""
    plan = planner(session, period.start, period.end)
    hours = counts.resolution_hours(session)
    resolved = (
        by_people(),
        plan.among([(period.start, period.end)])(Ticket.resolved_at),
        Ticket.priority.is_not(None),
    )
    if session.get_bind().dialect.name == "postgresql":
        query = (
            select(Ticket.priority, func.percentile_cont(0.5).within_group(hours))
            .where(*resolved)
            .group_by(Ticket.priority)
        )
    else:
        ranked = (
            select(
                Ticket.priority,
                hours.label("hours"),
                func.row_number().over(partition_by=Ticket.priority, order_by=hours).label("rn"),
                func.count().over(partition_by=Ticket.priority).label("n"),
            )
            .where(*resolved)
            .subquery()
        )
        query = (
            select(ranked.c.priority, func.avg(ranked.c.hours))
            .where(ranked.c.rn.in_(((ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2)))
            .group_by(ranked.c.priority)
        )
    found = {priority: round(float(value), 1) for priority, value in session.execute(query)}
    return {priority: found.get(priority) for priority in PRIORITIES}


def tickets_by_error_code(session: Session, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """Tickets opened in ``[start, end)`` per error code, most frequent first."""
    plan = planner(session, start, end)
    return _ranked(_sum_codes(counts.error_codes(session, plan.among([(start, end)])), {}))


def _sum_codes(rows: list[tuple[Any, str, int]], into: dict[str, int]) -> dict[str, int]:
    found = dict(into)
    for _, code, n in rows:
        found[code] = found.get(code, 0) + n
    return found


def _ranked(codes: dict[str, int]) -> dict[str, int]:
    return dict(sorted(codes.items(), key=lambda item: (-item[1], item[0])))


def daily_volume(session: Session, period: Period) -> dict[dt.date, int]:
    """Tickets opened on each local day of the period (every day present)."""
    days = period.days
    bucket = case(
        *(
            (Ticket.received_at < period_day_end, index)
            for index, period_day_end in enumerate(
                Period(day, day, period.zone).end for day in days[:-1]
            )
        ),
        else_=len(days) - 1,
    ).label("day")
    plan = planner(session, period.start, period.end)
    rows = session.execute(
        select(bucket, func.count())
        .where(by_people(), plan.among([(period.start, period.end)])(Ticket.received_at))
        .group_by(bucket)
    ).all()
    counts = dict.fromkeys(days, 0)
    for index, count in rows:
        counts[days[int(index)]] = count
    return counts


@dataclass(frozen=True, slots=True)
class TicketLine:
    """One ticket in a report's list of breaches or escalations."""

    number: int
    priority: str | None
    company: str | None
    at: dt.datetime | None
    detail: str


def breaches(
    session: Session, period: Period, now: dt.datetime, limit: int = 50
) -> list[TicketLine]:
    """The tickets whose first-response deadline in the period was missed, earliest first."""
    missed = or_(
        Ticket.first_responded_at.is_(None),
        Ticket.first_responded_at > Ticket.first_response_due,
    )
    rows = session.execute(
        select(
            Ticket.number,
            Ticket.priority,
            Customer.company,
            Ticket.first_response_due,
            Ticket.first_responded_at,
        )
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(
            by_people(),
            Ticket.first_response_due >= period.start,
            Ticket.first_response_due < min(period.end, now),
            missed,
        )
        .order_by(Ticket.first_response_due, Ticket.number)
        .limit(limit)
    ).all()
    return [
        TicketLine(
            number,
            priority,
            company,
            due,
            f"answered {answered:%Y-%m-%d %H:%M} UTC" if answered else "not answered",
        )
        for number, priority, company, due, answered in rows
    ]


def escalations(session: Session, period: Period, limit: int = 50) -> list[TicketLine]:
    """The tickets opened in the period and escalated to a team, earliest first."""
    rows = session.execute(
        select(
            Ticket.number,
            Ticket.priority,
            Customer.company,
            Ticket.received_at,
            Ticket.escalated_to,
        )
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(
            by_people(),
            Ticket.received_at >= period.start,
            Ticket.received_at < period.end,
            counts.escalated(),
        )
        .order_by(Ticket.received_at, Ticket.number)
        .limit(limit)
    ).all()
    return [
        TicketLine(number, priority, company, received, ", ".join(teams))
        for number, priority, company, received, teams in rows
    ]


# --- building blocks --------------------------------------------------------------------------


class Plan:
    """How to select the tickets of a period: through the time indexes, or by a table scan.

    SQLite reads a period's rows through an index with one table lookup each; for a period
    that spans much of the tickets a plain scan is several times faster (a year of 100,000
    tickets: about 5 times), so then the time column is written ``+column``, which SQLite
    reads as "no index for this term". PostgreSQL's planner makes that choice itself.
    """

    def __init__(self, scan: bool) -> None:
        self.scan = scan

    def among(self, spans: Sequence[rollup.Span]) -> counts.Within:
        """A time column's condition: in one of ``spans`` (``[start, end)``)."""

        def within(column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
            term: SQLColumnExpression[Any] = (
                literal_column(f"+{Ticket.__tablename__}.{column.key}", type_=column.type)
                if self.scan and column.class_ is Ticket
                else column
            )
            return rollup.in_spans(term, spans)

        return within


def planner(session: Session, start: dt.datetime, end: dt.datetime) -> Plan:
    """The plan for ``[start, end)``: a scan on SQLite when it spans over ``SCAN_SHARE`` of
    the time from the first ticket to the last."""
    if session.get_bind().dialect.name != "sqlite":
        return Plan(scan=False)
    first = session.scalar(select(func.min(Ticket.received_at)))  # each one index lookup
    last = session.scalar(select(func.max(Ticket.received_at)))
    if first is None or last is None:
        return Plan(scan=False)
    span = max((last - first).total_seconds(), 1.0)
    overlap = (min(end, last) - max(start, first)).total_seconds()
    return Plan(scan=overlap / span >= SCAN_SHARE)


def _pct(part: int | None, whole: int | None) -> float | None:
    if not whole:
        return None
    return round(100.0 * (part or 0) / whole, 1)


def _kpi(name: str, value: float | None) -> dict[str, Any]:
    target = TARGETS[name]
    return {"value": value, "target": target.value, "met": target.met(value)}


def _advance(step: Callable[[int], None] | None, done: int = 1) -> None:
    """``done`` more aggregate statements done (a progress bar's steps)."""
    if step is not None:
        step(done)

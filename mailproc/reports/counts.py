"""The additive parts of the KPIs (``reports/metrics.py`` has their definitions): counts
that add up over disjoint stretches of time, so the report can sum them from the hourly
roll-up (``reports/rollup.py``) and count only the rest live.

Each query selects its tickets by one of their times through ``within`` (a time column to a
condition) and, given ``bucket`` (a time column to its hour), counts per hour instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Integer,
    SQLColumnExpression,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailproc.store.models import Credit, Outbox, RefundCaseRecord, Ticket

ESCALATION_TEAMS: Final = ("devops", "engineering", "product")
STAFF_REPLY_TEMPLATE: Final = "agent_reply"
NEGATIVE_SCORE_BELOW: Final = 3
NEGATIVE_FOLLOW_UP_HOURS: Final = 48.0
CREDIT_CURRENCY: Final = "USD"

Within = Callable[[InstrumentedAttribute[Any]], ColumnElement[bool]]
Bucket = Callable[[InstrumentedAttribute[Any]], ColumnElement[Any]]
NO_BUCKET: Final = None


@dataclass(slots=True)
class Counts:
    """Additive KPI parts; ``negative_due`` (low scores whose 48 hours passed or that were
    followed up) depends on the time of the report and is never rolled up."""

    volume: int = 0
    escalated: int = 0
    refunds: int = 0
    due: int = 0
    due_met: int = 0
    resolved_low: int = 0
    resolved_high: int = 0
    high_within: int = 0
    low_within: int = 0
    first_contact: int = 0
    answers: int = 0
    score_sum: int = 0
    negative: int = 0
    negative_followed: int = 0
    negative_due: int = 0
    sent: int = 0
    sent_answered: int = 0
    credits: Decimal = Decimal(0)

    def add(self, other: Counts) -> None:
        """Add ``other``'s parts to these."""
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


ROLLED_UP: Final = tuple(f.name for f in fields(Counts) if f.name != "negative_due")


def by_people() -> ColumnElement[bool]:
    """Tickets that count: opened live by a person's mail (no history import)."""
    return (Ticket.origin == "human") & Ticket.imported_at.is_(None)


def count(
    session: Session, within: Within, now: dt.datetime | None, bucket: Bucket | None = NO_BUCKET
) -> dict[Any, Counts]:
    """The parts of the tickets ``within`` selects, per ``bucket`` (None: one entry, key
    None). ``now`` bounds the first-response deadlines and judges the 48-hour follow-ups;
    without it (a roll-up) deadlines are not bounded and ``negative_due`` stays 0."""
    found: dict[Any, Counts] = {}

    def put(column: InstrumentedAttribute[Any], query: Any, names: tuple[str, ...]) -> None:
        if bucket is not None:
            key = bucket(column)
            query = query.add_columns(key).group_by(key)
        for row in session.execute(query):
            counts = found.setdefault(row[len(names)] if bucket is not None else None, Counts())
            for name, value in zip(names, row, strict=False):
                setattr(counts, name, value or 0)

    people = by_people()
    put(
        Ticket.received_at,
        select(_count_if(true()), _count_if(escalated()), func.count(RefundCaseRecord.id))
        .select_from(Ticket)
        .outerjoin(RefundCaseRecord, RefundCaseRecord.ticket_id == Ticket.id)
        .where(people, within(Ticket.received_at)),
        ("volume", "escalated", "refunds"),
    )
    met = and_(
        Ticket.first_responded_at.is_not(None),
        Ticket.first_responded_at <= Ticket.first_response_due,
    )
    passed = true() if now is None else Ticket.first_response_due < now
    put(
        Ticket.first_response_due,
        select(_count_if(true()), _count_if(met)).where(
            people, within(Ticket.first_response_due), passed
        ),
        ("due", "due_met"),
    )
    hours = resolution_hours(session)
    low, high = Ticket.priority.in_(("P2", "P3")), Ticket.priority.in_(("P0", "P1"))
    put(
        Ticket.resolved_at,
        select(
            _count_if(low),
            _count_if(high),
            _count_if(and_(high, hours <= 24)),
            _count_if(and_(low, hours <= 72)),
        ).where(people, within(Ticket.resolved_at)),
        ("resolved_low", "resolved_high", "high_within", "low_within"),
    )
    one_reply = (  # a join and a grouping: PostgreSQL hashes it, SQLite walks the index
        select(Ticket.id, Ticket.resolved_at)
        .join(Outbox, Outbox.ticket_id == Ticket.id)
        .where(
            people,
            within(Ticket.resolved_at),
            low,
            Outbox.template == STAFF_REPLY_TEMPLATE,
            Outbox.created_at <= Ticket.resolved_at,
        )
        .group_by(Ticket.id, Ticket.resolved_at)
        .having(func.count() == 1)
        .subquery()
    )
    put(
        one_reply.c.resolved_at,  # type: ignore[arg-type]
        select(func.count()).select_from(one_reply),
        ("first_contact",),
    )
    followed = exists().where(
        Outbox.ticket_id == Ticket.id,
        Outbox.template == STAFF_REPLY_TEMPLATE,
        Outbox.created_at >= Ticket.survey_answered_at,
        _hours(session, Ticket.survey_answered_at, Outbox.created_at) <= NEGATIVE_FOLLOW_UP_HOURS,
    )
    negative = Ticket.survey_score < NEGATIVE_SCORE_BELOW
    window_over = (
        false()
        if now is None
        else Ticket.survey_answered_at <= now - dt.timedelta(hours=NEGATIVE_FOLLOW_UP_HOURS)
    )
    put(
        Ticket.survey_answered_at,
        select(
            func.count(),
            func.coalesce(func.sum(cast(Ticket.survey_score, Integer)), 0),
            _count_if(negative),
            _count_if(and_(negative, followed)),
            _count_if(and_(negative, or_(window_over, followed)) if now else false()),
        ).where(people, within(Ticket.survey_answered_at), Ticket.survey_score.is_not(None)),
        ("answers", "score_sum", "negative", "negative_followed", "negative_due"),
    )
    put(
        Ticket.survey_sent_at,
        select(_count_if(true()), _count_if(Ticket.survey_answered_at.is_not(None))).where(
            people, within(Ticket.survey_sent_at)
        ),
        ("sent", "sent_answered"),
    )
    put(
        Credit.created_at,
        select(func.coalesce(func.sum(Credit.amount), 0)).where(
            Credit.currency == CREDIT_CURRENCY, within(Credit.created_at)
        ),
        ("credits",),
    )
    for counts in found.values():
        counts.credits = Decimal(counts.credits or 0)
    return found


def error_codes(
    session: Session, within: Within, bucket: Bucket | None = NO_BUCKET
) -> list[tuple[Any, str, int]]:
    """(bucket or None, error code, tickets) of the tickets opened ``within``: a ticket counts
    once for each code it names."""
    if session.get_bind().dialect.name == "postgresql":
        codes = (
            func.json_array_elements_text(Ticket.classification["error_codes"])
            .table_valued("value")
            .lateral("codes")
        )
    else:
        codes = func.json_each(Ticket.classification, "$.error_codes").table_valued("value")
    code = codes.c.value
    key = literal(None) if bucket is None else bucket(Ticket.received_at)
    rows = session.execute(
        select(key, code, func.count())
        .select_from(Ticket)
        .join(codes, true())
        .where(by_people(), within(Ticket.received_at))
        .group_by(key, code)
    ).all()
    return [(at, str(name), n) for at, name, n in rows]


def resolution_hours(session: Session) -> ColumnElement[Any]:
    """Calendar hours from a ticket's first mail to its resolution, as SQL."""
    return _hours(session, Ticket.received_at, Ticket.resolved_at)


def escalated() -> ColumnElement[bool]:
    """The ticket was escalated to a team (at any time)."""
    text = cast(Ticket.escalated_to, String)
    return or_(false(), *(text.like(f'%"{team}"%') for team in ESCALATION_TEAMS))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), literal(0))


def _hours(
    session: Session, start: SQLColumnExpression[Any], end: SQLColumnExpression[Any]
) -> ColumnElement[Any]:
    """Calendar hours from ``start`` to ``end`` as SQL (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0

"""Issue 16: the report's hourly roll-up (PostgreSQL) gives exactly the KPIs counted from
scratch, on a generated realistic set and after tickets change once rolled up."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, update

from mailproc.app import App
from mailproc.config import Settings
from mailproc.reports import metrics, rollup
from mailproc.reports.periods import Period, PeriodKind, month_of, quarter_of, week_of
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Outbox, RefundCaseRecord, Ticket
from mailproc.store.models_reports import ReportDirtyHour, ReportRollup

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 9, 10, 30, tzinfo=dt.UTC)
UTC, KOLKATA, NEW_YORK = ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/New_York")
PERIODS = [
    week_of(dt.date(2026, 11, 30), UTC),
    week_of(dt.date(2026, 12, 7), UTC),  # holds now and now - 48 h
    month_of(dt.date(2026, 11, 1), NEW_YORK),
    quarter_of(dt.date(2026, 10, 1), UTC),
    Period(dt.date(2026, 9, 3), dt.date(2026, 12, 9), KOLKATA, PeriodKind.CUSTOM),  # half hours
]


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    if not db_url.startswith("postgresql"):
        pytest.skip("the roll-up is kept on PostgreSQL only")
    application = App(Settings.model_validate({"database": {"url": db_url}}))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def generate(app: App, count: int) -> None:
    """``count`` tickets over Sep-Dec 2026 with replies, resolutions, surveys and refunds."""
    rng = random.Random(16)
    span = int((NOW - START).total_seconds())
    tickets: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    for n in range(1, count + 1):
        received = START + dt.timedelta(seconds=rng.randrange(span))
        priority = rng.choice(("P0", "P1", "P2", "P3"))
        due = received + dt.timedelta(hours=rng.choice((1, 4, 24, 48)))
        answered = received + dt.timedelta(hours=rng.uniform(0.1, 60))
        answered = answered if answered < NOW and rng.random() < 0.9 else None
        resolved = answered + dt.timedelta(hours=rng.uniform(0, 90)) if answered else None
        resolved = resolved if resolved and resolved < NOW and rng.random() < 0.8 else None
        sent = resolved + dt.timedelta(hours=24) if resolved else None
        sent = sent if sent and sent < NOW else None
        survey = sent + dt.timedelta(hours=rng.uniform(1, 70)) if sent else None
        survey = survey if survey and survey < NOW and rng.random() < 0.5 else None
        tickets.append(
            {
                "id": n,
                "number": 10000 + n,
                "status": "resolved" if resolved else "open",
                "subject": f"Ticket {n}",
                "customer_id": 1001 + rng.randrange(20),
                "priority": priority,
                "received_at": received,
                "first_response_due": due,
                "first_responded_at": answered,
                "resolved_at": resolved,
                "created_at": received,
                "updated_at": received,
                "classification": {
                    "error_codes": rng.sample(("DS-1001", "DB-2002", "SSO-9001"), rng.randrange(3))
                },
                "escalated_to": ["engineering"] if rng.random() < 0.1 else [],
                "survey_sent_at": sent,
                "survey_score": rng.randint(1, 5) if survey else None,
                "survey_answered_at": survey,
                "origin": "human" if rng.random() < 0.95 else "bulk",
                "churn_risk_raised": bool(survey) and rng.random() < 0.2,
            }
        )
        times = [answered] if answered else []
        if answered and rng.random() < 0.4:
            times.append(answered + dt.timedelta(hours=rng.uniform(0, 100)))
        if survey and rng.random() < 0.6:
            times.append(survey + dt.timedelta(hours=rng.uniform(1, 60)))
        replies += [reply(n, at) for at in times]
    with transaction(app.sessions) as session:
        session.execute(insert(Ticket), tickets)
        session.execute(insert(Outbox), replies)
        session.execute(
            insert(RefundCaseRecord),
            [refund(t["id"], t["received_at"]) for t in tickets if rng.random() < 0.05],
        )


def reply(ticket_id: int, at: dt.datetime) -> dict[str, Any]:
    key = f"reply-{ticket_id}-{at.timestamp()}"
    return {
        "key": key,
        "ticket_id": ticket_id,
        "template": "agent_reply",
        "locale": "en",
        "message_id": f"<{key}@x.example>",
        "envelope_from": "support@dataflow.com",
        "auto_submitted": "no",
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": at,
        "deadline_at": at,
        "created_at": at,
    }


def refund(ticket_id: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "currency": "USD",
        "plan": "Starter",
        "kind": "refund",
        "required_level": "agent",
        "status": "requested",
        "requested_at": at,
    }


def fast_and_slow(app: App) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each period's KPIs with the roll-up, and counted from scratch (roll-up set aside)."""
    pairs = []
    with transaction(app.sessions, commit=False) as session:
        assert rollup.active(session) is not None
        for period in PERIODS:
            fast = metrics.compute(session, period, NOW)
            session.begin_nested()
            session.execute(delete(ReportRollup))
            assert rollup.split(session, period.start, period.end, NOW)[0] == []
            slow = metrics.compute(session, period, NOW)
            session.rollback()
            pairs.append((fast, slow))
    return pairs


def test_the_rollup_gives_the_kpis_counted_from_scratch(app: App) -> None:
    generate(app, 4000)
    with transaction(app.sessions) as session:
        assert rollup.refresh(session, NOW) > 1000
        rolled, live = rollup.split(session, PERIODS[2].start, PERIODS[2].end, NOW)
        assert len(rolled) == 1 and live == []  # a past month comes from the roll-up
    for fast, slow in fast_and_slow(app):
        assert fast == slow
        assert slow["ticket_volume"]["value"] > 0


def test_the_rollup_stays_exact_when_tickets_change_after_it(app: App) -> None:
    generate(app, 1500)
    with transaction(app.sessions) as session:
        rollup.refresh(session, NOW)
        assert session.scalar(select(func.count()).select_from(ReportDirtyHour)) == 0
    before = fast_and_slow(app)
    with transaction(app.sessions) as session:
        ids = session.scalars(
            select(Ticket.id)
            .where(Ticket.resolved_at.is_not(None), Ticket.survey_sent_at.is_not(None))
            .where(Ticket.survey_answered_at.is_(None), Ticket.origin == "human")
            .order_by(Ticket.id)
            .limit(30)
        ).all()
        reopened, late, refunded = ids[:10], ids[10:20], ids[20:30]
        session.execute(  # reopened: no longer resolved
            update(Ticket).where(Ticket.id.in_(reopened)).values(resolved_at=None, status="open")
        )
        session.execute(  # late survey answers, low scores
            update(Ticket)
            .where(Ticket.id.in_(late))
            .values(survey_score=1, survey_answered_at=NOW - dt.timedelta(hours=60))
        )
        session.execute(
            insert(RefundCaseRecord),
            [
                refund(i, START)
                for i in refunded
                if i not in set(session.scalars(select(RefundCaseRecord.ticket_id)))
            ],
        )
        session.execute(  # a follow-up to one late answer within 48 h
            insert(Outbox), [reply(late[0], NOW - dt.timedelta(hours=50))]
        )
        assert session.scalar(select(func.count()).select_from(ReportDirtyHour)) > 0
    after = fast_and_slow(app)
    for fast, slow in after:
        assert fast == slow
    assert [slow for _, slow in after] != [slow for _, slow in before]  # the changes count
    with transaction(app.sessions) as session:
        rollup.refresh(session, NOW)
        assert session.scalar(select(func.count()).select_from(ReportDirtyHour)) == 0
    assert fast_and_slow(app) == after


def test_many_dirty_hours_are_counted_live_in_one_stretch(app: App) -> None:
    generate(app, 800)
    with transaction(app.sessions) as session:
        rollup.refresh(session, NOW)
        session.execute(update(Ticket).values(survey_score=Ticket.survey_score))  # no change
        assert session.scalar(select(func.count()).select_from(ReportDirtyHour)) == 0
        session.execute(update(Ticket).where(Ticket.id % 3 == 0).values(priority="P0"))
        quarter = PERIODS[3]
        assert rollup.split(session, quarter.start, quarter.end, NOW) == (
            [],
            [(quarter.start, quarter.end)],
        )
    for fast, slow in fast_and_slow(app):
        assert fast == slow

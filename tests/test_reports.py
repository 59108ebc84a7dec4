"""Issue 16: a realistic week through mail in and ``sla check --now``, then every KPI of
``mailproc report --json`` against values computed by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailproc.app import App
from mailproc.cli import cli
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Outbox, Ticket

AUTH = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"
AGENTS = [
    {"name": "Alex Agent", "roles": ["agent"], "addresses": ["alex@dataflow.com"]},
    {"name": "Marta Manager", "roles": ["support_manager"], "addresses": ["marta@dataflow.com"]},
]
IDENTITY = {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS}
ALEX = "Alex Agent <alex@dataflow.com>"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("MAILPROC_") and name != "MAILPROC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def app(db_url: str, workdir: Path) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": IDENTITY,
            "sla": {"clock": "business_hours"},  # the week's deadlines were computed on it
        }
    )
    application = App(settings, FixedClock(at("2026-11-30 08:00")))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def move(app: App, when: str) -> None:
    clock = app.clock
    assert isinstance(clock, FixedClock)
    clock.advance(at(when) - clock.now())


def mailproc(app: App, *args: str) -> str:
    env = {
        "MAILPROC_DATABASE_URL": app.settings.database.url,
        "MAILPROC_PROCESSING_PARSE_WORKERS": "0",
        "MAILPROC_IDENTITY": json.dumps(IDENTITY),
        "MAILPROC_SLA_CLOCK": "business_hours",
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def sla_check(app: App, when: str) -> None:
    move(app, when)
    mailproc(app, "sla", "check", "--now", at(when).isoformat())


def send(app: App, when: str, sender: str, subject: str, body: str, *headers: str) -> None:
    move(app, when)
    mid = f"{when.replace(' ', 'T').replace(':', '')}.{abs(hash(subject)) % 10**8}@mail.example"
    head = [
        f"From: {sender}",
        "To: support@dataflow.com",
        f"Subject: {subject}",
        f"Message-ID: <{mid}>",
        *headers,
    ]
    raw = ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()
    app.ingest([RawInput(raw, Envelope("smtp"))])
    app.process()


def our_mail(app: App, template: str, number: int) -> Outbox:
    with transaction(app.sessions, commit=False) as session:
        row = session.scalars(
            select(Outbox)
            .join(Ticket, Ticket.id == Outbox.ticket_id)
            .where(Outbox.template == template, Ticket.number == number)
            .order_by(Outbox.id.desc())
        ).first()
        assert row is not None, f"no {template} for #{number}"
        session.expunge(row)
        return row


def agent(app: App, when: str, number: int, body: str) -> None:
    """An agent answers the new-ticket alert of ``number`` (commands first, then text)."""
    alert = our_mail(app, "new_ticket_alert", number)
    send(
        app, when, ALEX, f"Re: [Ticket #{number}]", body, f"In-Reply-To: <{alert.message_id}>", AUTH
    )


def survey_answer(app: App, when: str, number: int, sender: str, score: int) -> None:
    survey = our_mail(app, "survey_request", number)
    send(
        app,
        when,
        sender,
        f"Re: [Ticket #{number}] How did we do?",
        f"{score}\n\nThanks.",
        f"In-Reply-To: <{survey.message_id}>",
    )


def tickets(app: App) -> dict[int, Ticket]:
    with transaction(app.sessions, commit=False) as session:
        rows = {t.number: t for t in session.scalars(select(Ticket))}
        session.expunge_all()
        return rows


def test_a_realistic_week_gives_the_hand_computed_kpis(app: App) -> None:
    # Monday 2026-11-30: seven customers write in, a newsletter and an out-of-office arrive
    send(
        app,
        "2026-11-30 09:00",
        "Priya Raman <priya@harborline.example>",
        "Error 503: Service Unavailable",
        "All dashboards are down.",
    )  # 10001
    send(
        app,
        "2026-11-30 09:10",
        "Robert <robert@atlasinsurance.example>",
        "SSO-9001: Login Failure",
        "Our analysts get this error when they sign in with Okta.",
    )  # 10002
    send(
        app,
        "2026-11-30 09:20",
        "Laura <laura@northwind-analytics.example>",
        "MOB-6006: App Not Loading",
        "The mobile app shows a blank screen.",
    )  # 10003
    send(
        app,
        "2026-11-30 09:30",
        "Tom <tom@pixelpine.example>",
        "COL-11001: Comments not loading",
        "Comments do not load on dashboards.",
    )  # 10004
    send(
        app,
        "2026-11-30 09:40",
        "Oliver <oliver@thamesvalleyenergy.example>",
        "DS-1001: Invalid Credentials",
        "Our Azure SQL source fails.",
    )  # 10005
    send(
        app,
        "2026-11-30 09:50",
        "Jonas <jonas@kessler-mb.example>",
        "DB-2003: Slow Loading",
        "Dashboards take minutes to load.",
    )  # 10006
    send(
        app,
        "2026-11-30 10:00",
        "Daniel <daniel@streamwise.example>",
        "Feature request: dark mode",
        "Could dashboards have a dark mode?",
    )  # 10007
    send(
        app,
        "2026-11-30 10:10",
        "Ava <ava@sunridgesolar.example>",
        "Refund request",
        "Please refund the $49 for our Starter plan.",
    )  # 10008
    send(
        app,
        "2026-11-30 10:20",
        "DataWeekly <news@dataweekly.example>",
        "This week in data",
        "Read our newsletter.",
        "Precedence: bulk",
        "List-Unsubscribe: <mailto:leave@dataweekly.example>",
    )  # bulk: stored, no ticket
    send(
        app,
        "2026-11-30 10:25",
        "Kim <kim@elsewhere.example>",
        "Out of office",
        "I am away until Monday.",
        "Auto-Submitted: auto-replied",
    )  # opens no ticket

    agent(app, "2026-11-30 09:30", 10001, "We are on it; DevOps is investigating.")
    agent(app, "2026-11-30 09:40", 10002, "We renewed the SAML certificate; please retry.")
    agent(app, "2026-11-30 10:00", 10004, "Which dashboard shows this?")
    agent(app, "2026-11-30 11:30", 10001, "#status resolved")  # 2.5 h
    sla_check(app, "2026-11-30 12:00")  # P1 timers: 10002 and 10005 go to Engineering
    agent(
        app,
        "2026-11-30 15:00",
        10008,
        "#status resolved\n\nWe passed your refund request on to billing.",
    )  # 4 h 50 min
    agent(
        app, "2026-11-30 16:00", 10007, "#status resolved\n\nDark mode is on the roadmap."
    )  # 6 h, one reply
    agent(
        app, "2026-11-30 20:20", 10003, "#status resolved\n\nPlease update the app to 5.2."
    )  # 11 h, one reply
    agent(app, "2026-12-01 04:10", 10002, "#status resolved")  # 19 h
    agent(
        app, "2026-12-02 11:30", 10004, "#status resolved\n\nFixed in today's release."
    )  # 50 h, two replies
    agent(app, "2026-12-03 10:50", 10006, "We are optimizing your queries.")  # 1 h late
    agent(app, "2026-12-03 11:50", 10006, "#status resolved")  # 74 h
    sla_check(app, "2026-12-03 12:00")  # 6 surveys; 10005's breach apology and $50 credit
    survey_answer(app, "2026-12-03 14:00", 10001, "Priya Raman <priya@harborline.example>", 5)
    survey_answer(app, "2026-12-03 15:00", 10003, "Laura <laura@northwind-analytics.example>", 1)
    survey_answer(app, "2026-12-03 16:00", 10007, "Daniel <daniel@streamwise.example>", 2)
    agent(app, "2026-12-04 10:00", 10003, "Sorry about this; let us call you today.")
    survey_answer(app, "2026-12-04 09:00", 10008, "Ava <ava@sunridgesolar.example>", 4)
    sla_check(app, "2026-12-05 12:00")  # 10006's survey
    sla_check(app, "2026-12-09 12:00")  # next week: the weekly report goes out
    history = (  # last week's mail imported as history: 10009, not counted anywhere
        b"From: Priya Raman <priya@harborline.example>\r\nTo: support@dataflow.com\r\n"
        b"Subject: DS-1001 again\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
        b"Message-ID: <old-1@harborline.example>\r\n\r\nCannot connect: DS-1001, URGENT.\r\n"
    )
    app.ingest([RawInput(history, Envelope("file"))], history=True)
    app.process()

    opened = tickets(app)
    assert {n: t.priority for n, t in opened.items()} == {
        10001: "P0",
        10002: "P1",
        10003: "P2",
        10004: "P3",
        10005: "P1",
        10006: "P2",
        10007: "P3",
        10008: "P3",
        10009: opened[10009].priority,
    }
    assert opened[10009].imported_at is not None and opened[10009].status == "closed"
    assert opened[10009].received_at == at("2026-12-01 09:00")  # its own Date
    assert len(opened) == 9  # no ticket for the newsletter or the auto-reply
    week_end = at("2026-12-07 00:00")
    in_week = {
        n for n, t in opened.items() if t.first_response_due and t.first_response_due < week_end
    }
    assert in_week == {10001, 10002, 10003, 10005, 10006}  # Starter P3 and 10007 fall later

    report = json.loads(mailproc(app, "report", "--json", "--now", "2026-12-09T12:00:00+00:00"))
    assert report == {
        "from": "2026-11-30",
        "to": "2026-12-06",
        "timezone": "UTC",
        # no article was published by a reviewer in this week's story (tests/test_kb.py has one)
        "kb_deflection": {"articles": [], "published_per_month": {}, "target_per_month": 10},
        "metrics": {
            "ticket_volume": {"value": 8},  # 10001-10008; not the newsletter, not history
            # deadlines in the week: 10001, 10002, 10003 answered in time; 10005 never, 10006
            # an hour late
            "first_response_sla_pct": {"value": 60.0, "target": 95.0, "met": False},
            "sla_breach_pct": {"value": 40.0, "target": 5.0, "met": False},
            # P2-P3 resolved: 10003, 10006, 10007, 10008 with one reply; 10004 with two (the
            # follow-up to 10003's low score came after its resolution)
            "fcr_p2_p3_pct": {"value": 80.0, "target": 70.0, "met": True},
            # P0 2.5; P1 19; P2 11 and 74; P3 4 h 50, 6 and 50
            "resolution_hours_median": {"P0": 2.5, "P1": 19.0, "P2": 42.5, "P3": 6.0},
            "resolution_within_target_pct": {
                "P0_P1_24h": {"value": 100.0, "target": 80.0, "met": True},
                "P2_P3_72h": {"value": 80.0, "target": 80.0, "met": True},  # 10006: 74 h
            },
            # 10001 to DevOps at once, 10002 and 10005 to Engineering after 2 hours
            "escalation_rate_pct": {"value": 37.5, "target": 10.0, "met": False},
            "satisfaction_avg": {"value": 3.0, "target": 4.5, "met": False, "responses": 4},
            "survey_response_rate_pct": {"value": 57.1, "target": 30.0, "met": True},  # 4 of 7
            # 10003's 1 was followed up 19 h later, 10007's 2 never
            "negative_feedback_resolved_48h_pct": {"value": 50.0, "target": 90.0, "met": False},
            "refund_rate_pct": {"value": 12.5, "target": 2.0, "met": False},  # 10008
            "credits_usd": {"value": 50.0},  # 10005's breach (Enterprise low scores: none)
            # 1001 (3.9 Low, answers 1: High) and 1006 (4.0 Low, answers 2: Medium)
            "churn_risk_raised": {"value": 2},
            "tickets_by_error_code": {
                "COL-11001": 1,
                "DB-2003": 1,
                "DS-1001": 1,
                "MOB-6006": 1,
                "SSO-9001": 1,
            },
        },
    }
    explicit = mailproc(
        app,
        "report",
        "--json",
        "--from",
        "2026-11-30",
        "--to",
        "2026-12-06",
        "--now",
        "2026-12-09T12:00:00+00:00",
    )
    assert json.loads(explicit) == report
    following = json.loads(
        mailproc(
            app,
            "report",
            "--json",
            "--from",
            "2026-12-14",
            "--period",
            "week",
            "--now",
            "2026-12-09T12:00:00+00:00",
        )
    )
    assert following["metrics"]["ticket_volume"] == {"value": 0}
    assert following["metrics"]["first_response_sla_pct"] == {
        "value": None,
        "target": 95.0,
        "met": None,
    }
    csv_lines = mailproc(app, "report", "--csv", "--now", "2026-12-09T12:00:00+00:00").splitlines()
    assert csv_lines[0] == "metric,part,value,target,met"
    assert "sla_breach_pct,,40.0,5.0,False" in csv_lines
    assert "resolution_hours_median,P2,42.5,," in csv_lines

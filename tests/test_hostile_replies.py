"""Issue 20 item 11: survey answers and bounces count only from whom they concern; marks of
undeliverable addresses expire or are cleared."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from test_workflows import _resolve, check, mails, send
from test_workflows import app as app  # the fixture with authenticated agents

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.store.db import transaction
from mailproc.store.models import Credit, Customer, Ticket, UndeliverableAddress
from mailproc.tickets.views import ticket_detail

BOUNCE = """From: MAILER-DAEMON@mx.northwind-analytics.example
To: support@dataflow.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-{n}@mx.northwind-analytics.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.northwind-analytics.example

Final-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1

--b
Content-Type: text/rfc822-headers

From: support@dataflow.com
To: {failed}
Subject: [Ticket #10001] Your Support Request
Message-ID: <{original}>

--b--
"""


def _bounce(app: App, n: int, failed: str, original: str) -> None:
    raw = BOUNCE.format(n=n, failed=failed, original=original).replace("\n", "\r\n").encode()
    app.ingest([RawInput(raw, Envelope("smtp", mail_from=""))])
    app.process()


def _mark(app: App, address: str) -> UndeliverableAddress | None:
    with transaction(app.sessions, commit=False) as session:
        row = session.get(UndeliverableAddress, address)
        session.expunge_all()
        return row


def _survey_sent(app: App, clock: FixedClock) -> str:
    send(
        app,
        "Karen <karen@globalpharma.example>",
        "Export fails",
        "The PDF export fails.",
        mid="export@globalpharma.example",
    )
    _resolve(app, 10001, "resolve@dataflow.com")
    check(app, clock, dt.timedelta(hours=25))
    [survey] = mails(app, "survey_request", 10001)
    return survey.message_id


def test_a_survey_answer_from_someone_else_changes_nothing(app: App, clock: FixedClock) -> None:
    survey = _survey_sent(app, clock)
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        churn = session.get(Customer, ticket.customer_id).churn_risk  # type: ignore[union-attr]
    send(
        app,
        "Mallory <mallory@elsewhere.example>",
        "Re: [Ticket #10001] How did we do?",
        "1",
        f"In-Reply-To: <{survey}>",
        mid="fake-survey@elsewhere.example",
    )
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.survey_answered_at is None and ticket.status == "resolved"
        assert session.scalars(select(Credit)).all() == []
        assert session.get(Customer, ticket.customer_id).churn_risk == churn  # type: ignore[union-attr]
        detail = ticket_detail(session, 10001)
    assert detail is not None
    assert not [e for e in detail["events"] if e["kind"] == "survey.answered"]
    assert mails(app, "low_score_alert", 10001) == []
    send(  # the customer's own answer still counts
        app,
        "Karen <karen@globalpharma.example>",
        "Re: [Ticket #10001] How did we do?",
        "5",
        f"In-Reply-To: <{survey}>",
        mid="real-survey@globalpharma.example",
    )
    with transaction(app.sessions, commit=False) as session:
        assert session.scalars(select(Ticket)).one().survey_answered_at is not None


def _acknowledged(app: App) -> str:
    send(
        app,
        "Laura Chen <laura@northwind-analytics.example>",
        "DS-1001: Invalid Credentials",
        "Sign-in fails.",
        mid="ds1001@northwind-analytics.example",
    )
    [ack] = mails(app, "acknowledgment", 10001)
    return ack.message_id


def test_a_bounce_counts_only_for_a_recipient_of_the_mail_it_returns(app: App) -> None:
    ack = _acknowledged(app)
    _bounce(app, 1, "ceo@northwind-analytics.example", ack)  # never sent that mail
    assert _mark(app, "ceo@northwind-analytics.example") is None
    _bounce(app, 2, "laura@northwind-analytics.example", "forged-id@mailproc.dataflow.com")
    assert _mark(app, "laura@northwind-analytics.example") is None
    _bounce(app, 3, "laura@northwind-analytics.example", ack)
    mark = _mark(app, "laura@northwind-analytics.example")
    assert mark is not None and mark.permanent


def test_an_undeliverable_mark_is_cleared_by_mail_from_the_address(app: App) -> None:
    ack = _acknowledged(app)
    _bounce(app, 1, "laura@northwind-analytics.example", ack)
    assert _mark(app, "laura@northwind-analytics.example") is not None
    send(
        app,
        "Laura Chen <laura@northwind-analytics.example>",
        "Re: [Ticket #10001] Your Support Request",
        "My mailbox is back, any news?",
        f"In-Reply-To: <{ack}>",
        mid="back@northwind-analytics.example",
    )
    assert _mark(app, "laura@northwind-analytics.example") is None

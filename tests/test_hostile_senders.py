"""Issue 20, hostile or unlucky senders: the core verdicts wired into processing and workflows."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from test_workflows import AGENTS, agent_reply, mails, send, to
from test_workflows import app as app  # the fixture with authenticated agents

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Event, Inbound, Outbox, RefundCaseRecord, Ticket


def _ticket(app: App, number: int) -> Ticket:
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        session.expunge_all()
        return ticket


def _events(app: App, number: int) -> list[Event]:
    with transaction(app.sessions, commit=False) as session:
        rows = list(
            session.scalars(
                select(Event)
                .join(Ticket, Ticket.id == Event.ticket_id)
                .where(Ticket.number == number)
            )
        )
        session.expunge_all()
        return rows


def test_urgent_mail_with_out_of_office_wording_from_a_customer_is_acknowledged(
    app: App,
) -> None:
    send(
        app,
        "Priya Raman <priya@harborline.example>",
        "I am out of the office but urgent: dashboards down",
        "All dashboards are down for everyone since 14:05, production is stopped.",
        mid="oof-urgent@harborline.example",
    )
    ticket = _ticket(app, 10001)
    assert ticket.priority in ("P0", "P1")
    assert len(mails(app, "acknowledgment", 10001)) == 1


def test_out_of_office_subject_alone_from_a_customer_is_ticketed_for_review(app: App) -> None:
    send(
        app,
        "Priya Raman <priya@harborline.example>",
        "Out of Office: back Monday",
        "Our nightly export failed again, can you look?",
        mid="oof-subject@harborline.example",
    )
    ticket = _ticket(app, 10001)
    assert ticket.needs_triage
    assert "subject wording" in (ticket.triage_reason or "")
    assert mails(app, "acknowledgment", 10001) == []
    with transaction(app.sessions, commit=False) as session:
        [inbound] = session.scalars(select(Inbound))
        assert inbound.kind == "human"


def test_mail_over_the_understanding_budget_leaves_an_event_on_its_ticket(
    app: App, clock: FixedClock
) -> None:
    intake = app.settings.intake.model_copy(update={"max_understood_chars": 1024})
    small = App(app.settings.model_copy(update={"intake": intake}), clock)
    send(
        small,
        "Priya Raman <priya@harborline.example>",
        "Export log attached inline",
        "The export fails, here is the log:\n" + "line of log output\n" * 200,
        mid="reduced@harborline.example",
    )
    small.close()
    [event] = [e for e in _events(app, 10001) if e.kind == "message.reduced"]
    assert "understanding budget of 1024" in event.reason


def test_an_absurd_refund_amount_is_clamped_and_the_clamping_recorded(app: App) -> None:
    send(
        app,
        "Priya Raman <priya@harborline.example>",
        "Refund request",
        "Please refund $99999999999999999 for last month, we were charged twice.",
        mid="clamped@harborline.example",
    )
    [event] = [e for e in _events(app, 10001) if e.kind == "refund.amount_clamped"]
    assert "9999999999.99" in event.reason
    assert "Finance Director" in event.reason


def _app_with_identity(db_url: str, clock: FixedClock, identity: dict[str, object]) -> App:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": {"agents": AGENTS, **identity},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    return application


def _big_refund_and_a_finance_approval(application: App) -> None:
    send(
        application,
        "Robert <robert.fitzgerald@atlasinsurance.example>",
        "Cancel and refund",
        "We want to cancel and get a refund of $4,000.",
        mid="big@atlasinsurance.example",
    )
    agent_reply(
        application,
        "Fiona Finance <fiona@dataflow.com>",
        10001,
        "#refund approve 4000",
        authenticated=False,
        mid="forged-approval@dataflow.com",
    )


def test_by_default_agent_mail_is_refused_until_authentication_is_configured(
    db_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        application = _app_with_identity(db_url, clock, {})
        try:
            _big_refund_and_a_finance_approval(application)
            assert mails(application, "refund_confirmation", 10001) == []
            assert mails(application, "agent_reply", 10001) == []
            [error] = mails(application, "command_error", 10001)
            assert to(error) == {"fiona@dataflow.com"}
            assert error.raw is not None
            message = email.message_from_bytes(error.raw, policy=email.policy.default)
            body = message.get_body(("plain",))
            assert body is not None and "trusted_authserv_id" in body.get_content()
            with transaction(application.sessions, commit=False) as session:
                case = session.scalars(select(RefundCaseRecord)).one()
                assert case.status == "requested"
        finally:
            application.close()
    assert any("trusted_authserv_id" in r.getMessage() for r in caplog.records)


def test_trust_from_address_is_an_explicit_choice_for_closed_networks(
    db_url: str, clock: FixedClock
) -> None:
    application = _app_with_identity(db_url, clock, {"trust_from_address": True})
    try:
        _big_refund_and_a_finance_approval(application)
        assert len(mails(application, "refund_confirmation", 10001)) == 1
        assert mails(application, "command_error", 10001) == []
    finally:
        application.close()


def _alert_text(application: App, number: int) -> str:
    [alert] = mails(application, "new_ticket_alert", number)
    assert alert.raw is not None
    message = email.message_from_bytes(alert.raw, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


@pytest.mark.parametrize(
    "header",
    [
        # Lotus Notes: no ">" and no "wrote:", a bare address block above the included mail
        "DataFlow Support <support@dataflow.com>\n27/11/2026 10:05\n\nTo: alex@dataflow.com\n"
        "Subject: [Ticket #10001] Error 503: Service Unavailable\n",
        # Outlook without quoting, the header fields without a "From:" the splitter knows
        "-----\nDataFlow Support wrote on 27 Nov 2026 10:05\nSubject: [Ticket #10001] Error 503\n",
        "",  # the alert pasted below the answer with nothing between
    ],
)
def test_an_agent_reply_that_includes_the_alert_unquoted_never_relays_it(
    app: App, header: str
) -> None:
    send(
        app,
        "Priya Raman <priya@harborline.example>",
        "Error 503: Service Unavailable",
        "All dashboards are down since 14:05.",
        mid="1003@harborline.example",
    )
    alert = _alert_text(app, 10001)
    assert "Priority rules" in alert
    answer = "Hello Priya,\n\nWe restarted the API cluster; please try again."
    agent_reply(
        app,
        "Alex Agent <alex@dataflow.com>",
        10001,
        f"{answer}\n\n{header}\n{alert}",
        mid="notes-reply@dataflow.com",
    )
    [relay] = mails(app, "agent_reply", 10001)
    assert relay.raw is not None
    assert b"restarted the API cluster" in relay.raw
    for internal in (b"Priority rules", b"first response, due by", b"Automatic notification"):
        assert internal not in relay.raw


def test_the_auto_reply_budget_holds_across_concurrent_workers(
    db_url: str, clock: FixedClock
) -> None:
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0, "batch_size": 3}}
    )
    workers = [App(settings, clock) for _ in range(3)]
    try:
        for n in range(9):
            raw = (
                f"From: Storm <storm@flood.example>\r\nTo: support@dataflow.com\r\n"
                f"Subject: Question number {n} about exports\r\n"
                f"Message-ID: <storm-{n}@flood.example>\r\n\r\nHow do I export report {n}?\r\n"
            ).encode()
            workers[0].ingest([RawInput(raw, Envelope("smtp"))])
        together = threading.Barrier(3)

        def work(app: App) -> None:
            app.process(before_batch=lambda: together.wait(timeout=10))

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with transaction(workers[0].sessions, commit=False) as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket))
            acks = session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.template == "acknowledgment")
            )
        assert tickets == 9
        assert acks == 3
    finally:
        for worker in workers:
            worker.close()

"""Issue 15, part 1 (leftover): mail carrying a ticket's subject tag from someone who is
neither on the ticket nor an agent is held for review and the assignee told, never added.
Mail in, the mail out; the ticket's customer (en, es, fr) is written nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_agents_by_mail import ALEX, CUSTOMERS, app, open_ticket, run_cli, text_of
from test_workflows import agent_reply, detail, mails, send, to

from mailproc.app import App
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.store.db import transaction
from mailproc.store.models import Outbox, Ticket

__all__ = ["app"]  # the fixture, shared with test_agents_by_mail
STRANGER = "Sam Stranger <sam@elsewhere.example>"


def _customer_mail(app: App) -> list[str]:
    """The templates of every customer-facing mail queued (the acknowledgment aside)."""
    with transaction(app.sessions, commit=False) as session:
        query = select(Outbox.template).where(Outbox.lane == 0)
        return [t for t in session.scalars(query) if t != "acknowledgment"]


def _inbound(app: App, number: int) -> int:
    return len([m for m in detail(app, number)["messages"] if m["direction"] == "in"])


def _tickets(app: App) -> list[int]:
    with transaction(app.sessions, commit=False) as session:
        return list(session.scalars(select(Ticket.number)))


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_a_strangers_subject_tag_is_held_and_the_assignee_told(app: App, locale: str) -> None:
    open_ticket(app, CUSTOMERS[locale], f"first-{locale}@customer.example")
    agent_reply(app, ALEX, 10001, "#assign Marta Manager", mid="assign@dataflow.com")
    before = _inbound(app, 10001)
    raw = (
        f"From: {STRANGER}\r\nTo: support@dataflow.com\r\n"
        "Subject: Re: [Ticket #10001] DS-1001\r\nMessage-ID: <sam-1@elsewhere.example>\r\n\r\n"
        "#status resolved\r\nPlease send me the invoices of this account.\r\n"
    ).encode()
    app.ingest([RawInput(raw, Envelope("smtp"))])
    [outcome] = app.process().outcomes
    assert outcome.action == "held" and outcome.ticket_number == 10001
    assert "sam@elsewhere.example used its subject tag of ticket #10001" in outcome.reason
    ticket = detail(app, 10001)
    assert _inbound(app, 10001) == before and ticket["status"] == "new"
    assert "inbound.held" in [e["kind"] for e in ticket["events"]]
    assert _tickets(app) == [10001]  # no new ticket either
    [alert] = mails(app, "held_mail_alert", 10001)
    assert to(alert) == {"marta@dataflow.com"}
    text = text_of(alert)
    assert "came from sam@elsewhere.example" in text
    assert f"mailproc quarantine release {outcome.inbound_id}" in text
    assert "> Please send me the invoices of this account." in text
    assert _customer_mail(app) == []  # nothing to the customer, nothing to the stranger
    assert mails(app, "command_error") == [] and mails(app, "customer_reply_alert") == []
    # released by an admin who finds it belongs: added to the ticket, its commands refused
    run_cli(app, "quarantine", "release", str(outcome.inbound_id))
    assert _inbound(app, 10001) == before + 1 and detail(app, 10001)["status"] == "new"
    assert len(mails(app, "command_error", 10001)) == 1


def test_the_customers_own_tag_and_an_agents_tag_are_not_held(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    send(app, CUSTOMERS["en"], "Re: [Ticket #10001] more", "Still failing.", mid="c2@n.example")
    send(
        app,
        ALEX,
        "Re: [Ticket #10001]",
        "#priority P1",
        "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com",
        mid="a1@dataflow.com",
    )
    assert mails(app, "held_mail_alert") == []
    assert detail(app, 10001)["priority"] == "P1"
    assert _inbound(app, 10001) == 3


def test_a_strangers_tagged_auto_reply_matches_no_ticket(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    raw = (
        f"From: {STRANGER}\r\nTo: support@dataflow.com\r\nAuto-Submitted: auto-replied\r\n"
        "Subject: Out of office: [Ticket #10001] DS-1001\r\n"
        "Message-ID: <ooo@elsewhere.example>\r\n\r\nI am away.\r\n"
    ).encode()
    app.ingest([RawInput(raw, Envelope("smtp"))])
    [outcome] = app.process().outcomes
    assert outcome.action == "kept" and outcome.ticket_number is None
    assert "matches no ticket" in outcome.reason
    assert mails(app, "held_mail_alert") == []

"""Issues 3 and 4 end to end through the worker: threading trust order, hijack attempts,
agent identity, automatic mail, bounces, reopen window, classification and due times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.core.tokens import reply_address
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import (
    Event,
    Inbound,
    MessageRecord,
    Ticket,
    UndeliverableAddress,
)
from mailproc.tickets.views import list_inbound, ticket_detail

AGENT = "marta.ruiz@dataflow.com"


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "identity": {
                "trusted_authserv_id": "mx.dataflow.com",
                "agents": [
                    {"name": "Marta Ruiz", "roles": ["support_manager"], "addresses": [AGENT]}
                ],
            },
            "threading": {"reopen_window_days": 7},
            "processing": {"parse_workers": 0},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def mail(
    sender: str,
    subject: str,
    body: str = "Hello, the dashboard shows an error.",
    *headers: str,
    message_id: str | None = None,
    to: str = "support@dataflow.com",
) -> bytes:
    mid = message_id or f"{abs(hash((sender, subject, body, headers)))}@client.example"
    head = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{mid}>",
        "Date: Fri, 27 Nov 2026 09:00:00 +0000",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def deliver(app: App, raw: bytes, rcpt: tuple[str, ...] = (), mail_from: str | None = None):
    app.ingest([RawInput(raw, Envelope("smtp", mail_from=mail_from, rcpt_to=rcpt))])
    [outcome] = app.process().outcomes
    return outcome


def events(app: App, number: int) -> list[dict]:
    with transaction(app.sessions, commit=False) as session:
        detail = ticket_detail(session, number)
    assert detail is not None
    return detail["events"]


def ticket(app: App, number: int) -> dict:
    with transaction(app.sessions, commit=False) as session:
        detail = ticket_detail(session, number)
    assert detail is not None
    return detail


LAURA = "Laura Chen <laura@northwind-analytics.example>"  # customer 1001
PRIYA = "Priya Raman <priya@harborline.example>"  # customer 1003


def test_subject_tag_of_another_customers_ticket_is_held_for_review(app: App) -> None:
    first = deliver(app, mail(LAURA, "DS-1001: Invalid Credentials"))
    assert first.action == "created" and first.ticket_number == 10001
    hijack = deliver(app, mail(PRIYA, "[Ticket #10001] please add me"))
    assert hijack.action == "held" and hijack.ticket_number == 10001
    assert "neither a participant nor an agent" in hijack.reason
    assert "inbound.held" in [e["kind"] for e in events(app, 10001)]
    own = deliver(app, mail(LAURA, "Re: [Ticket #10001] more details"))
    assert own.action == "appended" and own.ticket_number == 10001


def test_forged_references_are_ignored(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001", message_id="laura-1@northwind-analytics.example"))
    forged = deliver(app, mail(PRIYA, "Re: DS-1001", "References: <guessed-id@dataflow.com>"))
    assert forged.action == "created" and forged.ticket_number == 10002
    known = deliver(
        app,
        mail(LAURA, "Re: DS-1001", "ok", "In-Reply-To: <laura-1@northwind-analytics.example>"),
    )
    assert known.action == "appended" and known.ticket_number == 10001


def test_reply_token_threads_and_altered_token_does_not(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001: Invalid Credentials"))
    address = reply_address(app.reply_scheme(), 10001)
    good = deliver(app, mail(LAURA, "Re: your request", to=address), rcpt=(address,))
    assert good.action == "appended" and good.ticket_number == 10001
    assert "token" in good.reason
    # issue 15: a valid token from someone who is not on the ticket is held for review
    stranger = deliver(app, mail(PRIYA, "Re: your request", "X: 0", to=address), rcpt=(address,))
    assert stranger.action == "held" and stranger.ticket_number == 10001
    assert "token" in stranger.reason and "neither a participant nor an agent" in stranger.reason
    local, _, domain = address.partition("@")
    altered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    bad = deliver(app, mail(PRIYA, "Re: your request", "X: 1", to=altered), rcpt=(altered,))
    assert bad.action == "created" and bad.ticket_number == 10002
    guessed = "support+10001-aaaaaaaaaaaaaaaa@dataflow.com"
    worse = deliver(app, mail(PRIYA, "Re: again", "X: 2", to=guessed), rcpt=(guessed,))
    assert worse.action == "created"


AUTH_PASS = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"


def _sender_kind(app: App, number: int) -> str:
    with transaction(app.sessions, commit=False) as session:
        return (
            session.scalars(
                select(MessageRecord.sender_kind)
                .join(Ticket, Ticket.id == MessageRecord.ticket_id)
                .where(Ticket.number == number, MessageRecord.direction == "in")
                .order_by(MessageRecord.id.desc())
            ).first()
            or ""
        )


def test_agent_needs_trusted_authentication_results(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001", message_id="l1@northwind-analytics.example"))
    reply = "In-Reply-To: <l1@northwind-analytics.example>"
    # not authenticated: not the agent, and a stranger to the ticket threading by its
    # Message-ID, so held for review, not added (issue 20, item 11)
    forged = deliver(app, mail(f"Marta <{AGENT}>", "Re: DS-1001", "body 1", reply))
    assert forged.action == "held" and _sender_kind(app, 10001) == "customer"
    other_id = "Authentication-Results: evil.example; dmarc=pass header.from=dataflow.com"
    again = deliver(app, mail(f"Marta <{AGENT}>", "Re: DS-1001", "body 2", reply, other_id))
    assert again.action == "held" and _sender_kind(app, 10001) == "customer"
    held = [e for e in events(app, 10001) if e["kind"] == "inbound.held"]
    assert len(held) == 2 and all("Message-ID of its thread" in e["reason"] for e in held)
    fresh = deliver(app, mail(f"Marta <{AGENT}>", "Refund approved", "body 4"))
    assert fresh.action == "created" and _sender_kind(app, fresh.ticket_number or 0) == "unknown"
    assert any(
        "no Authentication-Results from mx.dataflow.com" in e["detail"].get("sender_reason", "")
        for e in events(app, fresh.ticket_number or 0)
    )
    deliver(app, mail(f"Marta <{AGENT}>", "Re: DS-1001", "body 3", reply, AUTH_PASS))
    assert _sender_kind(app, 10001) == "agent"


def test_cyrillic_lookalike_of_an_agent_is_not_an_agent(app: App) -> None:
    lookalike = "mаrta.ruiz@dataflow.com"  # Cyrillic 'а'
    outcome = deliver(app, mail(f"Marta <{lookalike}>", "Refund approved", "ok", AUTH_PASS))
    assert outcome.action == "created"
    assert _sender_kind(app, outcome.ticket_number or 0) == "unknown"
    received = [
        e for e in events(app, outcome.ticket_number or 0) if e["kind"] == "message.received"
    ]
    assert received[0]["detail"]["lookalike_of"] == AGENT


def test_out_of_office_is_noted_without_reopening_and_never_opens_a_ticket(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001", message_id="l1@northwind-analytics.example"))
    with transaction(app.sessions) as session:
        session.scalars(select(Ticket)).one().status = "waiting"
    ooo = mail(
        LAURA,
        "Automatic reply: DS-1001",
        "I am out of the office until Monday.",
        "Auto-Submitted: auto-replied",
        "In-Reply-To: <l1@northwind-analytics.example>",
    )
    outcome = deliver(app, ooo)
    assert outcome.action == "noted" and outcome.ticket_number == 10001
    assert ticket(app, 10001)["status"] == "waiting"
    stray = deliver(
        app, mail(PRIYA, "Out of office", "Back on Monday.", "Auto-Submitted: auto-replied")
    )
    assert stray.action == "kept" and stray.ticket_number is None
    with transaction(app.sessions, commit=False) as session:
        rows = list_inbound(session, kind="auto_reply")
    assert len(rows) == 2 and rows[0]["status"] == "processed"


def test_out_of_office_storm_opens_nothing(app: App) -> None:
    storm = [
        RawInput(
            mail(
                PRIYA,
                "Abwesenheitsnotiz",
                f"Ich bin nicht im Büro ({i}).",
                "Auto-Submitted: auto-replied",
            ),
            Envelope("smtp"),
        )
        for i in range(500)
    ]
    app.ingest(storm)
    summary = app.process()
    assert summary.count("kept") == 500 and summary.count("created") == 0
    with transaction(app.sessions, commit=False) as session:
        assert session.scalars(select(Ticket)).all() == []


DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.northwind-analytics.example>
To: support@dataflow.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.northwind-analytics.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.northwind-analytics.example

Final-Recipient: rfc822; gone@northwind-analytics.example
Action: failed
Status: 5.1.1

--b
Content-Type: text/rfc822-headers

From: support@dataflow.com
To: gone@northwind-analytics.example
Subject: [Ticket #10001] Your Support Request
Message-ID: <ack-10001.abc@mailproc.dataflow.com>

--b--
"""


def test_bounce_of_our_acknowledgment_is_attached_and_marks_the_address(
    app: App, clock: FixedClock
) -> None:
    deliver(app, mail(LAURA, "DS-1001"))
    with transaction(app.sessions) as session:
        ticket_row = session.scalars(select(Ticket)).one()
        session.add(
            MessageRecord(
                ticket_id=ticket_row.id,
                direction="out",
                message_id="ack-10001.abc@mailproc.dataflow.com",
                to=[["", "gone@northwind-analytics.example"]],
                created_at=clock.now(),
            )
        )
    outcome = deliver(app, DSN.replace("\n", "\r\n").encode(), mail_from="")
    assert outcome.action == "noted" and outcome.ticket_number == 10001
    assert ticket(app, 10001)["status"] == "new"
    with transaction(app.sessions, commit=False) as session:
        row = session.get(UndeliverableAddress, "gone@northwind-analytics.example")
        assert row is not None and row.permanent
        kind = session.scalars(select(Inbound.kind).order_by(Inbound.id.desc())).first()
    assert kind == "bounce"


def test_bounce_matching_nothing_opens_no_ticket(app: App) -> None:
    outcome = deliver(
        app,
        DSN.replace("ack-10001.abc", "unknown")
        .replace("[Ticket #10001] ", "")
        .replace("\n", "\r\n")
        .encode(),
        mail_from="",
    )
    assert outcome.action == "kept"
    with transaction(app.sessions, commit=False) as session:
        assert session.scalars(select(Ticket)).all() == []
        [row] = list_inbound(session, kind="bounce")
    assert "matches no ticket" in row["kind_reason"] or row["kind"] == "bounce"


def test_mail_from_our_own_address_is_not_a_ticket(app: App) -> None:
    outcome = deliver(app, mail("DataFlow Support <support@dataflow.com>", "[Ticket #10001] x"))
    assert outcome.action == "kept"


def test_mailing_list_mail_is_kept_marked_bulk_without_a_ticket(app: App) -> None:
    outcome = deliver(
        app,
        mail(
            "news@vendor.example",
            "Weekly digest",
            "news",
            "List-Id: <digest.vendor.example>",
            "Precedence: list",
        ),
    )
    assert outcome.action == "kept"
    with transaction(app.sessions, commit=False) as session:
        assert session.scalars(select(Inbound.kind)).one() == "bulk"
        assert session.scalars(select(Ticket)).all() == []


def test_reopen_within_window_and_new_linked_ticket_after(app: App, clock: FixedClock) -> None:
    deliver(app, mail(LAURA, "DS-1001", message_id="l1@northwind-analytics.example"))
    with transaction(app.sessions) as session:
        row = session.scalars(select(Ticket)).one()
        row.status, row.resolved_at = "resolved", clock.now()
    clock.advance(dt.timedelta(days=2))
    reopened = deliver(
        app,
        mail(LAURA, "Re: DS-1001", "It is back.", "In-Reply-To: <l1@northwind-analytics.example>"),
    )
    assert reopened.action == "reopened" and ticket(app, 10001)["status"] == "open"
    with transaction(app.sessions) as session:
        row = session.scalars(select(Ticket)).one()
        row.status, row.resolved_at = "closed", clock.now()
    clock.advance(dt.timedelta(days=8))
    late = deliver(
        app,
        mail(
            LAURA,
            "Re: DS-1001",
            "Again, weeks later.",
            "In-Reply-To: <l1@northwind-analytics.example>",
        ),
    )
    assert late.action == "created" and late.ticket_number == 10002
    assert ticket(app, 10002)["parent_ticket"] == 10001
    assert "reopen window" in late.reason


def test_reply_in_the_same_batch_threads_to_the_new_ticket(app: App) -> None:
    first = mail(LAURA, "DS-1001", message_id="same-batch@northwind-analytics.example")
    second = mail(
        LAURA, "Re: DS-1001", "more", "In-Reply-To: <same-batch@northwind-analytics.example>"
    )
    app.ingest([RawInput(first, Envelope("file")), RawInput(second, Envelope("file"))])
    summary = app.process()
    assert [o.action for o in summary.outcomes] == ["created", "appended"]
    assert {o.ticket_number for o in summary.outcomes} == {10001}


def test_outage_is_p0_with_one_hour_first_response(app: App, clock: FixedClock) -> None:
    outcome = deliver(app, mail(PRIYA, "Error 503: Service Unavailable - all dashboards down"))
    detail = ticket(app, outcome.ticket_number or 0)
    assert detail["priority"] == "P0"
    assert detail["first_response_due"] == (clock.now() + dt.timedelta(hours=1)).isoformat()
    kinds = [e["kind"] for e in detail["events"]]
    assert "ticket.classified" in kinds and "ticket.sla" in kinds
    classified = next(e for e in detail["events"] if e["kind"] == "ticket.classified")
    assert classified["detail"]["seconds_after_receipt"] < 15 * 60


def test_uk_p1_received_at_seven_starts_at_nine(db_url: str) -> None:
    received = dt.datetime(2026, 11, 26, 7, 0, tzinfo=dt.UTC)  # Thursday, GMT
    application = App(
        Settings.model_validate({"database": {"url": db_url}, "processing": {"parse_workers": 0}}),
        FixedClock(received),
    )
    try:
        application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
        deliver(
            application,
            mail(
                "Oliver Hughes <oliver@thamesvalleyenergy.example>", "DS-1001: Invalid Credentials"
            ),
        )
        detail = ticket(application, 10001)
    finally:
        application.close()
    assert detail["priority"] == "P1" and detail["sla"]["sla_row"] == "Enterprise/P1"
    assert detail["first_response_due"] == "2026-11-26T13:00:00+00:00"
    assert "clock starts 2026-11-26 09:00 UTC" in " ".join(detail["sla"]["explanation"])


def test_plan_change_retimes_open_tickets(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001: Invalid Credentials"))
    before = ticket(app, 10001)["first_response_due"]
    text = (resource_path("data") / "customers_sample.csv").read_text()
    upgraded = text.replace(
        "Northwind Analytics,Laura Chen,laura@northwind-analytics.example,Professional",
        "Northwind Analytics,Laura Chen,laura@northwind-analytics.example,Enterprise",
    )
    report = app.import_customers(upgraded)
    assert report.tickets_recomputed == 1
    detail = ticket(app, 10001)
    assert detail["sla"]["sla_row"] == "Enterprise/P1" and detail["first_response_due"] != before
    assert any(
        e["kind"] == "ticket.sla_recomputed" and "plan Professional → Enterprise" in e["reason"]
        for e in detail["events"]
    )


def test_spanish_and_french_mail_classify_like_english(app: App) -> None:
    english = deliver(app, mail(LAURA, "All dashboards are down, API unavailable"))
    spanish = deliver(app, mail(LAURA, "Todos los tableros están caídos, la API no responde"))
    french = deliver(app, mail(LAURA, "Tous les tableaux de bord sont en panne, API indisponible"))
    priorities = {ticket(app, o.ticket_number or 0)["priority"] for o in (english, spanish, french)}
    assert priorities == {"P0"}


def test_every_decision_is_in_the_event_log(app: App) -> None:
    deliver(app, mail(LAURA, "DS-1001"))
    with transaction(app.sessions, commit=False) as session:
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds[:4] == ["ticket.created", "message.received", "ticket.classified", "ticket.sla"]
    assert {"notify.ack_queued", "timer.scheduled"} <= set(kinds[4:])


def test_a_stranger_knowing_the_customers_message_id_cannot_write_into_the_ticket(
    app: App,
) -> None:
    # Issue 20, item 11: In-Reply-To/References threading checked nobody's standing.
    deliver(app, mail(LAURA, "DS-1001", message_id="l1@northwind-analytics.example"))
    stranger = deliver(
        app,
        mail(
            "Mallory <mallory@elsewhere.example>",
            "Re: DS-1001",
            "Please send the credentials to this address instead.",
            "In-Reply-To: <l1@northwind-analytics.example>",
        ),
    )
    assert stranger.action == "held"
    assert _sender_kind(app, 10001) == "customer"  # nothing added to Laura's ticket
    with transaction(app.sessions, commit=False) as session:
        inbound = session.scalars(select(Inbound).order_by(Inbound.id.desc())).first()
        assert inbound is not None and inbound.status == "quarantined"
        assert "Message-ID of its thread" in (inbound.last_error or "")

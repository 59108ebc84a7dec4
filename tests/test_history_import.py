"""Importing history never writes to anyone (issue 14 part 4): ``ingest --history`` stores and
threads old mail at its own time, opens its tickets as already handled, and neither then nor
at any later scheduler tick sends a mail or grants a credit; a replay of it stays silent."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from mailproc.app import App
from mailproc.cli import cli
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.processing.replay import ReplaySelection
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Credit, Inbound, MessageRecord, Outbox, Ticket, Timer
from tests.conftest import T0

AUTH = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"
AGENTS = [
    {"name": "Alex Agent", "roles": ["agent"], "addresses": ["alex@dataflow.com"]},
    {"name": "Marta Manager", "roles": ["support_manager"], "addresses": ["marta@dataflow.com"]},
    {"name": "Dev Ops", "roles": ["devops"], "addresses": ["devops@dataflow.com"]},
    {"name": "Eng", "roles": ["engineering"], "addresses": ["eng@dataflow.com"]},
]
IDENTITY = {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS}
CUSTOMERS = [
    "Laura Chen <laura@northwind-analytics.example>",
    "Priya Raman <priya@harborline.example>",
    "Jonas Kessler <jonas@kessler-mb.example>",
    "Tom Becker <tom@pixelpine.example>",
    "Stranger <someone@elsewhere.example>",
]
# what customers write: outages (P0, incidents), error codes, refunds, plain questions
FIRST = [
    ("Error 503: Service Unavailable", "All dashboards are down."),
    ("DS-1001: Invalid Credentials", "We cannot connect to the warehouse since this morning."),
    ("Refund request", "Please refund the last invoice, we cancelled."),
    ("Dashboard question", "How do I share a dashboard with my team?"),
]
HISTORY_MAILS = 3000


def _raw(sender: str, subject: str, body: str, when: dt.datetime, mid: str, *headers: str) -> bytes:
    head = [
        f"From: {sender}",
        "To: support@dataflow.com",
        f"Subject: {subject}",
        f"Date: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"Message-ID: <{mid}>",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


def history(count: int, end: dt.datetime) -> list[bytes]:
    """``count`` mails of the three months before ``end``, oldest first: threads of a
    customer's mail, an agent's answer (with commands) and the customer's reply, a survey
    score, with out-of-office replies, bounces and newsletters among them."""
    mails: list[bytes] = []
    step = dt.timedelta(days=90) / count
    when = end - dt.timedelta(days=90)
    thread = 0
    while len(mails) < count:
        thread += 1
        customer = CUSTOMERS[thread % len(CUSTOMERS)]
        subject, body = FIRST[thread % len(FIRST)]
        first = f"h{thread}@customer.example"
        answer = f"a{thread}@dataflow.com"
        kinds = [
            _raw(customer, subject, body, when, first),
            _raw(
                "Alex Agent <alex@dataflow.com>",
                f"Re: {subject}",
                "#status resolved\n#priority P1\n\nFixed on our side; please retry.",
                when + step,
                answer,
                f"In-Reply-To: <{first}>",
                AUTH,
            ),
            _raw(
                customer,
                f"Re: {subject}",
                "5 - thanks, it works again.",
                when + 2 * step,
                f"r{thread}@customer.example",
                f"In-Reply-To: <{answer}>",
                f"References: <{first}> <{answer}>",
            ),
        ]
        if thread % 7 == 0:
            kinds.append(
                _raw(customer, "Out of office", "I am away.", when, f"o{thread}@c.example",
                     "Auto-Submitted: auto-replied", f"In-Reply-To: <{answer}>")
            )  # fmt: skip
        if thread % 11 == 0:
            kinds.append(
                _raw("News <news@vendor.example>", "Weekly digest", "News.", when,
                     f"n{thread}@vendor.example", "List-Id: <digest.vendor.example>")
            )  # fmt: skip
        for raw in kinds:
            if len(mails) < count:
                mails.append(raw)
                when += step
    return mails


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": IDENTITY,
            "incidents": {"min_customers": 2},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def outbox(app: App) -> list[tuple[str, str]]:
    with transaction(app.sessions, commit=False) as session:
        return [(r.template, r.key) for r in session.scalars(select(Outbox).order_by(Outbox.id))]


def credits(app: App) -> int:
    with transaction(app.sessions, commit=False) as session:
        return session.scalar(select(func.count()).select_from(Credit)) or 0


def check(app: App, clock: FixedClock, after: dt.timedelta) -> None:
    clock.advance(T0 + after - clock.now())
    app.check(clock.now(), dry_run=False)


def ingest_history(app: App, raws: list[bytes], *, process: bool = True) -> None:
    report = app.ingest([RawInput(raw, Envelope("mbox")) for raw in raws], history=True)
    assert report.stored == len(raws)
    if process:
        app.process()


def test_three_months_of_history_send_nothing_now_or_later(app: App, clock: FixedClock) -> None:
    ingest_history(app, history(HISTORY_MAILS, T0))
    assert outbox(app) == []
    with transaction(app.sessions, commit=False) as session:
        tickets = session.scalars(select(Ticket)).all()
        statuses = {t.status for t in tickets}
        timers = session.scalar(select(func.count()).select_from(Timer))
        rows = session.execute(select(Inbound.kind, func.count()).group_by(Inbound.kind))
        kinds = {kind: count for kind, count in rows}
        priorities = {t.priority for t in tickets}
        oldest = min(t.received_at for t in tickets)
        assert all(t.imported_at is not None and t.first_response_due is None for t in tickets)
        assert all(t.survey_sent_at is None and t.resolved_at is not None for t in tickets)
    threads = HISTORY_MAILS // 3
    assert threads * 0.9 < len(tickets) <= threads  # replies joined their thread's ticket
    assert statuses == {"closed"} and timers == 0
    assert "P0" in priorities  # outages were recognised: and still no leaders' alert
    assert oldest < T0 - dt.timedelta(days=89)  # timed by their own Date
    assert kinds["human"] > 2000 and kinds["auto_reply"] > 0 and kinds["bulk"] > 0
    for after in (dt.timedelta(hours=2), dt.timedelta(days=1), dt.timedelta(days=30)):
        check(app, clock, after)
        assert outbox(app) == [] and credits(app) == 0, after


def test_history_does_not_spend_the_senders_auto_reply_budget(app: App) -> None:
    laura = "Laura Chen <laura@northwind-analytics.example>"
    old = [
        _raw(laura, f"Question {n}", "How do I export?", T0 - dt.timedelta(minutes=n), f"q{n}@n")
        for n in range(1, 6)
    ]
    ingest_history(app, old)
    app.ingest([RawInput(_raw(laura, "New question", "Hello?", T0, "live@n"), Envelope("smtp"))])
    app.process()
    assert [template for template, _ in outbox(app)] == ["acknowledgment", "new_ticket_alert"]


@pytest.mark.parametrize("imported", [True, False])
def test_deadlines_missed_before_mailproc_had_the_mail_send_nothing(
    app: App, clock: FixedClock, imported: bool
) -> None:
    """An open ticket whose deadlines and timer fell before its mail was imported (as no path
    of mailproc leaves one, but an edit could): no apology, credit, alert or escalation; the
    same ticket opened live gets them (the test can fail)."""
    priya = "Priya Raman <priya@harborline.example>"
    sent = T0 - dt.timedelta(days=3)
    ingest_history(app, [_raw(priya, "Sync slow", "The sync is slow.", sent, "old@h")])
    with transaction(app.sessions) as session:
        ticket = session.scalars(select(Ticket)).one()
        ticket.status, ticket.resolved_at, ticket.closed_at = "open", None, None
        ticket.priority = "P1"
        ticket.first_response_due = sent + dt.timedelta(hours=4)
        ticket.resolution_due = sent + dt.timedelta(days=1)
        ticket.imported_at = T0 if imported else None
        session.add(
            Timer(
                key="t:escalate",
                ticket_id=ticket.id,
                kind="escalate_p1",
                due_at=sent + dt.timedelta(hours=2),
                team="engineering",
                notify_roles=[],
                priority="P1",
                reason="P1: Engineering after 2 hours",
                status="pending",
            )
        )
    check(app, clock, dt.timedelta(hours=2))
    sent_mail = {template for template, _ in outbox(app)}
    if imported:
        assert sent_mail == set() and credits(app) == 0
    else:
        assert {"sla_breach_apology", "escalation_alert"} <= sent_mail and credits(app) == 1


def test_replaying_history_stored_without_processing_sends_nothing(app: App) -> None:
    laura = "Laura Chen <laura@northwind-analytics.example>"
    old = _raw(laura, *FIRST[0], T0 - dt.timedelta(days=2), "down@n")
    ingest_history(app, [old], process=False)
    ids = app.replay_ids(ReplaySelection(everything=True))
    [result] = app.replay(ids, dry_run=False)
    assert result.action == "created"
    assert outbox(app) == []
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.status, ticket.priority) == ("closed", "P0")
        assert ticket.received_at == T0 - dt.timedelta(days=2)
    app.replay(ids, dry_run=False)  # processed: refreshed from the raw mail, still silent
    assert outbox(app) == []


def test_a_quarantined_history_mail_tells_no_one(db_url: str, clock: FixedClock) -> None:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "intake": {"max_message_bytes": 1024},
        }
    )
    app = App(settings, clock)
    try:
        app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
        big = _raw("Laura <laura@northwind-analytics.example>", "Logs", "x" * 4000,
                   T0 - dt.timedelta(days=5), "big@n")  # fmt: skip
        ingest_history(app, [big])
        with transaction(app.sessions, commit=False) as session:
            assert session.scalars(select(Inbound.status)).one() == "quarantined"
        assert outbox(app) == []
    finally:
        app.close()


def test_old_mail_without_history_is_timed_from_its_arrival(app: App) -> None:
    laura = "Laura Chen <laura@northwind-analytics.example>"
    old = _raw(laura, "Export", "How do I export?", T0 - dt.timedelta(days=60), "old@n")
    app.ingest([RawInput(old, Envelope("smtp"))])
    app.process()
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.received_at == T0 and ticket.imported_at is None
        assert ticket.first_response_due is not None and ticket.first_response_due > T0
    assert [template for template, _ in outbox(app)] == ["acknowledgment", "new_ticket_alert"]


def test_ingest_history_on_the_command_line(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mbox = tmp_path / "old.mbox"
    mbox.write_bytes(
        b"".join(b"From someone Mon Jan  1 00:00:00 2026\n" + raw + b"\n"
                 for raw in history(30, T0))
    )  # fmt: skip
    env = {
        "MAILPROC_DATABASE_URL": app.settings.database.url,
        "MAILPROC_PROCESSING_PARSE_WORKERS": "0",
        "MAILPROC_IDENTITY": json.dumps(IDENTITY),
    }
    result = CliRunner().invoke(cli, ["ingest", "--history", str(mbox)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("stored 30, duplicates 0")
    listed = CliRunner().invoke(cli, ["inbound", "list", "--json"], env=env)
    rows = json.loads(listed.output)
    assert len(rows) == 30 and all(row["imported_at"] for row in rows)
    assert outbox(app) == []


def test_a_reply_listed_before_its_original_joins_its_ticket(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Maildir's order is not the mail's: the reply's file comes first in the listing, yet
    the import stores (and the worker processes) it after the original by their times."""
    monkeypatch.chdir(tmp_path)
    laura = "Laura Chen <laura@northwind-analytics.example>"
    sent = T0 - dt.timedelta(days=10)
    maildir = tmp_path / "Old"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1000.a-reply:2,S").write_bytes(
        _raw(laura, "Re: Export fails", "Still failing.", sent + dt.timedelta(hours=3),
             "reply@n", "In-Reply-To: <first@n>", "References: <first@n>")
    )  # fmt: skip
    (maildir / "cur" / "1000.b-original:2,S").write_bytes(
        _raw(laura, "Export fails", "The CSV export fails.", sent, "first@n")
    )
    env = {
        "MAILPROC_DATABASE_URL": app.settings.database.url,
        "MAILPROC_PROCESSING_PARSE_WORKERS": "0",
        "MAILPROC_IDENTITY": json.dumps(IDENTITY),
    }
    result = CliRunner().invoke(cli, ["ingest", "--history", str(maildir)], env=env)
    assert result.exit_code == 0, result.output
    with transaction(app.sessions, commit=False) as session:
        stored = session.execute(select(Inbound.message_id).order_by(Inbound.id)).scalars().all()
        tickets = session.scalars(select(Ticket.id)).all()
        messages = session.scalars(select(MessageRecord.ticket_id)).all()
    assert len(tickets) == 1 and messages == [tickets[0]] * 2
    assert stored == ["first@n", "reply@n"]
    assert outbox(app) == []


def test_history_order_holds_across_storing_batches(db_url: str, clock: FixedClock) -> None:
    """Sorted over the whole run, not per batch: the newest mail read first is stored last."""
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "intake": {"batch_size": 2},
            "processing": {"parse_workers": 0},
        }
    )
    app = App(settings, clock)
    try:
        laura = "Laura Chen <laura@northwind-analytics.example>"
        times = [T0 - dt.timedelta(days=d) for d in (1, 5, 3, 9, 2)]
        raws = [_raw(laura, f"Q{n}", "Hello?", when, f"q{n}@n") for n, when in enumerate(times)]
        inputs = [RawInput(raw, Envelope("maildir")) for raw in (*raws, raws[2])]
        report = app.ingest(inputs, history=True)
        assert (report.stored, report.duplicates) == (5, 1)
        with transaction(app.sessions, commit=False) as session:
            stored = session.scalars(select(Inbound.received_at).order_by(Inbound.id)).all()
        assert stored == sorted(times)
    finally:
        app.close()

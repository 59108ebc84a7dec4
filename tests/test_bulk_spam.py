"""Bulk, list and spam mail (issue 14 part 5): stored and listed, no ticket, no acknowledgment,
no alert, no credit; ``mailproc inbound promote ID`` turns one into a ticket after all, timed
from the promotion, acknowledged in the customer's language."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from mailproc.app import App
from mailproc.cli import cli
from mailproc.clock import FixedClock
from mailproc.config import ConfigError, Settings, load_settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import materialize
from mailproc.processing.replay import ReplaySelection
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Credit, Inbound, Outbox, Ticket
from tests.conftest import T0

FILTERING = {
    "spam_headers": [
        r"X-Spam-Flag: ^yes\b",
        r"X-Spam-Status: ^yes\b",
        r"X-Barracuda-Spam-Status: ^yes",
    ],
    "bulk_headers": ["X-Mailer: ^mailchimp"],
}


@pytest.fixture
def app(
    db_url: str, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[App]:
    monkeypatch.chdir(tmp_path)
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}, "filtering": FILTERING}
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def mail(sender: str, subject: str, body: str, mid: str, *headers: str) -> bytes:
    head = [f"From: {sender}", "To: support@dataflow.com", f"Subject: {subject}",
            f"Message-ID: <{mid}>", *headers]  # fmt: skip
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


LAURA = "Laura Chen <laura@northwind-analytics.example>"
# a morning's mail as an upstream filter leaves it: newsletters, bulk, spam, one person
MORNING = [
    mail("DataWeekly <news@dataweekly.example>", "This week in data", "Read on.", "n1@dw",
         "List-Id: <weekly.dataweekly.example>",
         "List-Unsubscribe: <mailto:leave@dataweekly.example>"),
    mail("Offers <offers@shop.example>", "50% off", "Buy now.", "b1@shop", "Precedence: bulk"),
    mail("Vendor <hello@vendor.example>", "Webinar", "Join us.", "b2@vendor",
         "X-Mailer: MailChimp Mailer"),
    mail("Win <win@lottery.example>", "You won", "Claim it.", "s1@lottery", "X-Spam-Flag: YES"),
    mail(LAURA, "Invoice question", "Why was I charged twice?", "s2@northwind",
         "X-Spam-Status: Yes, score=6.1 required=5.0 tests=BAYES_99"),
    mail("Pills <p@pharma.example>", "Cheap", "Cheap pills.", "s3@pharma",
         "X-Barracuda-Spam-Status: Yes, score=9"),
    mail(LAURA, "Dashboard question", "How do I share a dashboard?", "h1@northwind",
         "X-Spam-Status: No, score=0.2 required=5.0", "X-Spam-Flag: NO"),
]  # fmt: skip


def run(app: App, *raws: bytes) -> None:
    app.ingest(RawInput(raw, Envelope("smtp")) for raw in raws)
    app.process()


def outbox(app: App) -> list[Outbox]:
    renderer = renderer_for(app.settings)
    with transaction(app.sessions) as session:
        rows = session.scalars(select(Outbox).order_by(Outbox.id)).all()
        for row in rows:
            if row.raw is None:
                materialize(session, row, renderer)
        session.flush()
        session.expunge_all()
        return list(rows)


def cli_run(app: App, *args: str) -> Result:
    env = {
        "MAILPROC_DATABASE_URL": app.settings.database.url,
        "MAILPROC_PROCESSING_PARSE_WORKERS": "0",
        "MAILPROC_FILTERING": json.dumps(FILTERING),
    }
    return CliRunner().invoke(cli, list(args), env=env)


def inbound_id(app: App, message_id: str) -> int:
    with transaction(app.sessions, commit=False) as session:
        found = session.scalar(select(Inbound.id).where(Inbound.message_id == message_id))
        assert found is not None
        return found


def test_bulk_and_spam_are_listed_and_answer_no_one(app: App, clock: FixedClock) -> None:
    run(app, *MORNING)
    with transaction(app.sessions, commit=False) as session:
        tickets = session.scalars(select(Ticket.subject)).all()
        credits = session.scalar(select(func.count()).select_from(Credit))
    assert tickets == ["Dashboard question"] and credits == 0
    sent = outbox(app)
    assert [(r.template, r.ticket_id is not None) for r in sent] == [
        ("acknowledgment", True),
        ("new_ticket_alert", True),
    ]  # the person's mail only
    clock.advance(dt.timedelta(hours=6))
    app.check(clock.now(), dry_run=False)  # nothing is due for mail that opened no ticket
    later = outbox(app)
    assert {r.ticket_id for r in later} == {sent[0].ticket_id}
    assert not any(b"lottery" in (r.raw or b"") or b"dataweekly" in (r.raw or b"") for r in later)
    spam = cli_run(app, "inbound", "list", "--kind", "spam")
    assert spam.exit_code == 0 and spam.output.endswith("3 message(s)\n")
    assert "Invoice question" in spam.output and "You won" in spam.output
    bulk = json.loads(cli_run(app, "inbound", "list", "--kind", "bulk", "--json").output)
    assert sorted(row["message_id"] for row in bulk) == ["b1@shop", "b2@vendor", "n1@dw"]
    assert any("List-Id" in row["kind_reason"] for row in bulk)
    assert any("X-Mailer" in row["kind_reason"] for row in bulk)


@pytest.mark.parametrize(
    ("sender", "locale", "words"),
    [
        (LAURA, "en", "Invoice question"),
        ("María <maria@gruposierra.example>", "es", "Pregunta sobre la factura"),
        ("Antoine <antoine@banqueriviere.example>", "fr", "Question de facturation"),
    ],
)
def test_promoted_spam_becomes_a_ticket_timed_from_the_promotion(
    app: App, clock: FixedClock, sender: str, locale: str, words: str
) -> None:
    run(app, mail(sender, words, f"{words}: we were charged twice.", "spam@x",
                  "X-Spam-Flag: YES"))  # fmt: skip
    assert outbox(app) == []
    clock.advance(dt.timedelta(days=2))  # found in the spam list two days later
    outcome = app.promote(inbound_id(app, "spam@x"))  # the CLI's `inbound promote` (below)
    assert (outcome.action, outcome.ticket_number) == ("created", 10001)
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.received_at == clock.now() and ticket.origin == "human"
        assert ticket.first_response_due is not None and ticket.first_response_due > clock.now()
        row = session.scalars(select(Inbound)).one()
        assert (row.kind, row.promoted_at) == ("human", clock.now())
    ack, alert = outbox(app)
    assert (ack.template, ack.locale) == ("acknowledgment", locale)
    assert alert.template == "new_ticket_alert"
    message = message_from_bytes(ack.raw or b"", policy=policy.default)
    assert "[Ticket #10001]" in message["Subject"]
    assert words in message.get_body(("plain",)).get_content()
    # a replay of the promoted mail keeps its one ticket and sends nothing more
    app.replay(app.replay_ids(ReplaySelection(everything=True)), dry_run=False)
    assert len(outbox(app)) == 2
    again = cli_run(app, "inbound", "promote", "1")
    assert again.exit_code == 65 and "only processed bulk or spam" in again.output


def test_only_kept_bulk_or_spam_can_be_promoted(app: App) -> None:
    run(app, MORNING[3])
    promoted = cli_run(app, "inbound", "promote", "1")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.startswith("inbound 1: created, ticket #10001")
    run(app, MORNING[-1])  # a person's mail
    refused = cli_run(app, "inbound", "promote", str(inbound_id(app, "h1@northwind")))
    assert refused.exit_code == 65 and "inbound 2 is processed human" in refused.output
    assert cli_run(app, "inbound", "promote", "999").exit_code == 65


def test_bulk_mail_on_a_ticket_is_noted_without_an_alert(app: App) -> None:
    run(app, MORNING[-1])
    before = len(outbox(app))
    reply = mail(LAURA, "Re: Dashboard question", "Auto digest", "r1@northwind",
                 "In-Reply-To: <h1@northwind>", "Precedence: list")  # fmt: skip
    run(app, reply)
    assert len(outbox(app)) == before
    refused = cli_run(app, "inbound", "promote", str(inbound_id(app, "r1@northwind")))
    assert refused.exit_code == 65 and "already on ticket #10001" in refused.output


def test_bad_header_rules_are_reported_at_start(tmp_path: Path) -> None:
    config = tmp_path / "mailproc.toml"
    config.write_text("[filtering]\nspam_headers = ['X-Spam-Flag ^yes', 'X-Spam: (']\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "filtering.spam_headers" in str(error.value)


def test_spam_detection_uses_the_configured_rules(db_url: str, clock: FixedClock) -> None:
    """Without the Barracuda rule, its mail is a person's (the rules are the settings')."""
    app = App(Settings.model_validate({"database": {"url": db_url},
                                       "processing": {"parse_workers": 0}}), clock)  # fmt: skip
    try:
        run(app, MORNING[5])
        with transaction(app.sessions, commit=False) as session:
            assert session.scalars(select(Inbound.kind)).one() == "human"
    finally:
        app.close()
    assert clock.now() == T0

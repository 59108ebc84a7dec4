"""Issue 14 parts 6 and 7 end to end: what an unknown sender is told, and one priority and the
§5.4 language policy whatever language the customer writes in.

Mail in, the outbox rendered as the deliverer renders it; each test reads the composed mail.
The scenario mails are those of tests/data/classify_scenarios.toml."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tomllib
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select

from mailproc.app import App
from mailproc.cli.root import cli
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.core.model import Address
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.outbound.build import build
from mailproc.outbound.compose import AutoSubmitted, compose, make_message_id
from mailproc.outbound.compose import Envelope as MailEnvelope
from mailproc.outbound.contexts import RefundConfirmationContext
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import materialize
from mailproc.outbound.samples import SAMPLES
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import MessageRecord, Outbox, Ticket
from mailproc.store.staged import staging
from mailproc.workflows.mail import load_requester_names

LANGUAGES = ("en", "es", "fr")
SCENARIOS = {
    s["name"]: s
    for s in tomllib.loads(
        (Path(__file__).parent / "data" / "classify_scenarios.toml").read_text("utf-8")
    )["scenario"]
}
SNOWFLAKE = SCENARIOS["Snowflake connection failing, no code"]
COMPROMISED = SCENARIOS["account compromised"]
JANE = '"Jane Doe" <customer2635@example.com>'
# Enterprise customers written to in their own language (§5.4): GB, MX, FR.
ENTERPRISE = {
    "en": "Oliver Hughes <oliver@thamesvalleyenergy.example>",
    "es": "María Fernanda López <maria@gruposierra.example>",
    "fr": "Antoine Moreau <antoine@banqueriviere.example>",
}
# What each language says (read in the composed mail, not produced by the code under test).
WORDS = {
    "en": {"hello": "Hello,", "jane": "Dear Jane Doe,", "P1": "4 hours"},
    "es": {"hello": "Hola:", "jane": "Hola, Jane Doe:", "P1": "4 horas"},
    "fr": {"hello": "Bonjour,", "jane": "Bonjour Jane Doe,", "P1": "4\xa0heures"},
}
PROSPECT = {
    "en": "Your address is not linked to a DataFlow customer account yet.",
    "es": "Su dirección todavía no está vinculada a ninguna cuenta de cliente de DataFlow.",
    "fr": "Votre adresse n'est encore liée à aucun compte client DataFlow.",
}
PLAN_WORDS = re.compile(r"\b(?:plan|Starter|Professional|Enterprise|forfait)\b")
# Monday, December 7, 2026, 14:00 UTC: working time in London and Paris, and UTC.
MONDAY = dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)


def make_app(db_url: str, **sections: Any) -> App:
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}, **sections}
    )
    application = App(settings, FixedClock(MONDAY))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    return application


@pytest.fixture
def app(db_url: str) -> Iterator[App]:
    application = make_app(db_url)
    try:
        yield application
    finally:
        application.close()


def send(app: App, sender: str, mail: dict[str, str], mid: str) -> None:
    head = [f"From: {sender}", "To: support@dataflow.com", f"Subject: {mail['subject']}"]
    head += [f"Message-ID: <{mid}>", "Content-Type: text/plain; charset=utf-8"]
    raw = ("\r\n".join(head) + "\r\n\r\n" + mail["body"] + "\r\n").encode()
    app.ingest([RawInput(raw, Envelope("smtp"))])
    app.process()


def outbox(app: App, template: str, number: int) -> list[Outbox]:
    renderer = renderer_for(app.settings)
    with transaction(app.sessions) as session:
        query = select(Outbox).join(Ticket, Ticket.id == Outbox.ticket_id)
        query = query.where(Outbox.template == template, Ticket.number == number)
        rows = list(session.scalars(query.order_by(Outbox.id)))
        for row in rows:
            materialize(session, row, renderer)
        session.expunge_all()
        return rows


def parsed(raw: bytes | None) -> EmailMessage:
    assert raw is not None
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text(raw: bytes | None) -> str:
    body = parsed(raw).get_body(("plain",))
    assert body is not None
    return re.sub(r"[ \r\n]+", " ", body.get_content())


def ticket(app: App, number: int) -> Ticket:
    with transaction(app.sessions, commit=False) as session:
        found = session.scalars(select(Ticket).where(Ticket.number == number)).one()
        session.expunge(found)
        return found


def in_locale(app: App, row: Outbox, locale: str) -> str:
    """The stored mail as the deliverer would write it in ``locale``."""
    built = build(
        row.id, row.template, locale, row.context, row.envelope, renderer_for(app.settings)
    )
    return text(built.raw)


# -- part 6: unknown senders ---------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_unknown_sender_is_greeted_by_name_and_not_told_about_a_plan(
    app: App, language: str
) -> None:
    """Jane Doe is in no customer account; whatever she writes in, §5.4 answers a
    non-customer in English: "Dear Jane Doe", no plan, wording for a prospect."""
    send(app, JANE, SNOWFLAKE[language], f"jane-{language}@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    assert ack.locale == "en"
    mail = parsed(ack.raw)
    assert mail["To"] == "Jane Doe <customer2635@example.com>"
    body = text(ack.raw)
    assert body.startswith("Dear Jane Doe, ")
    assert "customer2635" not in body
    assert PLAN_WORDS.search(body) is None, body
    assert PROSPECT["en"] in body
    assert "A support agent will respond within 1 day, by" in body  # Starter × P1: 24 hours
    found = ticket(app, 10001)
    assert found.unknown_customer and found.priority == "P1"
    assert found.sla["sla_row"] == "Starter/P1"
    assert "[sla] unknown_sender_plan" in found.sla["explanation"][0]
    assert found.translation_requested is (language != "en")


@pytest.mark.parametrize("locale", ["es", "fr"])
def test_the_unknown_sender_wording_in_spanish_and_french(app: App, locale: str) -> None:
    """The same acknowledgment, as it reads in Spanish and French: by name, no plan."""
    send(app, JANE, SNOWFLAKE[locale], f"jane-{locale}@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    body = in_locale(app, ack, locale)
    assert body.startswith(WORDS[locale]["jane"] + " ")
    assert PROSPECT[locale] in body
    assert "customer2635" not in body
    assert PLAN_WORDS.search(body) is None, body


@pytest.mark.parametrize("locale", LANGUAGES)
def test_a_sender_without_a_display_name_is_not_greeted_by_their_address(
    app: App, locale: str
) -> None:
    send(app, "customer2635@example.com", SNOWFLAKE["en"], f"bare-{locale}@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    assert parsed(ack.raw)["To"] == "customer2635@example.com"
    body = in_locale(app, ack, locale)
    assert body.startswith(WORDS[locale]["hello"] + " ")
    assert "customer2635" not in body


def test_the_unknown_sender_plan_is_a_setting(db_url: str) -> None:
    application = make_app(db_url, sla={"unknown_sender_plan": "Professional"})
    try:
        send(application, JANE, SNOWFLAKE["en"], "jane-pro@example.com")
        found = ticket(application, 10001)
        assert found.sla["sla_row"] == "Professional/P1"
        assert "timed on the Professional row" in found.sla["explanation"][0]
        [ack] = outbox(application, "acknowledgment", 10001)
        body = text(ack.raw)
        assert "A support agent will respond within 12 hours, by" in body
        assert PLAN_WORDS.search(body) is None
    finally:
        application.close()


def test_a_known_customer_is_still_told_their_plan(app: App) -> None:
    send(app, ENTERPRISE["en"], SNOWFLAKE["en"], "oliver@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    body = text(ack.raw)
    assert body.startswith("Dear Oliver Hughes, ")
    assert "as set out in your Enterprise plan" in body and PROSPECT["en"] not in body


@pytest.mark.parametrize("locale", LANGUAGES)
def test_a_refund_confirmation_to_an_unknown_sender_names_no_plan(locale: str) -> None:
    sample = SAMPLES["refund_confirmation"]
    assert isinstance(sample, RefundConfirmationContext)
    jane = dataclasses.replace(
        sample.customer, name="Jane Doe", email="customer2635@example.com", known=False
    )
    context = dataclasses.replace(sample, customer=jane)
    envelope = MailEnvelope(
        sender=Address("DataFlow Support", "support@dataflow.com"),
        to=(Address("Jane Doe", "customer2635@example.com"),),
        reply_to=Address("DataFlow Support", "support@dataflow.com"),
        message_id=make_message_id("ticket-12345/refund", "r1", "dataflow.com"),
        date=MONDAY,
        auto_submitted=AutoSubmitted.AUTO_GENERATED,
        ticket_number=12345,
    )
    mail = compose(renderer_for(Settings()).render(context, locale), envelope)
    body = text(mail.as_bytes())
    assert body.startswith(WORDS[locale]["jane"] + " ")
    assert PLAN_WORDS.search(body) is None, body
    known = compose(renderer_for(Settings()).render(sample, locale), envelope)
    assert PLAN_WORDS.search(text(known.as_bytes())) is not None  # a customer is told


AUTH = "Authentication-Results: mx.dataflow.com; dmarc=pass header.from=dataflow.com"
ALEX = {"name": "Alex Agent", "roles": ["agent"], "addresses": ["alex@dataflow.com"]}
# (From of the requester's first mail, the To of our mail to them as it goes out, its name)
REQUESTERS = [
    (JANE, b"To: Jane Doe <customer2635@example.com>", "Jane Doe"),
    (
        '"Doe, Jane" <customer2635@example.com>',
        b'To: "Doe, Jane" <customer2635@example.com>',
        "Doe, Jane",
    ),
    (
        "=?utf-8?q?Jos=C3=A9_Mu=C3=B1oz?= <customer2635@example.com>",
        b"To: =?utf-8?q?Jos=C3=A9_Mu=C3=B1oz?= <customer2635@example.com>",
        "José Muñoz",
    ),
    (
        '"Ana Gómez, CTO" <customer2635@example.com>',
        b"To: Ana =?utf-8?q?G=C3=B3mez=2C?= CTO <customer2635@example.com>",  # no bare comma
        "Ana Gómez, CTO",
    ),
    ("customer2635@example.com", b"To: customer2635@example.com", ""),
    # a known customer keeps the customer list's name, whatever their From says
    ("L. Chen <laura@northwind-analytics.example>", b"To: Laura Chen <laura@", "Laura Chen"),
]


def to_header(raw: bytes | None) -> bytes:
    """The To header line exactly as composed (unfolded)."""
    assert raw is not None
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    [line] = [line for line in head.split(b"\r\n") if line.lower().startswith(b"to:")]
    return line


@pytest.mark.parametrize(("sender", "header", "name"), REQUESTERS)
def test_every_mail_to_the_requester_carries_the_name_of_their_first_mail(
    db_url: str, sender: str, header: bytes, name: str
) -> None:
    """The acknowledgment, an agent's reply relayed to them and a notice sent on its own all
    have the same To: the display name checked and encoded (quoted, RFC 2047) alike."""
    app = make_app(db_url, identity={"trusted_authserv_id": "mx.dataflow.com", "agents": [ALEX]})
    try:
        send(app, sender, SNOWFLAKE["en"], "first@example.com")
        [alert] = outbox(app, "new_ticket_alert", 10001)
        follow = [f"In-Reply-To: <{alert.message_id}>", AUTH]
        for mid, body in (("r1", "We are looking into it."), ("r2", "#status resolved")):
            head = ["From: Alex Agent <alex@dataflow.com>", "To: support@dataflow.com"]
            head += ["Subject: Re: [Ticket #10001]", f"Message-ID: <{mid}@dataflow.com>", *follow]
            raw = ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()
            app.ingest([RawInput(raw, Envelope("smtp"))])
            app.process()
        [ack] = outbox(app, "acknowledgment", 10001)
        [reply] = outbox(app, "agent_reply", 10001)
        [resolved] = outbox(app, "resolved_notice", 10001)
        for row in (ack, reply, resolved):
            assert to_header(row.raw).startswith(header), (row.template, to_header(row.raw))
            [to] = parsed(row.raw)["To"].addresses
            assert to.display_name == name, row.template
        assert "We are looking into it." in text(reply.raw)
    finally:
        app.close()


# -- part 7: one priority in every language; the language policy is §5.4 --------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("scenario", [SNOWFLAKE, COMPROMISED], ids=["data source", "security"])
def test_the_same_mail_gets_the_same_priority_in_every_language(
    app: App, language: str, scenario: dict[str, Any]
) -> None:
    """Enterprise customers in GB, MX and FR write the same mail in their language: P1, and
    the acknowledgment, in their language, promises the Enterprise P1 response (4 hours)."""
    send(app, ENTERPRISE[language], scenario[language], f"p1-{language}@example.com")
    found = ticket(app, 10001)
    assert (found.priority, found.intent) == ("P1", scenario["intent"])
    [ack] = outbox(app, "acknowledgment", 10001)
    assert ack.locale == language and not found.translation_requested
    assert WORDS[language]["P1"] in text(ack.raw)
    triage = outbox(app, "triage_request", 10001)
    if scenario is COMPROMISED:  # a security report goes to the Support Manager at once
        assert found.needs_triage
        [request] = triage
        assert {r.address for r in request.recipients} == {"support-manager@dataflow.com"}
        assert "security report" in text(request.raw)
    else:
        assert triage == []


# Customers §5.4 does not write to in Spanish or French: Starter in France (1013), Professional
# in Spain (1031), Enterprise in Canada (1007); each prefers the language they write in.
OUTSIDE_POLICY = [
    ("Chloé Dubois <chloe@lumen-edu.example>", "fr", "Dear Chloé Dubois,", "French"),
    ("Lucía Ramírez <lucia@costaverde.example>", "es", "Dear Lucía Ramírez,", "Spanish"),
    ("Sophie Tremblay <sophie@maplegrovehealth.example>", "fr", "Dear Sophie Tremblay,", "French"),
]


@pytest.mark.parametrize(("sender", "language", "greeting", "name"), OUTSIDE_POLICY)
def test_a_customer_outside_the_policy_gets_english_and_a_translation_request(
    app: App, sender: str, language: str, greeting: str, name: str
) -> None:
    send(app, sender, SNOWFLAKE[language], f"outside-{language}@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    assert ack.locale == "en" and text(ack.raw).startswith(greeting + " ")
    [alert] = outbox(app, "new_ticket_alert", 10001)
    assert f"Translation requested: the customer writes in or prefers {name}" in text(alert.raw)
    found = ticket(app, 10001)
    assert found.translation_requested and found.priority == "P1"


def test_an_english_mail_from_a_customer_preferring_french_is_flagged_too(app: App) -> None:
    send(app, OUTSIDE_POLICY[0][0], SNOWFLAKE["en"], "chloe-en@example.com")
    [ack] = outbox(app, "acknowledgment", 10001)
    assert ack.locale == "en" and ticket(app, 10001).translation_requested
    [alert] = outbox(app, "new_ticket_alert", 10001)
    assert "writes in or prefers French" in text(alert.raw)


def test_the_preference_can_override_the_policy(db_url: str) -> None:
    """``[locales] preference_overrides_policy = true``: the behaviour before issue 14."""
    application = make_app(db_url, locales={"preference_overrides_policy": True})
    try:
        send(application, OUTSIDE_POLICY[0][0], SNOWFLAKE["fr"], "chloe-fr@example.com")
        [ack] = outbox(application, "acknowledgment", 10001)
        assert ack.locale == "fr" and text(ack.raw).startswith("Bonjour Chloé Dubois, ")
        assert not ticket(application, 10001).translation_requested
    finally:
        application.close()


def test_tickets_list_shows_the_translation_requests(
    app: App, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(app, OUTSIDE_POLICY[0][0], SNOWFLAKE["fr"], "chloe@example.com")  # 10001: English
    send(app, ENTERPRISE["fr"], SNOWFLAKE["fr"], "antoine@example.com")  # 10002: French
    send(app, ENTERPRISE["en"], SNOWFLAKE["en"], "oliver@example.com")  # 10003: English
    for name in list(os.environ):
        if name.startswith("MAILPROC_") and name != "MAILPROC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["tickets", "list", "--translation-requested", "--json"],
        env={"MAILPROC_DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["number"], r["locale"], r["translation_requested"]) for r in rows] == [
        (10001, "en", True)
    ]
    everything = CliRunner().invoke(
        cli, ["tickets", "list", "--json"], env={"MAILPROC_DATABASE_URL": db_url}
    )
    assert len(json.loads(everything.output)) == 3


def test_a_batch_reads_its_requesters_names_in_one_query_as_one_ticket_would(
    db_url: str,
) -> None:
    """Names of a whole batch come from one query (``load_requester_names``), with the same
    result as each ticket's own lookup: the first named mail from the requester's address (in
    any case), never another sender's name."""
    app = make_app(db_url)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    try:
        mails = [
            ("customer3001@example.com", SNOWFLAKE["en"], "n1@example.com"),
            ('"Ana Ruiz" <customer3002@example.com>', SNOWFLAKE["es"], "n2@example.com"),
            ("<customer3003@example.com>", SNOWFLAKE["fr"], "n3@example.com"),
        ]
        for sender, mail, mid in mails:
            send(app, sender, mail, mid)
        later = [  # the requesters write again, with a name now; a stranger on #10003
            ('"Bo Berg" <Customer3001@Example.com>', 10001),
            ('"Eve Other" <someone@example.net>', 10003),
        ]
        with transaction(app.sessions) as session:
            for index, (sender, number) in enumerate(later):
                found = session.scalars(select(Ticket).where(Ticket.number == number)).one()
                record = MessageRecord(
                    ticket_id=found.id,
                    direction="in",
                    message_id=f"later-{index}@example.com",
                    from_address=sender.split("<")[1].rstrip(">"),
                    from_name=sender.split('"')[1],
                    subject="again",
                    created_at=MONDAY,
                )
                session.add(record)
        notifier = app.notifier(app.reply_scheme())
        with transaction(app.sessions, commit=False) as session:
            tickets = list(session.scalars(select(Ticket).order_by(Ticket.number)))
            one_by_one = [notifier.customer_info(t, None) for t in tickets]
            event.listen(app.engine, "before_cursor_execute", count)
            with staging(session):
                load_requester_names(session, tickets)
                batch = [notifier.customer_info(t, None) for t in tickets]
            event.remove(app.engine, "before_cursor_execute", count)
        assert [(i.name, i.named) for i in one_by_one] == [
            ("Bo Berg", True),
            ("Ana Ruiz", True),
            ("customer3003@example.com", False),
        ]
        assert batch == one_by_one
        assert len([s for s in statements if "from_name" in s]) == 1
    finally:
        app.close()

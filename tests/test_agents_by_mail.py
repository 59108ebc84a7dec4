"""Issue 15: agents run their day by email. Mail in, the composed mail out (en, es, fr)."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_workflows import AGENTS, AUTH, agent_reply, detail, mails, send, to

from mailproc.app import App
from mailproc.cli.root import cli
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.processing.worker import release
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Outbox

CUSTOMERS = {  # (From, the language their mail goes out in)
    "en": "Laura Chen <laura@northwind-analytics.example>",
    "es": "María Fernanda López <maria@gruposierra.example>",
    "fr": "Antoine Moreau <antoine@banqueriviere.example>",
}
ALEX = "Alex Agent <alex@dataflow.com>"


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS},
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def composed(row: Outbox) -> EmailMessage:
    assert row.raw is not None
    message = email.message_from_bytes(row.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(row: Outbox) -> str:
    part = composed(row).get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def run_cli(app: App, *args: str) -> str:
    env = {"MAILPROC_DATABASE_URL": app.settings.database.url}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def open_ticket(app: App, sender: str, mid: str, body: str = "Invalid credentials.") -> None:
    send(app, sender, "DS-1001 on our warehouse", body, mid=mid)


def customer_reply(app: App, sender: str, number: int, body: str, *, mid: str) -> None:
    """The customer answers our acknowledgment (threads by In-Reply-To)."""
    [ack] = mails(app, "acknowledgment", number)
    send(app, sender, f"Re: [Ticket #{number}]", body, f"In-Reply-To: <{ack.message_id}>", mid=mid)


# -- 1. agents hear about everything that needs them ---------------------------------------------


def test_a_customer_reply_goes_to_the_agents_then_to_the_assignee(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    customer_reply(
        app,
        CUSTOMERS["en"],
        10001,
        "It still fails with DS-1001.\n\nOn Monday, support wrote:\n> Your ticket was received",
        mid="second@northwind.example",
    )
    [alert] = mails(app, "customer_reply_alert", 10001)
    assert to(alert) == {"agents@dataflow.com"}
    [new_alert] = mails(app, "new_ticket_alert", 10001)
    message = composed(alert)
    assert message["In-Reply-To"] == f"<{new_alert.message_id}>"  # threaded on the ticket
    assert message["Subject"] == "[Ticket #10001] Customer replied: DS-1001 on our warehouse"
    text = text_of(alert)
    assert "> It still fails with DS-1001." in text
    assert "Your ticket was received" not in text  # quotes stripped
    assert "Status: new" in text
    # Professional P1: 12 hours from the start of business hours (the default `business_start`
    # clock): the mail came at 05:00 on Friday in New York, so 09:00 + 12 h = 21:00 Friday
    assert "SLA: 16 hours left, due by Friday, November 27, 2026, 9:00\u202fPM" in text

    agent_reply(app, ALEX, 10001, "#assign Marta Manager", mid="assign@dataflow.com")
    assert detail(app, 10001)["assignee"] == "Marta Manager"
    customer_reply(app, CUSTOMERS["en"], 10001, "Any news?", mid="third@northwind.example")
    alerts = mails(app, "customer_reply_alert", 10001)
    assert len(alerts) == 2 and to(alerts[1]) == {"marta@dataflow.com"}
    assert "Assigned to: Marta Manager" in text_of(alerts[1])


def test_a_reply_that_reopens_a_resolved_ticket_tells_the_agents(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(app, ALEX, 10001, "#status resolved", mid="resolve@dataflow.com")
    customer_reply(app, CUSTOMERS["en"], 10001, "It is back again.", mid="back@northwind.example")
    assert detail(app, 10001)["status"] == "open"
    [alert] = mails(app, "customer_reply_alert", 10001)
    assert composed(alert)["Subject"].endswith("Reopened by the customer: DS-1001 on our warehouse")
    assert "The customer replied to resolved ticket #10001 and it is open again." in text_of(alert)


# -- 2. commands: clear answers, one mail -------------------------------------------------------


def test_several_invalid_commands_get_one_error_mail_listing_every_problem(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(
        app,
        ALEX,
        10001,
        "#priority P7\n#stauts resolved\n#assign Nobody Known\n\nHello Laura, fixed.",
        mid="bad@dataflow.com",
    )
    [error] = mails(app, "command_error", 10001)
    assert to(error) == {"alex@dataflow.com"}
    text = text_of(error)
    for line in ("> #priority P7", "> #stauts resolved", "> #assign Nobody Known"):
        assert line in text
    assert "Problem: unknown priority 'P7'" in text
    assert "Problem: no configured agent is named 'Nobody Known'" in text
    assert "nothing was sent to the customer" in text
    assert error.key == "cmd-error:10001:" + error.key.rsplit(":", 1)[1]  # one per inbound mail
    assert mails(app, "agent_reply", 10001) == []
    ticket = detail(app, 10001)
    assert ticket["priority"] == "P1" and ticket["assignee"] is None


def test_a_command_for_a_closed_ticket_is_refused_and_changes_nothing(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(app, ALEX, 10001, "#status closed", mid="close@dataflow.com")
    agent_reply(app, ALEX, 10001, "#priority P0", mid="late@dataflow.com")
    [error] = mails(app, "command_error", 10001)
    assert "ticket #10001 is closed: nothing can be changed" in text_of(error)
    assert detail(app, 10001)["priority"] == "P1"


def test_commands_from_a_mailbox_that_is_not_an_agent_get_one_reply(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(  # Marta's address, but the mail did not pass authentication
        app,
        "Marta Manager <marta@dataflow.com>",
        10001,
        "#status resolved\n#priority P3\n\nDone, closing.",
        authenticated=False,
        mid="forged@evil.example",
    )
    [refusal] = mails(app, "command_error", 10001)
    assert to(refusal) == {"marta@dataflow.com"}
    text = text_of(refusal)
    assert "> #status resolved" in text and "> #priority P3" in text
    assert "Commands are taken only from the agents' configured addresses." in text
    ticket = detail(app, 10001)
    assert ticket["status"] == "new" and ticket["priority"] == "P1"
    assert mails(app, "customer_reply_alert", 10001) == []  # not appended as customer text
    assert mails(app, "agent_reply", 10001) == []
    kinds = [e["kind"] for e in ticket["events"]]
    assert "agent.commands_not_from_agent" in kinds and "message.received" not in kinds[3:]


def test_the_customers_own_hash_lines_are_plain_text(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    customer_reply(
        app, CUSTOMERS["en"], 10001, "#status resolved\nplease, it works", mid="c@northwind.example"
    )
    assert mails(app, "command_error", 10001) == []
    assert detail(app, 10001)["status"] == "new"
    [alert] = mails(app, "customer_reply_alert", 10001)
    assert "> #status resolved" in text_of(alert)


def test_assign_shows_in_tickets_list_and_show(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(app, ALEX, 10001, "#assign marta@dataflow.com", mid="assign@dataflow.com")
    listed = run_cli(app, "tickets", "list")
    [header, line] = listed.splitlines()[:2]
    assert "ASSIGNEE" in header and "Marta Manager" in line
    assert "Assigned to: Marta Manager" in run_cli(app, "tickets", "show", "10001")
    [row] = json.loads(run_cli(app, "tickets", "list", "--json"))
    assert row["assignee"] == "Marta Manager"
    assert json.loads(run_cli(app, "tickets", "show", "10001", "--json"))["assignee"] == (
        "Marta Manager"
    )
    agent_reply(app, ALEX, 10001, "#escalate engineering", mid="escalate@dataflow.com")
    [escalation] = mails(app, "escalation_alert", 10001)  # and in every alert of the ticket
    assert "Assigned to: Marta Manager" in text_of(escalation)


# -- 3. what the customer receives from an agent ------------------------------------------------

RESOLVED = {
    "en": "Good news: your ticket #10001 about DS-1001 (Invalid credentials) has been resolved.",
    "es": "Buenas noticias: su ticket #10001 sobre DS-1001",
    "fr": "Bonne nouvelle : votre ticket #10001 concernant DS-1001",
}
SIGN_OFF = {"en": "Best regards,", "es": "Saludos cordiales,", "fr": "Cordialement,"}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_an_agent_reply_comes_from_the_agent_and_carries_the_notice_in_one_mail(
    app: App, locale: str
) -> None:
    open_ticket(app, CUSTOMERS[locale], f"first-{locale}@customer.example")
    agent_reply(
        app,
        ALEX,
        10001,
        f"#status resolved\n\nWe reset the credentials.\n\n{SIGN_OFF[locale]}\nAlex",
        mid=f"fixed-{locale}@dataflow.com",
    )
    assert mails(app, "resolved_notice", 10001) == []  # one mail, not two
    [reply] = mails(app, "agent_reply", 10001)
    assert reply.locale == locale
    message = composed(reply)
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Alex Agent via DataFlow Support",
        "support@dataflow.com",
    )
    assert message["Auto-Submitted"] is None and message["X-Auto-Response-Suppress"] is None
    assert reply.auto_submitted == "no"
    text = text_of(reply)
    assert "We reset the credentials." in text
    assert RESOLVED[locale].replace(" :", "\u00a0:") in text
    assert text.count(SIGN_OFF[locale]) == 1  # kept, never doubled
    assert text.count("Alex Agent") == 1 and "\nAlex\n" not in text
    assert detail(app, 10001)["status"] == "resolved"


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_without_a_sign_off_the_usual_closing_is_added_once(app: App, locale: str) -> None:
    open_ticket(app, CUSTOMERS[locale], f"first-{locale}@customer.example")
    agent_reply(app, ALEX, 10001, "Could you send the log?", mid=f"ask-{locale}@dataflow.com")
    text = text_of(mails(app, "agent_reply", 10001)[0])
    closing = {"en": "Best regards,", "es": "Saludos cordiales,", "fr": "Cordialement,"}[locale]
    assert text.count(closing) == 1
    assert text.index("Could you send the log?") < text.index(closing) < text.index("Alex Agent")


def test_a_command_without_text_still_sends_its_own_notice(app: App) -> None:
    open_ticket(app, CUSTOMERS["es"], "first@gruposierra.example")
    agent_reply(app, ALEX, 10001, "#status resolved", mid="resolve@dataflow.com")
    [notice] = mails(app, "resolved_notice", 10001)
    assert notice.locale == "es" and mails(app, "agent_reply", 10001) == []
    assert "Buenas noticias" in text_of(notice)
    assert composed(notice)["Auto-Submitted"] == "auto-generated"


def test_an_escalation_with_text_is_one_mail_to_the_customer(app: App) -> None:
    open_ticket(app, CUSTOMERS["fr"], "first@banqueriviere.example")
    agent_reply(
        app,
        ALEX,
        10001,
        "#escalate engineering certificate issue\n\nNous regardons cela de près.",
        mid="escalate@dataflow.com",
    )
    assert mails(app, "escalation_notice", 10001) == []
    [reply] = mails(app, "agent_reply", 10001)
    text = text_of(reply)
    assert "Nous regardons cela de près." in text
    assert "à notre équipe d'ingénierie" in text
    assert len(mails(app, "escalation_alert", 10001)) == 1  # the team is still alerted


def test_agent_from_name_is_configurable(db_url: str, clock: FixedClock) -> None:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "support": {"agent_from": "{agent} ({support})"},
            "identity": {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS},
        }
    )
    application = App(settings, clock)
    try:
        open_ticket(application, "Someone <someone@example.org>", "x@example.org")
        agent_reply(application, ALEX, 10001, "Hello.", mid="hello@dataflow.com")
        [reply] = mails(application, "agent_reply", 10001)
        [sender] = composed(reply)["From"].addresses
        assert sender.display_name == "Alex Agent (DataFlow Support)"
    finally:
        application.close()


def _many_attachments(sender: str, count: int, mid: str) -> bytes:
    parts = "".join(
        f"--b\r\nContent-Type: text/plain; name=log{n}.txt\r\n"
        f"Content-Disposition: attachment; filename=log{n}.txt\r\n\r\nline {n}\r\n"
        for n in range(count)
    )
    return (
        f"From: {sender}\r\nTo: support@dataflow.com\r\nSubject: Logs of the failures\r\n"
        f"Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\nHere are the logs.\r\n{parts}--b--\r\n"
    ).encode()


UNREADABLE = {
    "en": "It has more attachments or parts than we can accept.",
    "es": "Contiene más archivos adjuntos o partes de las que podemos aceptar.",
    "fr": "Il contient plus de pièces jointes ou de parties que nous ne pouvons en accepter.",
}


@pytest.mark.parametrize("locale", ["en", "es", "fr"])
def test_a_known_customers_quarantined_mail_alerts_the_agents_and_tells_the_customer_once(
    app: App, locale: str
) -> None:
    raw = _many_attachments(CUSTOMERS[locale], 300, f"logs-{locale}@customer.example")
    app.ingest([RawInput(raw, Envelope("smtp", mail_from="someone@customer.example"))])
    [outcome] = app.process().outcomes
    assert outcome.action == "quarantined"
    [alert] = mails(app, "quarantine_alert")
    assert to(alert) == {"agents@dataflow.com"}
    alert_text = text_of(alert)
    assert "MIME parts; the limit is 250" in alert_text
    assert f"mailproc quarantine release {outcome.inbound_id}" in alert_text
    assert "The customer was told" in alert_text
    [notice] = mails(app, "mail_unreadable")
    assert notice.locale == locale and to(notice) == {CUSTOMERS[locale].split("<")[1][:-1]}
    message = composed(notice)
    assert message["In-Reply-To"] == f"<logs-{locale}@customer.example>"
    assert "Logs of the failures" in message["Subject"]
    assert UNREADABLE[locale] in text_of(notice)
    with transaction(app.sessions) as session:  # released without a fix: quarantined again
        release(session, [outcome.inbound_id], app.clock.now())
    app.process()
    assert len(mails(app, "mail_unreadable")) == 1 and len(mails(app, "quarantine_alert")) == 1


def test_an_unknown_senders_quarantined_mail_gets_no_answer(app: App) -> None:
    raw = _many_attachments("Stranger <who@nowhere.example>", 300, "x@nowhere.example")
    app.ingest([RawInput(raw, Envelope("smtp", mail_from="who@nowhere.example"))])
    [outcome] = app.process().outcomes
    assert outcome.action == "quarantined"
    assert mails(app, "mail_unreadable") == [] and mails(app, "quarantine_alert") == []


def test_a_quarantined_auto_reply_alerts_the_agents_but_is_not_answered(app: App) -> None:
    raw = _many_attachments(CUSTOMERS["en"], 300, "auto@northwind.example").replace(
        b"MIME-Version", b"Auto-Submitted: auto-replied\r\nMIME-Version", 1
    )
    app.ingest([RawInput(raw, Envelope("smtp", mail_from="laura@northwind-analytics.example"))])
    app.process()
    assert mails(app, "mail_unreadable") == []
    [alert] = mails(app, "quarantine_alert")
    assert "The customer was told" not in text_of(alert)


def test_a_reply_token_from_a_stranger_is_held_and_the_assignee_told(app: App) -> None:
    open_ticket(app, CUSTOMERS["en"], "first@northwind.example")
    agent_reply(app, ALEX, 10001, "#assign Marta Manager", mid="assign@dataflow.com")
    [ack] = mails(app, "acknowledgment", 10001)
    token_address = composed(ack)["Reply-To"].addresses[0].addr_spec
    raw = (
        "From: Mallory <mallory@elsewhere.example>\r\n"
        f"To: {token_address}\r\nSubject: Re: [Ticket #10001] DS-1001\r\n"
        "Message-ID: <stranger@elsewhere.example>\r\n\r\n"
        "#status resolved\r\nPlease close it and send me the invoices.\r\n"
    ).encode()
    app.ingest([RawInput(raw, Envelope("smtp", rcpt_to=(token_address,)))])
    [outcome] = app.process().outcomes
    assert outcome.action == "held" and outcome.ticket_number == 10001
    ticket = detail(app, 10001)
    inbound = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert ticket["status"] == "new" and len(inbound) == 2  # not appended (and Alex's)
    assert "inbound.held" in [e["kind"] for e in ticket["events"]]
    [alert] = mails(app, "held_mail_alert", 10001)
    assert to(alert) == {"marta@dataflow.com"}
    text = text_of(alert)
    assert "came from mallory@elsewhere.example" in text
    assert f"mailproc quarantine release {outcome.inbound_id}" in text
    assert "> Please close it and send me the invoices." in text
    assert mails(app, "customer_reply_alert", 10001) == []
    assert mails(app, "command_error", 10001) == []
    # an admin who finds it belongs releases it: then it is added as usual, as a reply
    released = run_cli(app, "quarantine", "release", str(outcome.inbound_id))
    assert "held 0" in released
    ticket = detail(app, 10001)
    inbound = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert len(inbound) == 3 and ticket["status"] == "new"
    assert len(mails(app, "command_error", 10001)) == 1  # its command lines are refused


def test_a_participant_replying_by_token_is_not_held(app: App) -> None:
    send(
        app,
        CUSTOMERS["en"],
        "DS-1001 on our warehouse",
        "Invalid credentials.",
        "Cc: Sam <sam@partner.example>",
        mid="first@northwind.example",
    )
    [ack] = mails(app, "acknowledgment", 10001)
    token_address = composed(ack)["Reply-To"].addresses[0].addr_spec
    raw = (
        f"From: Sam <sam@partner.example>\r\nTo: {token_address}\r\n"
        "Subject: Re: [Ticket #10001]\r\nMessage-ID: <sam@partner.example>\r\n\r\nSame here.\r\n"
    ).encode()
    app.ingest([RawInput(raw, Envelope("smtp", rcpt_to=(token_address,)))])
    [outcome] = app.process().outcomes
    assert outcome.action == "appended"
    assert len(mails(app, "customer_reply_alert", 10001)) == 1


def test_the_customers_cc_is_copied_on_the_acknowledgment_and_agent_replies(app: App) -> None:
    send(
        app,
        CUSTOMERS["es"],
        "DS-1001 en el almacén",
        "Credenciales no válidas.",
        "Cc: Pedro <pedro@gruposierra.example>, support@dataflow.com",
        mid="first@gruposierra.example",
    )
    [ack] = mails(app, "acknowledgment", 10001)
    assert to(ack) == {"maria@gruposierra.example", "pedro@gruposierra.example"}
    assert [a.addr_spec for a in composed(ack)["Cc"].addresses] == ["pedro@gruposierra.example"]
    agent_reply(app, ALEX, 10001, "Lo revisamos.", mid="answer@dataflow.com")
    [reply] = mails(app, "agent_reply", 10001)
    assert to(reply) == {"maria@gruposierra.example", "pedro@gruposierra.example"}
    assert composed(reply)["Cc"].addresses[0].addr_spec == "pedro@gruposierra.example"
    assert mails(app, "resolved_notice", 10001) == []
    # Pedro's reply threads on the ticket (he is a participant) and reaches the agents
    send(
        app,
        "Pedro <pedro@gruposierra.example>",
        "Re: [Ticket #10001] DS-1001 en el almacén",
        "Sigue fallando.",
        f"In-Reply-To: <{reply.message_id}>",
        mid="pedro@gruposierra.example",
    )
    assert len(mails(app, "customer_reply_alert", 10001)) == 1


def test_copy_cc_can_be_turned_off(db_url: str, clock: FixedClock) -> None:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "threading": {"copy_cc": False},
        }
    )
    application = App(settings, clock)
    try:
        send(
            application,
            "Someone <someone@example.org>",
            "Help",
            "Please.",
            "Cc: other@example.org",
            mid="x@example.org",
        )
        [ack] = mails(application, "acknowledgment", 10001)
        assert to(ack) == {"someone@example.org"} and composed(ack)["Cc"] is None
    finally:
        application.close()


def _with_files(
    sender: str, subject: str, text: str, files: dict[str, bytes], *headers: str, mid: str
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@dataflow.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{mid}>"
    for header in headers:
        name, _, value = header.partition(": ")
        message[name] = value
    message.set_content(text)
    for filename, data in files.items():
        message.add_attachment(data, "application", "octet-stream", filename=filename)
    return message.as_bytes()


def _files_of(row: Outbox) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_content()
        for part in composed(row).iter_attachments()
        if part.get_filename()
    }


def _app_with(db_url: str, clock: FixedClock, **sections: dict) -> App:
    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "processing": {"parse_workers": 0},
            "identity": {"trusted_authserv_id": "mx.dataflow.com", "agents": AGENTS},
            **sections,
        }
    )
    application = App(settings, clock)
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    return application


def test_attachments_reach_the_agents_within_the_limit_and_the_customer_from_the_agent(
    db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    app = _app_with(db_url, clock, notify={"max_attachment_bytes": 1000})
    try:
        raw = _with_files(
            CUSTOMERS["fr"],
            "DS-1001 sur notre entrepôt",
            "Les journaux sont joints.",
            {"small.log": b"a" * 600, "big.log": b"b" * 600, "tiny.txt": b"c" * 300},
            mid="logs@banqueriviere.example",
        )
        app.ingest([RawInput(raw, Envelope("smtp"))])
        app.process()
        [alert] = mails(app, "new_ticket_alert", 10001)
        assert _files_of(alert) == {"small.log": b"a" * 600, "tiny.txt": b"c" * 300}
        text = text_of(alert)
        assert "Not attached, over the size limit: big.log." in text
        assert "mailproc attachments get 10001 --out DIR" in text

        [ack] = mails(app, "acknowledgment", 10001)  # the customer answers with one more file
        raw = _with_files(
            CUSTOMERS["fr"],
            "Re: [Ticket #10001]",
            "Et la capture.",
            {"screen.png": b"\x89PNG" + b"x" * 100},
            f"In-Reply-To: <{ack.message_id}>",
            mid="more@banqueriviere.example",
        )
        app.ingest([RawInput(raw, Envelope("smtp"))])
        app.process()
        [reply_alert] = mails(app, "customer_reply_alert", 10001)
        assert _files_of(reply_alert) == {"screen.png": b"\x89PNG" + b"x" * 100}

        raw = _with_files(
            ALEX,
            "Re: [Ticket #10001]",
            "Voici le correctif.",
            {"fix.sql": b"UPDATE x SET y = 1;"},
            f"In-Reply-To: <{alert.message_id}>",
            AUTH,
            mid="fix@dataflow.com",
        )
        app.ingest([RawInput(raw, Envelope("smtp"))])
        app.process()
        [relayed] = mails(app, "agent_reply", 10001)
        assert relayed.locale == "fr"
        assert _files_of(relayed) == {"fix.sql": b"UPDATE x SET y = 1;"}
        assert "Voici le correctif." in text_of(relayed)

        out = tmp_path / "out"
        env = {"MAILPROC_DATABASE_URL": db_url}
        got = CliRunner().invoke(cli, ["attachments", "get", "10001", "--out", str(out)], env=env)
        assert got.exit_code == 0, got.output
        assert sorted(p.name for p in out.iterdir()) == [
            "big.log",
            "fix.sql",
            "screen.png",
            "small.log",
            "tiny.txt",
        ]
        assert (out / "big.log").read_bytes() == b"b" * 600
        again = CliRunner().invoke(
            cli, ["attachments", "get", "10001", "big.log", "--out", str(out)], env=env
        )
        assert again.exit_code == 0 and (out / "big-1.log").read_bytes() == b"b" * 600
        missing = CliRunner().invoke(cli, ["attachments", "get", "10001", "nope.txt"], env=env)
        assert missing.exit_code == 65 and "stored: small.log, big.log" in missing.output
        unknown = CliRunner().invoke(cli, ["attachments", "get", "99999"], env=env)
        assert unknown.exit_code == 65
    finally:
        app.close()

"""Auto-reply, bulk, bounce and own-mail detection; the per-sender auto-reply budget."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mailproc.core.detect import (
    AutoReplyBudget,
    DetectPolicy,
    MailKind,
    check_auto_reply_budget,
    detect,
    for_known_sender,
)
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import parse_message
from mailproc.core.rawmail import strip_mbox_from_line
from mailproc.core.tokens import ReplyAddressScheme, reply_address

SCHEME = ReplyAddressScheme("support", "help.acme.example", (b"detect-tests-secret-000",))
POLICY = DetectPolicy(
    own_addresses=frozenset({"support@help.acme.example", "noreply@acme.example"}),
    message_id_domains=frozenset({"mail.help.acme.example"}),
    reply_scheme=SCHEME,
)
NOW = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)


def parse(raw: str) -> ParsedMessage:
    return parse_message(raw.replace("\n", "\r\n").encode(), IntakeLimits())


def simple(subject: str, *headers: str, sender: str = "Ana Gómez <ana@globex.example>") -> str:
    head = "\n".join([f"From: {sender}", "To: support@help.acme.example", f"Subject: {subject}"])
    extra = "".join(f"{h}\n" for h in headers)
    return f"{head}\n{extra}Message-ID: <abc123@globex.example>\n\nHola, el panel no carga.\n"


def kind(raw: str, envelope_sender: str | None = None) -> MailKind:
    return detect(parse(raw), POLICY, envelope_sender).kind


def test_a_person_writing_is_human_and_may_get_a_reply() -> None:
    detection = detect(parse(simple("El panel no carga desde esta mañana")), POLICY)
    assert detection.kind is MailKind.HUMAN
    assert detection.may_auto_reply


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated (vacation)",
        "X-Autoreply: yes",
        "X-Autorespond: On vacation",
        "X-Auto-Response-Suppress: All",
        "Precedence: auto_reply",
    ],
)
def test_auto_reply_headers(header: str) -> None:
    detection = detect(parse(simple("Re: [Ticket #12] Panel", header)), POLICY)
    assert detection.kind is MailKind.AUTO_REPLY
    assert not detection.may_auto_reply


def test_auto_submitted_no_is_a_person() -> None:
    assert kind(simple("Pregunta", "Auto-Submitted: no")) is MailKind.HUMAN


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Re: [Ticket #12] Dashboard down",
        "Automatic reply: [Ticket #12] Dashboard down",
        "Respuesta automática: [Ticket #12] El panel no carga",
        "Fuera de la oficina hasta el lunes",
        "Ana Gómez está fuera de la oficina",
        "Réponse automatique : [Ticket #12] Le tableau de bord est en panne",
        "Absent du bureau jusqu'au 10 mars",
        "Luc Martin est absent du bureau",
        "Automatische Antwort: [Ticket #12] Dashboard",
        "Abwesenheitsnotiz: Dashboard",
    ],
)
def test_out_of_office_subjects_in_four_languages(subject: str) -> None:
    assert kind(simple(subject)) is MailKind.AUTO_REPLY


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Out of office replies are flooding ticket 12",
        "Absence of invoice for March",
        "Re: Delivery failed for order 4411",
        "Fwd: Automatic reply settings",
        "Vacation policy question",
    ],
)
def test_people_writing_about_such_things_stay_human(subject: str) -> None:
    assert kind(simple(subject)) is MailKind.HUMAN


def test_mailing_list_mail_is_bulk() -> None:
    raw = simple(
        "[dev-list] Release 2.4 notes",
        "List-Id: Developers <dev.lists.globex.example>",
        "List-Unsubscribe: <mailto:dev-unsubscribe@lists.globex.example>",
        "Precedence: list",
    )
    detection = detect(parse(raw), POLICY)
    assert detection.kind is MailKind.BULK
    assert "List-Id header" in detection.reasons
    assert kind(simple("Newsletter", "Precedence: bulk")) is MailKind.BULK


def test_no_reply_senders_are_bulk() -> None:
    notice = simple("Your invoice is ready", sender="Globex Billing <no-reply@globex.example>")
    assert kind(notice) is MailKind.BULK
    assert kind(simple("Hola", sender="noreply.ana@globex.example")) is MailKind.HUMAN


def test_mail_from_our_own_address_is_our_own_mail() -> None:
    own = simple("[Ticket #12] We received your request", sender="support@help.acme.example")
    assert kind(own) is MailKind.OWN_MAIL
    token_from = simple("Re: [Ticket #12]", sender=reply_address(SCHEME, 12))
    assert kind(token_from) is MailKind.OWN_MAIL


def test_our_message_id_domain_is_our_own_mail() -> None:
    raw = simple("Re: hello").replace("abc123@globex.example", "k2j3h4.12@mail.help.acme.example")
    detection = detect(parse(raw), POLICY)
    assert detection.kind is MailKind.OWN_MAIL
    assert "Message-ID is from our domain mail.help.acme.example" in detection.reasons


def test_forged_mailproc_headers_do_not_make_mail_ours() -> None:
    raw = simple("Hola", "X-Mailproc-Ticket: 12", "X-Mailproc-Outbound: yes")
    assert kind(raw) is MailKind.HUMAN


def test_null_envelope_sender_without_other_signals_is_automatic() -> None:
    assert kind(simple("Hola"), envelope_sender="") is MailKind.AUTO_REPLY
    assert kind(simple("Hola", "Return-Path: <>")) is MailKind.AUTO_REPLY
    assert kind(simple("Hola"), envelope_sender="ana@globex.example") is MailKind.HUMAN


def dsn(status: str, action: str, subject: str) -> str:
    ack_id = "ack.7f3a9c.12@mail.help.acme.example"
    token = reply_address(SCHEME, 12)
    return f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.globex.example>
To: {token}
Subject: {subject}
Message-ID: <20250303090001.AB12@mx.globex.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.globex.example.
I'm sorry to have to inform you that your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.globex.example

Final-Recipient: rfc822; old.address@globex.example
Original-Recipient: rfc822;old.address@globex.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 5.1.1 user unknown

--b1
Content-Type: message/rfc822

From: Acme Support <support@help.acme.example>
Reply-To: Acme Support <{token}>
To: old.address@globex.example
Subject: [Ticket #12] We received your request
Message-ID: <{ack_id}>
Auto-Submitted: auto-replied

We received your request.

--b1--
"""


def test_dsn_for_our_acknowledgment_points_back_at_the_ticket() -> None:
    detection = detect(parse(dsn("5.1.1", "failed", "Undelivered Mail Returned to Sender")), POLICY)
    assert detection.kind is MailKind.BOUNCE
    assert not detection.may_auto_reply
    bounce = detection.bounce
    assert bounce is not None
    assert bounce.permanent == ("old.address@globex.example",)
    assert bounce.original_message_id == "ack.7f3a9c.12@mail.help.acme.example"
    assert [(t.ticket, t.valid) for t in bounce.reply_tokens] == [(12, True)]


def test_delayed_dsn_is_a_temporary_failure() -> None:
    raw = dsn("4.4.1", "delayed", "Delivery Status Notification (Delay)")
    detection = detect(parse(raw), POLICY)
    assert detection.kind is MailKind.BOUNCE
    assert detection.bounce is not None
    assert detection.bounce.permanent == ()
    assert [f.address for f in detection.bounce.failed] == ["old.address@globex.example"]


def test_plain_text_bounce_with_failed_recipients_header() -> None:
    raw = """From: Mail Delivery System <Mailer-Daemon@mx.globex.example>
To: support@help.acme.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: pablo@globex.example
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  pablo@globex.example
    Unrouteable address
"""
    detection = detect(parse(raw), POLICY)
    assert detection.kind is MailKind.BOUNCE
    assert detection.bounce is not None
    assert detection.bounce.permanent == ("pablo@globex.example",)


def test_out_of_office_with_null_sender_is_not_a_bounce() -> None:
    raw = simple("Réponse automatique : absent", "Return-Path: <MAILER-DAEMON@mx.globex.example>")
    assert kind(raw) is MailKind.AUTO_REPLY


def test_budget_allows_up_to_the_limit_within_the_period() -> None:
    budget = AutoReplyBudget(max_replies=2, period=dt.timedelta(hours=1))
    assert check_auto_reply_budget([], NOW, budget).allowed
    recent = [NOW - dt.timedelta(minutes=50), NOW - dt.timedelta(minutes=10)]
    decision = check_auto_reply_budget(recent, NOW, budget)
    assert not decision.allowed
    assert "suppressed: 2 automatic replies" in decision.reason
    old = [NOW - dt.timedelta(hours=2), NOW - dt.timedelta(minutes=61)]
    assert check_auto_reply_budget(old, NOW, budget).allowed


def replies_in_storm(
    raw: str, budget: AutoReplyBudget, mails: int, every: dt.timedelta
) -> list[dt.datetime]:
    """Feed ``mails`` identical mails from one sender; return when automatic replies went out."""
    message = parse(raw)
    sent: list[dt.datetime] = []
    for n in range(mails):
        now = NOW + n * every
        human = detect(message, POLICY).may_auto_reply
        if human and check_auto_reply_budget(sent, now, budget).allowed:
            sent.append(now)
    return sent


def test_out_of_office_storm_gets_no_automatic_reply() -> None:
    raw = simple("Out of Office: Re: [Ticket #12] Dashboard down", "Auto-Submitted: auto-replied")
    assert replies_in_storm(raw, AutoReplyBudget(), 500, dt.timedelta(seconds=7)) == []


def test_storm_from_a_broken_responder_is_capped_by_the_budget() -> None:
    budget = AutoReplyBudget(max_replies=3, period=dt.timedelta(hours=1))
    sent = replies_in_storm(simple("Re: Dashboard"), budget, 500, dt.timedelta(seconds=7))
    assert len(sent) == 3 * 1  # 500 mails x 7 s < 1 h: one window
    longer = replies_in_storm(simple("Re: Dashboard"), budget, 500, dt.timedelta(minutes=1))
    for i, moment in enumerate(longer):
        window = [t for t in longer[: i + 1] if moment - t < budget.period]
        assert len(window) <= budget.max_replies


CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


@pytest.mark.skipif(not (CORPORA / "alaveteli").is_dir(), reason="shared corpora not present")
def test_labelled_alaveteli_mail_in_place() -> None:
    import json

    labels = json.loads((CORPORA / "alaveteli/_expected_handle_mail_replies.json").read_text())
    wanted = {"bounce": MailKind.BOUNCE, "out-of-office": MailKind.AUTO_REPLY}
    for name, label in labels["files"].items():
        raw, _ = strip_mbox_from_line((CORPORA / "alaveteli" / name).read_bytes())
        detection = detect(parse_message(raw, IntakeLimits()), POLICY)
        assert detection.kind is wanted.get(label["kind"], MailKind.HUMAN), name


@pytest.mark.parametrize(
    "subject",
    [
        "I am out of the office but urgent: dashboards down",
        "Automatic reply settings question",
        "Auto-reply feature request",
        "Absence du bureau - question facture",
    ],
)
def test_out_of_office_wording_inside_a_persons_subject_opens_a_flagged_ticket(
    subject: str,
) -> None:
    detection = detect(parse(simple(subject)), POLICY)
    assert detection.kind is MailKind.HUMAN
    assert detection.borderline and not detection.may_auto_reply
    assert for_known_sender(detection) == detection


def test_a_known_customer_is_never_automatic_on_subject_wording_alone() -> None:
    detection = detect(parse(simple("Out of Office: Re: [Ticket #12] Dashboard down")), POLICY)
    assert detection.kind is MailKind.AUTO_REPLY and detection.borderline
    known = for_known_sender(detection)
    assert known.kind is MailKind.HUMAN and known.borderline and not known.may_auto_reply
    assert "known customer" in known.reasons[-1]


def test_auto_reply_headers_or_body_are_not_borderline() -> None:
    headers = detect(parse(simple("Out of Office", "Auto-Submitted: auto-replied")), POLICY)
    body = simple("Automatic reply: dashboards").replace(
        "Hola, el panel no carga.", "I am out of the office until Monday with limited access."
    )
    for detection in (headers, detect(parse(body), POLICY)):
        assert detection.kind is MailKind.AUTO_REPLY and not detection.borderline
        assert for_known_sender(detection) is detection


def test_plain_mail_is_not_borderline() -> None:
    detection = detect(parse(simple("El panel no carga")), POLICY)
    assert not detection.borderline and detection.may_auto_reply

"""Spam and bulk header rules (issue 14 part 5) and the received time of history imports
(part 4): pure decisions on one message."""

from __future__ import annotations

import datetime as dt

import pytest

from mailproc.core.detect import (
    DetectPolicy,
    HeaderRule,
    MailKind,
    detect,
    for_known_sender,
    promoted,
)
from mailproc.core.history import history_time
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import parse_message

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def parse(*headers: str) -> ParsedMessage:
    head = ["From: Ana <ana@globex.example>", "To: support@dataflow.com", "Subject: Hola", *headers]
    return parse_message(("\r\n".join(head) + "\r\n\r\nTexto.\r\n").encode(), IntakeLimits())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("X-Spam-Flag: YES", MailKind.SPAM),
        ("X-Spam-Flag: yes", MailKind.SPAM),
        ("X-Spam-Status: Yes, score=7.3 required=5.0", MailKind.SPAM),
        ("X-Spam-Status: No, score=0.1 required=5.0", MailKind.HUMAN),
        ("X-Spam-Flag: NO", MailKind.HUMAN),
        ("X-Spam-Level: *****", MailKind.HUMAN),
        ("List-Unsubscribe: <mailto:leave@news.example>", MailKind.BULK),
        ("List-Id: <news.example>", MailKind.BULK),
        ("Precedence: bulk", MailKind.BULK),
    ],
)
def test_upstream_marks_and_list_headers(header: str, expected: MailKind) -> None:
    assert detect(parse(header), DetectPolicy()).kind is expected


def test_spam_is_no_one_to_answer_even_from_a_known_customer() -> None:
    detection = for_known_sender(detect(parse("X-Spam-Flag: YES"), DetectPolicy()))
    assert detection.kind is MailKind.SPAM and not detection.may_auto_reply
    assert detection.reasons == ("marked as spam upstream (X-Spam-Flag: YES)",)


def test_configured_rules_replace_the_defaults() -> None:
    policy = DetectPolicy(
        spam_rules=(HeaderRule.parse("X-Barracuda-Spam-Status: ^yes"),),
        bulk_rules=(HeaderRule.parse("X-Mailer: ^mailchimp"),),
    )
    assert detect(parse("X-Barracuda-Spam-Status: Yes, 9.1"), policy).kind is MailKind.SPAM
    assert detect(parse("X-Spam-Flag: YES"), policy).kind is MailKind.HUMAN
    bulk = detect(parse("X-Mailer: MailChimp Mailer"), policy)
    assert bulk.kind is MailKind.BULK and bulk.reasons == ("X-Mailer: MailChimp Mailer",)


@pytest.mark.parametrize("text", ["X-Spam-Flag ^yes", "X-Spam: (", ": yes", "X-Spam:"])
def test_a_rule_must_be_a_header_and_a_regular_expression(text: str) -> None:
    with pytest.raises(ValueError, match=r"Header-Name: regular expression|bad regular"):
        HeaderRule.parse(text)


def test_promotion_makes_bulk_or_spam_a_persons_mail_and_nothing_else() -> None:
    spam = detect(parse("X-Spam-Flag: YES"), DetectPolicy())
    person = promoted(spam)
    assert person.kind is MailKind.HUMAN and person.may_auto_reply
    assert person.reasons[-1] == "spam promoted by an admin: a person's mail"
    bounce_like = detect(parse("Auto-Submitted: auto-replied"), DetectPolicy())
    assert promoted(bounce_like) is bounce_like


def raw(*headers: str) -> bytes:
    return ("\r\n".join(["From: a@b.example", *headers]) + "\r\n\r\nx\r\n").encode()


RECEIVED = "Received: from mx.example by mail.dataflow.com; Tue, 01 Sep 2026 10:05:00 +0000"


@pytest.mark.parametrize(
    ("headers", "expected", "why"),
    [
        (("Date: Tue, 01 Sep 2026 10:00:00 +0200",), "2026-09-01T08:00:00", "the message's Date"),
        ((RECEIVED, "Date: Tue, 01 Sep 2026 10:00:00 +0000"), "2026-09-01T10:00:00", "Date"),
        ((RECEIVED, "Date: Fri, 01 Jan 2027 10:00:00 +0000"), "2026-09-01T10:05:00", "Received"),
        ((RECEIVED, "Date: Thu, 01 Jan 1970 00:00:00 +0000"), "2026-09-01T10:05:00", "Received"),
        ((RECEIVED, "Date: Mon, 01 Jun 2026 10:00:00 +0000"), "2026-09-01T10:05:00", "Received"),
        ((RECEIVED, "Date: yesterday"), "2026-09-01T10:05:00", "no usable Date"),
        (("Date: Fri, 01 Jan 2027 10:00:00 +0000",), "2026-12-06T12:00:00", "the import"),
        ((), "2026-12-06T12:00:00", "the time of the import"),
        (("Date: Sun, 06 Dec 2026 20:00:00 +0000",), "2026-12-06T12:00:00", "the message's Date"),
    ],
)
def test_a_history_mail_is_timed_by_its_date_within_sane_bounds(
    headers: tuple[str, ...], expected: str, why: str
) -> None:
    when, reason = history_time(raw(*headers), NOW)
    assert when == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)
    assert why in reason

"""Thread decisions: reply token, Message-ID, subject tag with participant check, reopen window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from mailproc.core.detect import DetectPolicy, MailKind, detect
from mailproc.core.identity import Agent, AgentRole, SenderIdentity, SenderKind
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import ParsedMessage, TicketStatus
from mailproc.core.parse import parse_message
from mailproc.core.ticket_threading import (
    ThreadAction,
    ThreadPolicy,
    TicketRef,
    Trust,
    decide_thread,
)
from mailproc.core.tokens import ReplyAddressScheme, reply_address

SCHEME = ReplyAddressScheme("support", "help.acme.example", (b"threading-tests-secret",))
POLICY = ThreadPolicy(SCHEME, reopen_window=dt.timedelta(days=14))
NOW = dt.datetime(2025, 3, 20, 10, 0, tzinfo=dt.UTC)
BASE = "support@help.acme.example"

ANA = SenderIdentity(SenderKind.CUSTOMER, "ana@globex.example", "customer 41")
MALLORY = SenderIdentity(SenderKind.CUSTOMER, "mallory@initech.example", "customer 77")
STRANGER = SenderIdentity(SenderKind.UNKNOWN, "who@nowhere.example", "address not known")
MARTA = SenderIdentity(
    SenderKind.AGENT,
    "marta@acme.example",
    "agent",
    Agent("Marta", frozenset({AgentRole.SUPPORT_MANAGER}), ("marta@acme.example",)),
)


class FakeStore:
    """Tickets and stored Message-IDs, as the store would answer."""

    def __init__(self) -> None:
        self.tickets = {
            12: TicketRef(12, TicketStatus.OPEN, frozenset({"ana@globex.example"})),
            13: TicketRef(
                13,
                TicketStatus.RESOLVED,
                frozenset({"ana@globex.example"}),
                NOW - dt.timedelta(days=3),
            ),
            14: TicketRef(
                14,
                TicketStatus.CLOSED,
                frozenset({"ana@globex.example"}),
                NOW - dt.timedelta(days=40),
            ),
            15: TicketRef(15, TicketStatus.CLOSED, frozenset({"ana@globex.example"})),
            20: TicketRef(20, TicketStatus.WAITING, frozenset({"mallory@initech.example"})),
        }
        self.message_ids = {
            "ack.9d8e7f.12@mail.help.acme.example": 12,
            "CAF=ana-first-mail@mail.globex.example": 12,
            "ack.11aa22.13@mail.help.acme.example": 13,
            "ack.33bb44.14@mail.help.acme.example": 14,
        }

    def tickets_by_message_ids(self, message_ids: Sequence[str]) -> Mapping[str, int]:
        return {i: self.message_ids[i] for i in message_ids if i in self.message_ids}

    def ticket_info(self, number: int) -> TicketRef | None:
        return self.tickets.get(number)


STORE = FakeStore()


def mail(
    subject: str, *headers: str, to: str = BASE, sender: str = "ana@globex.example"
) -> ParsedMessage:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        *headers,
        "Message-ID: <n1@x.example>",
    ]
    return parse_message(("\r\n".join(lines) + "\r\n\r\nGracias.\r\n").encode(), IntakeLimits())


def decide(
    message: ParsedMessage, sender: SenderIdentity = ANA, recipients: Sequence[str] = (BASE,)
) -> tuple[ThreadAction, int | None, Trust, str]:
    d = decide_thread(message, recipients, sender, STORE, POLICY, NOW)
    return d.action, d.ticket, d.trust, d.reason


def test_valid_reply_token_attaches_whoever_sends() -> None:
    token = reply_address(SCHEME, 12)
    action, ticket, trust, _ = decide(mail("Re: hello", to=token), STRANGER, [token])
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.REPLY_TOKEN)


def test_token_beats_a_conflicting_subject_tag() -> None:
    token = reply_address(SCHEME, 12)
    action, ticket, trust, _ = decide(mail("Re: [Ticket #13] x", to=token), ANA, [token])
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.REPLY_TOKEN)


def test_altered_token_is_rejected_and_explained() -> None:
    token = reply_address(SCHEME, 20)  # Mallory's own ticket
    local, domain = token.split("@")
    altered = f"{local[:-1]}{'b' if local[-1] == 'a' else 'a'}@{domain}"
    pointed_elsewhere = token.replace("+20-", "+12-")  # at Ana's ticket
    for address in (altered, pointed_elsewhere):
        action, ticket, trust, reason = decide(mail("Re: hi", to=address), MALLORY, [address])
        assert (action, ticket, trust) == (ThreadAction.NEW, None, Trust.NONE)
        assert "rejected: reply token does not match" in reason


def test_guessed_token_for_another_customers_ticket_opens_a_new_ticket() -> None:
    guess = f"support+12-{'abcdefgh' * 2}@help.acme.example"
    action, _, _, reason = decide(mail("Re: hi", to=guess), MALLORY, [guess])
    assert action is ThreadAction.NEW
    assert "reply token does not match ticket #12" in reason


def test_in_reply_to_our_message_attaches() -> None:
    message = mail("Re: we received", "In-Reply-To: <ack.9d8e7f.12@mail.help.acme.example>")
    action, ticket, trust, _ = decide(message)
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.MESSAGE_ID)


def test_references_to_a_stored_inbound_message_attach() -> None:
    message = mail(
        "Re: more info", "References: <other@x.example> <CAF=ana-first-mail@mail.globex.example>"
    )
    action, ticket, trust, reason = decide(message)
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.MESSAGE_ID)
    assert "1 referenced Message-ID(s) match nothing of ours" in reason


def test_forged_references_are_ignored() -> None:
    message = mail(
        "Re: your invoice",
        "In-Reply-To: <ack.guessed.12@mail.help.acme.example>",
        "References: <ack.000000.12@mail.help.acme.example> <random@evil.example>",
    )
    action, ticket, trust, reason = decide(message, MALLORY)
    assert (action, ticket, trust) == (ThreadAction.NEW, None, Trust.NONE)
    assert "match nothing of ours; ignored" in reason


def test_subject_tag_from_a_participant_attaches() -> None:
    action, ticket, trust, reason = decide(mail("Re: [Ticket #12] El panel no carga"))
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.SUBJECT_TAG)
    assert "participant ana@globex.example" in reason


def test_another_customers_subject_tag_names_the_ticket_as_a_strangers() -> None:
    """Not trusted: the mail is held for review (processing/review.py), never just added."""
    message = mail("Re: [Ticket #12] please send me the invoice", sender="mallory@initech.example")
    action, ticket, trust, reason = decide(message, MALLORY)
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.STRANGER_TAG)
    assert "from mallory@initech.example, not a participant" in reason
    reopen = decide(mail("Re: [Ticket #13] x", sender="who@nowhere.example"), STRANGER)
    assert reopen[:3] == (ThreadAction.REOPEN, 13, Trust.STRANGER_TAG)


def test_a_strangers_subject_tag_past_the_reopen_window_opens_a_new_ticket() -> None:
    message = mail("Re: [Ticket #14] hello again", sender="mallory@initech.example")
    action, ticket, trust, reason = decide(message, MALLORY)
    assert (action, ticket, trust) == (ThreadAction.NEW, None, Trust.NONE)
    assert "[Ticket #14] from mallory@initech.example, not a participant" in reason
    assert "rejected, the ticket is past its reopen window" in reason


def test_subject_tag_from_an_agent_attaches() -> None:
    action, ticket, trust, _ = decide(
        mail("[Ticket #20] update", sender="marta@acme.example"), MARTA
    )
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 20, Trust.SUBJECT_TAG)


def test_subject_tag_for_a_missing_ticket_opens_a_new_ticket() -> None:
    action, _, _, reason = decide(mail("Re: [Ticket #999] hello"))
    assert action is ThreadAction.NEW
    assert "names no ticket" in reason


def test_subject_text_alone_never_threads() -> None:
    action, _, trust, _ = decide(mail("Re: El panel no carga"))
    assert (action, trust) == (ThreadAction.NEW, Trust.NONE)


def test_reply_to_resolved_ticket_within_window_reopens() -> None:
    message = mail("Re: solved?", "In-Reply-To: <ack.11aa22.13@mail.help.acme.example>")
    action, ticket, _, reason = decide(message)
    assert (action, ticket) == (ThreadAction.REOPEN, 13)
    assert "within the reopen window" in reason


def test_reply_after_the_reopen_window_opens_a_linked_ticket() -> None:
    message = mail("Re: old issue", "In-Reply-To: <ack.33bb44.14@mail.help.acme.example>")
    action, ticket, trust, reason = decide(message)
    assert (action, ticket, trust) == (ThreadAction.NEW_LINKED, 14, Trust.MESSAGE_ID)
    assert "past the reopen window" in reason
    assert "new ticket linked to #14" in reason


def test_closed_ticket_without_resolution_time_is_not_reopened() -> None:
    action, ticket, _, _ = decide(mail("Re: [Ticket #15] again"))
    assert (action, ticket) == (ThreadAction.NEW_LINKED, 15)


def test_forged_mailproc_header_does_not_thread() -> None:
    action, _, _, _ = decide(mail("Hello", "X-Mailproc-Ticket: 12"), MALLORY)
    assert action is ThreadAction.NEW


def test_token_for_a_deleted_ticket_falls_back_to_headers() -> None:
    token = reply_address(SCHEME, 404)
    message = mail("Re: x", "In-Reply-To: <ack.9d8e7f.12@mail.help.acme.example>", to=token)
    action, ticket, trust, reason = decide(message, ANA, [token])
    assert (action, ticket, trust) == (ThreadAction.ATTACH, 12, Trust.MESSAGE_ID)
    assert "ticket #404, which does not exist" in reason


def test_bounce_of_our_acknowledgment_follows_the_returned_mail() -> None:
    raw = f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.globex.example>
To: {BASE}
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce1@mx.globex.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Delivery failed.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.globex.example

Final-Recipient: rfc822; gone@globex.example
Action: failed
Status: 5.1.1

--b
Content-Type: text/rfc822-headers

From: support@help.acme.example
To: gone@globex.example
Message-ID: <ack.9d8e7f.12@mail.help.acme.example>
Subject: [Ticket #12] We received your request

--b--
"""
    message = parse_message(raw.replace("\n", "\r\n").encode(), IntakeLimits())
    detection = detect(message, DetectPolicy(reply_scheme=SCHEME))
    assert detection.kind is MailKind.BOUNCE
    daemon = SenderIdentity(SenderKind.UNKNOWN, "mailer-daemon@mx.globex.example", "unknown")
    d = decide_thread(message, [BASE], daemon, STORE, POLICY, NOW, detection.bounce)
    assert (d.action, d.ticket, d.trust) == (ThreadAction.ATTACH, 12, Trust.MESSAGE_ID)

"""Hostile MIME through the pure pipeline: parse, detect, identity, threading, classification.

Hypothesis builds messages from the pieces attackers and broken clients send (odd boundaries,
RFC 2231 parameters, undeclared 8-bit text, junk above the headers, bad dates, deep nesting,
floods of lines); every one must come out understood, or refused with LimitExceeded, within
the time budget. Bounded: a fixed number of examples, each with a deadline.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailproc.core.catalog import load_default_catalog
from mailproc.core.classify import classifier_from_config
from mailproc.core.detect import DetectPolicy, for_known_sender
from mailproc.core.identity import IdentityPolicy, identify_sender
from mailproc.core.limits import IntakeLimits, LimitExceeded
from mailproc.core.model import TicketStatus
from mailproc.core.ticket_threading import ThreadPolicy, TicketRef, decide_thread
from mailproc.core.tokens import ReplyAddressScheme
from mailproc.core.understand import PrepareRules, prepare

SCHEME = ReplyAddressScheme("support", "help.acme.example", (b"fuzz-tests-secret-key",))
LIMITS = IntakeLimits(max_message_bytes=512 * 1024, max_understood_chars=64 * 1024)
RULES = PrepareRules(
    LIMITS,
    DetectPolicy(own_addresses=frozenset({"support@help.acme.example"}), reply_scheme=SCHEME),
    classifier_from_config(load_default_catalog()),
)
IDENTITY = IdentityPolicy(trusted_authserv_id="mx.acme.example")
THREADS = ThreadPolicy(SCHEME)
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
BUDGET_S = 5.0  # one message, parse to classification


class Store:
    """Every Message-ID and ticket number exists (the lookups never short-circuit)."""

    def tickets_by_message_ids(self, message_ids: Sequence[str]) -> Mapping[str, int]:
        return dict.fromkeys(message_ids, 12)

    def ticket_info(self, number: int) -> TicketRef | None:
        return TicketRef(number, TicketStatus.CLOSED, frozenset({"ana@globex.example"}), NOW)


text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60
) | st.sampled_from(["", "=?utf-8?b?w6k=?=", "=?x?q?bad", "\udc80", "\u202e", "a\x00b"])
raw_8bit = st.sampled_from(
    ["测试".encode("gb2312"), "テスト".encode("shift_jis"), "測試".encode("big5"), b"\xff\xfe"]
)
header_names = st.sampled_from(
    [
        "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
        "References", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
        "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "Sender",
        "Authentication-Results", "X-Failed-Recipients", "Content-Language",
    ]
)  # fmt: skip
header_values = st.one_of(
    text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    raw_8bit,
    st.sampled_from(
        [
            b"multipart/mixed; boundary*0=ab; boundary*1=cd",
            b'multipart/alternative; boundary="x"',
            b"multipart/report; report-type=delivery-status; boundary=x",
            b"message/rfc822",
            b"text/plain; charset*=utf-8''%E2%9C%93",
            b"text/html; charset=unknown-8bit",
            b"base64",
            b"quoted-printable",
            b"attachment; filename*0*=utf-8''%E2%80%AE; filename*1=\"gpj.exe\"",
            b"31 Dec 9999 23:59:59 -1200",
            b'"X" <a@b.com.>',
            b"Test test@example.com",
            b"<a@x.example> <b@y.example>",
            b"mx.acme.example; dmarc=pass header.from=evil.example",
            b"<support+t1.abc@help.acme.example>",
            b"[Ticket #12] Out of Office: " + b"x" * 300,
        ]
    ),
)
body_pieces = st.one_of(
    text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    raw_8bit,
    st.sampled_from(
        [
            b"--x", b"--x--", b"--abcd", b"--abcd--", b"> quoted", b"On 1 Jan 2020, a@b.c wrote:",
            b"From: a@b.example", b"Sent: today", b"-----Original Message-----", b"=E9=",
            b"PGI+aGk8L2I+", b"<html><script>x</script><p>hi", b"Content-Type: text/plain",
            b"", b"refund $10000000000000", b"DS-1001 HTTP 503",
        ]
    ),
)  # fmt: skip


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    """A message of hostile headers and body lines, sometimes very long or very nested."""
    junk = draw(st.sampled_from([b"", b"---- Original email message ----\r\n", b"From x y\n"]))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    lines = draw(st.lists(body_pieces, max_size=40))
    repeat = draw(st.sampled_from([1, 1, 1, 50, 2000]))
    nest = draw(st.sampled_from([0, 0, 3, 20]))
    body = b"\r\n".join(lines) * repeat
    for level in range(nest):
        body = (
            b"Content-Type: multipart/mixed; boundary*0=b; boundary*1=%d\r\n\r\n--b%d\r\n%s\r\n"
            b"--b%d--\r\n" % (level, level, body, level)
        )
    return junk + head + b"\r\n" + body


@settings(
    max_examples=60,
    deadline=dt.timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(hostile_mail())
def test_hostile_mime_is_understood_or_refused_within_budget(raw: bytes) -> None:
    started = time.perf_counter()
    try:
        prepared = prepare(raw, RULES, None)
    except LimitExceeded:
        return
    parsed = prepared.parsed
    sender = identify_sender(parsed, IDENTITY, lambda address: None)
    detection = for_known_sender(prepared.detection)
    decision = decide_thread(
        parsed, ["support@help.acme.example"], sender, Store(), THREADS, NOW, detection.bounce
    )
    assert decision.reason
    assert len(prepared.new_text) <= len(parsed.body_text) + 1
    if len(parsed.body_text) > LIMITS.max_understood_chars:
        assert prepared.reduced and prepared.quoted_text == ""
    assert time.perf_counter() - started < BUDGET_S

"""Parsing real but odd mail: hostile dates, malformed senders, junk lines, raw 8-bit subjects."""

from __future__ import annotations

import datetime as dt

import pytest

from mailproc.core.addresses import Salvaged, salvage_address
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import ParsedMessage
from mailproc.core.parse import parse_message


def parse(*headers: str, body: str = "Body") -> ParsedMessage:
    return parse_message(("\r\n".join(headers) + "\r\n\r\n" + body).encode(), IntakeLimits())


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 9999 23:59:59 -1200",
        "31 Dec 9999 23:59 -1200",
        "31 Dec 9999 -1200",
        "Sat, 1 Jan 2500 00:00:00 +0000",
        "Thu, 1 Jan 1914 00:00:00 +0000",
    ],
)
def test_out_of_range_dates_fall_back_with_a_defect(value: str) -> None:
    message = parse("From: a@example.com", f"Date: {value}", "Subject: hi")
    assert message.date is None
    assert any(d.startswith("Date:") for d in message.defects)


def test_ordinary_dates_are_kept_in_utc() -> None:
    message = parse("From: a@example.com", "Date: Tue, 1 Dec 2026 10:00:00 -0500")
    assert message.date == dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)
    assert not message.defects


@pytest.mark.parametrize(
    ("header", "address", "name"),
    [
        ('"X" <a@b.com.>', "a@b.com", "X"),
        ("Test test@example.com", "test@example.com", "Test"),
    ],
)
def test_malformed_from_is_salvaged_when_unambiguous(header: str, address: str, name: str) -> None:
    message = parse(f"From: {header}", "Subject: hi")
    assert message.sender is not None
    assert (message.sender.addr, message.sender.name) == (address, name)
    assert any(d.startswith("From: malformed address") for d in message.defects)


@pytest.mark.parametrize("header", ["John Smith <john smith@example.com>", "<a@x> <b@y>"])
def test_ambiguous_from_is_not_guessed_but_recorded(header: str) -> None:
    message = parse(f"From: {header}", "Subject: hi")
    assert not any(d.startswith("From: malformed address") for d in message.defects)
    assert (
        any(d.startswith("From: no usable address") for d in message.defects)
        or len(message.from_) != 1
    )


def test_two_from_headers_with_one_address_are_one_sender() -> None:
    same = parse("From: Ana <ana@example.com>", "From: ana@EXAMPLE.com", "Subject: hi")
    assert [a.addr for a in same.from_] == ["ana@example.com"]
    assert "From: 2 From headers" in same.defects
    other = parse("From: ana@example.com", "From: mallory@evil.example", "Subject: hi")
    assert [a.addr for a in other.from_] == ["ana@example.com", "mallory@evil.example"]


@pytest.mark.parametrize(
    ("subject", "charset"),
    [
        ("仪表板宕机了，请帮忙", "gb2312"),
        ("账单问题", "gb2312"),
        ("ダッシュボードが停止しました", "shift_jis"),
        ("請協助處理發票問題", "big5"),
        ("請款問題", "big5"),
        ("Résumé de la facture", "cp1252"),
    ],
)
def test_raw_8bit_subjects_without_a_charset_are_detected(subject: str, charset: str) -> None:
    raw = b"From: a@example.com\r\nSubject: " + subject.encode(charset) + b"\r\n\r\nBody\r\n"
    assert parse_message(raw, IntakeLimits()).subject == subject


def test_a_declared_body_charset_is_the_first_guess_for_raw_header_text() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: " + "账单".encode("gb2312") + b"\r\n"
        b"Content-Type: text/plain; charset=gb2312\r\n\r\n" + "你好".encode("gb2312")
    )
    message = parse_message(raw, IntakeLimits())
    assert message.subject == "账单" and message.body_text == "你好"


def test_undeclared_8bit_body_text_is_detected() -> None:
    body = "您好，我们的仪表板从周一开始无法加载，请尽快处理。".encode("gb2312")
    raw = b"From: a@example.com\r\nSubject: x\r\n\r\n" + body
    assert parse_message(raw, IntakeLimits()).body_text == body.decode("gb2312")


def test_salvage_address_takes_only_a_single_candidate() -> None:
    assert salvage_address("<ann . lee @ Example.COM.>") == Salvaged("ann.lee@example.com")
    assert salvage_address("Bo (work) bo@x.example,") == Salvaged("bo@x.example")
    assert salvage_address("a@x.example b@y.example") is None
    assert salvage_address("<a@x.example> <b@y.example>") is None
    assert salvage_address("x@y.example\r\nBcc: z@w.example") is None

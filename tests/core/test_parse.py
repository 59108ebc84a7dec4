"""Parsing real but odd mail: hostile dates, malformed senders, junk lines, raw 8-bit subjects."""

from __future__ import annotations

import datetime as dt

import pytest

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

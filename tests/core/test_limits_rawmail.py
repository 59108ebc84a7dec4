"""Raw-byte checks: size limits before parsing, not-mail detection, quick Message-ID scan."""

from __future__ import annotations

import pytest

from mailproc.core.limits import IntakeLimits, LimitExceeded, check_limits, scan_mime_shape
from mailproc.core.parse import parse_message
from mailproc.core.rawmail import (
    find_message_id,
    not_mail_reason,
    split_header_block,
    strip_mbox_from_line,
)


def nested(depth: int) -> bytes:
    """A message with ``depth`` nested multiparts."""
    head = b"From: a@b.example\r\nSubject: deep\r\n"
    body = b"text\r\n"
    for level in reversed(range(depth)):
        boundary = f"b{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\r\n\r\n--'
            + boundary
            + b"\r\n"
            + body
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
    return head + body


def test_scan_counts_depth_and_parts() -> None:
    assert scan_mime_shape(nested(5)).depth == 5
    assert scan_mime_shape(b"From: a@b.example\r\n\r\nplain\r\n").depth == 0


def test_too_deep_is_refused_before_parsing() -> None:
    with pytest.raises(LimitExceeded, match="depth is 20; the limit is 12"):
        check_limits(nested(20), IntakeLimits())


def test_too_many_parts() -> None:
    parts = b"".join(b"--x\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(30))
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + parts + b"--x--\r\n"
    with pytest.raises(LimitExceeded, match="30 MIME parts; the limit is 10"):
        check_limits(raw, IntakeLimits(max_parts=10))


def test_message_and_header_size_limits() -> None:
    with pytest.raises(LimitExceeded, match="message is 2048 bytes"):
        check_limits(b"A: b\r\n\r\n" + b"x" * 2040, IntakeLimits(max_message_bytes=1024))
    header = b"X-Long: " + b"y" * 5000 + b"\r\n\r\nbody"
    with pytest.raises(LimitExceeded, match="header block is"):
        check_limits(header, IntakeLimits(max_header_bytes=1024))


def test_body_lines_starting_with_dashes_are_not_parts() -> None:
    raw = b"From: a@b.example\r\n\r\n--\r\n-- signature\r\n--x\r\n"
    assert scan_mime_shape(raw).parts == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "input is empty"),
        (b"   \r\n", "input is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
        (b"just some text without headers\n", "does not start with a mail header"),
        (bytes(range(256)) * 10, "NUL bytes"),
    ],
)
def test_not_mail(raw: bytes, reason: str) -> None:
    found = not_mail_reason(raw)
    assert found is not None and reason in found


def test_mail_passes_including_obsolete_header_syntax() -> None:
    assert not_mail_reason(b"From: a@b.example\r\n\r\nhi") is None
    assert not_mail_reason(b"From    : John <j@x.example>\r\n\r\nhi") is None


def test_mbox_from_line_is_stripped_but_not_a_from_header() -> None:
    rest, sender = strip_mbox_from_line(b"From bob@x.example Thu Nov 26 10:00:00 2026\nA: b\n")
    assert rest == b"A: b\n" and sender == "bob@x.example"
    rest, sender = strip_mbox_from_line(b"From    : John <j@x.example>\n")
    assert sender is None and rest.startswith(b"From    :")


def test_find_message_id_quickly_including_folded() -> None:
    raw = b"Subject: x\r\nMessage-ID:\r\n <abc@host.example>\r\n\r\nMessage-ID: <body@x>\r\n"
    assert find_message_id(raw) == "abc@host.example"
    assert find_message_id(b"Subject: none\r\n\r\n") is None


def test_split_header_block_handles_lf_and_crlf() -> None:
    assert split_header_block(b"A: b\n\nbody") == (b"A: b", b"body")
    assert split_header_block(b"A: b\r\n\r\nbody") == (b"A: b", b"body")


def rfc2231_multipart(parts: int) -> bytes:
    """A multipart whose boundary is declared in RFC 2231 continuations the byte scan misses."""
    body = b"".join(b"--abcdef\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(parts))
    return (
        b"From: a@b.example\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary*0=abc; boundary*1=def\r\n\r\n"
        + body
        + b"--abcdef--\r\n"
    )


def test_rfc2231_boundary_does_not_escape_the_part_limit() -> None:
    check_limits(rfc2231_multipart(300), IntakeLimits())  # the cheap scan is fooled...
    with pytest.raises(LimitExceeded, match="more than 250 MIME parts"):
        parse_message(rfc2231_multipart(300), IntakeLimits())  # ...the parser is not
    assert len(parse_message(rfc2231_multipart(20), IntakeLimits()).attachments) == 0


def test_rfc2231_boundaries_do_not_escape_the_depth_limit() -> None:
    body = b"text\r\n"
    for level in reversed(range(20)):
        boundary = f"b{level}x".encode()
        body = (
            b"Content-Type: multipart/mixed; boundary*0=b; boundary*1="
            + boundary[1:]
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
            + body
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
    raw = b"From: a@b.example\r\n" + body
    assert scan_mime_shape(raw).depth == 0
    with pytest.raises(LimitExceeded, match="depth exceeds 12"):
        parse_message(raw, IntakeLimits())
    assert parse_message(nested(12), IntakeLimits()).body_text == "text"

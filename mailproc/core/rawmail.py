"""Cheap checks on raw bytes: is this mail at all, where the header ends, the Message-ID."""

from __future__ import annotations

import re

_HEADER_LINE = re.compile(rb"^[!-9;-~]{1,100}[ \t]*:")  # field-name (obsolete WSP allowed)
_MBOX_FROM_LINE = re.compile(rb"^From (?![ \t]*:)")
_MESSAGE_ID_HEADER = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_ANGLE_ID = re.compile(r"<([^<>\s]{1,994})>")
_BARE_ID = re.compile(r"^[^<>\s\x00-\x1f\x7f]{1,994}$")
_MAX_BINARY_SHARE = 0.30
_CONTROL_BYTES = bytes(b for b in range(32) if b < 9 or b > 13)  # not tab, LF, VT, FF, CR


def is_mbox_from_line(raw: bytes) -> bool:
    """True when ``raw`` starts with an mbox ``From sender date`` line (not a From: header)."""
    return bool(_MBOX_FROM_LINE.match(raw))


def strip_mbox_from_line(raw: bytes) -> tuple[bytes, str | None]:
    """Remove a leading mbox ``From sender date`` line; return the rest and that sender."""
    if not is_mbox_from_line(raw):
        return raw, None
    line, _, rest = raw.partition(b"\n")
    fields = line.split()
    sender = fields[1].decode("ascii", "replace") if len(fields) > 1 else None
    return rest, sender if sender not in (None, "MAILER-DAEMON", "-") else None


def split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail at the first empty line into (header block, body)."""
    positions = [p for p in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if p >= 0]
    if not positions:
        return raw, b""
    cut = min(positions)
    separator = 4 if raw.startswith(b"\r\n\r\n", cut) else 2
    return raw[:cut], raw[cut + separator :]


def not_mail_reason(raw: bytes) -> str | None:
    """Why ``raw`` is not an RFC 5322 message at all, or None when it looks like mail.

    Mail starts with a header line, has no NUL bytes in its header block, and is not
    mostly binary junk. Anything that passes is stored; the parser copes with the rest.
    """
    if not raw.strip():
        return "input is empty"
    header, _ = split_header_block(raw)
    if b"\x00" in header:
        return "header block contains NUL bytes (binary data, not mail)"
    if not _HEADER_LINE.match(header.lstrip(b"\r\n")):
        return "input does not start with a mail header line (Name: value)"
    sample = raw[:65536]
    binary = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if binary > len(sample) * _MAX_BINARY_SHARE:
        return "input is mostly binary control bytes, not mail"
    return None


def bare_message_id(value: str) -> str | None:
    """The Message-ID inside ``<...>`` (or a bare token), without brackets; None if unusable."""
    match = _ANGLE_ID.search(value)
    if match:
        return match.group(1)
    value = value.strip()
    return value if _BARE_ID.match(value) else None


def find_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block by a quick scan (no full parse)."""
    header, _ = split_header_block(raw)
    match = _MESSAGE_ID_HEADER.search(header)
    if not match:
        return None
    return bare_message_id(match.group(1).decode("utf-8", "replace"))

"""Cheap checks on raw bytes: is this mail at all, where the header starts and ends, mbox
files, the Message-ID."""

from __future__ import annotations

import re

_HEADER_LINE = re.compile(rb"[!-9;-~]{1,100}[ \t]*:")  # field-name (obsolete WSP allowed)
_FIELD_NAMES = re.compile(rb"^([!-9;-~]{1,100})[ \t]*:", re.M)
_MBOX_FROM_LINE = re.compile(rb"^From (?![ \t]*:)")
# An mbox separator: a "From " line at the start or after an empty line (then a header block).
_MBOX_SEPARATOR = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\n\r\n))From (?![ \t]*:)[^\n]*\n")
_BLOCK_LINES_CHECKED = 5
_MAX_HEADER_SCAN = 256 * 1024
_MBOX_NAMES = (".mbox", ".mbx")
# Lines a mail client or a copy-paste may leave above the headers: banners and rules such as
# "---- Original email message ----" or "=====" (never text, which is a reply, not mail).
_JUNK_LINE = re.compile(rb"[ \t]*(?:[-_=*~#]{2,}[^\n]*|[ \t]*)\r?\n")
_MAX_JUNK_LINES = 3
_MAX_JUNK_LINE_BYTES = 200
# Fields of which at least one must follow junk lines for the rest to count as a header block.
_MAIL_FIELDS = frozenset(
    {b"from", b"to", b"subject", b"date", b"message-id", b"received", b"return-path"}
)
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


def is_mbox(raw: bytes, name: str = "") -> bool:
    """True when ``raw`` really is an mbox file: it starts with a ``From`` line and is named
    like one, or holds several ``From`` separators each followed by a header block."""
    if not is_mbox_from_line(raw):
        return False
    if name.lower().endswith(_MBOX_NAMES):
        return True
    separators = _separators(raw)
    return bool(separators) and separators[0] == 0 and len(separators) > 1


def split_mbox(raw: bytes) -> list[tuple[bytes, str | None]]:
    """The messages of an mbox file, each with its envelope sender (``From`` line removed).

    Only a ``From`` line after an empty line and before a header line separates messages, so
    a body line that starts with "From " stays in its message.
    """
    starts = _separators(raw) or [0]
    messages = []
    for start, end in zip(starts, [*starts[1:], len(raw)], strict=True):
        chunk = raw[start:end]
        if end < len(raw):  # the empty line before the next separator belongs to the mbox
            chunk = chunk[:-2] if chunk.endswith(b"\r\n\r\n") else chunk[:-1]
        messages.append(strip_mbox_from_line(chunk))
    return messages


def _separators(raw: bytes) -> list[int]:
    """Offsets of the mbox ``From`` lines that are followed by a header block."""
    return [m.start() for m in _MBOX_SEPARATOR.finditer(raw) if _is_header_block(raw, m.end())]


def _is_header_block(raw: bytes, offset: int) -> bool:
    """True when a header block starts at ``offset``: its first lines are header lines (or
    their continuations) and it holds a usual mail field (From, Subject, Date...)."""
    ends = [p for p in (raw.find(b"\n\n", offset), raw.find(b"\n\r\n", offset)) if p >= 0]
    end = min([*ends, len(raw), offset + _MAX_HEADER_SCAN])
    block = raw[offset:end]
    lines = block.split(b"\n", _BLOCK_LINES_CHECKED)[:_BLOCK_LINES_CHECKED]
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    if not all(_HEADER_LINE.match(line) or line[:1] in (b" ", b"\t") for line in lines):
        return False
    return bool({name.lower() for name in _FIELD_NAMES.findall(block)} & _MAIL_FIELDS)


def header_start(raw: bytes) -> tuple[int, int] | None:
    """Where the header block starts and how many junk lines stand before it.

    A leading mbox ``From`` line is skipped (it is no junk); then up to three short banner or
    rule lines (a client's "---- Original message ----") when a header block with a usual
    mail field follows. None when no header block starts there.
    """
    offset = raw.find(b"\n") + 1 if is_mbox_from_line(raw) else 0
    while offset < len(raw) and raw[offset : offset + 1] in (b"\r", b"\n"):
        offset += 1
    for junk in range(_MAX_JUNK_LINES + 1):
        if _HEADER_LINE.match(raw, offset):
            return (offset, junk) if junk == 0 or _is_header_block(raw, offset) else None
        junk_line = _JUNK_LINE.match(raw, offset)
        if junk_line is None or junk_line.end() - offset > _MAX_JUNK_LINE_BYTES:
            return None
        offset = junk_line.end()
    return None


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

    Mail starts with a header line (after an mbox ``From`` line and a few junk lines at
    most, see header_start), has no NUL bytes in its header block, and is not mostly binary
    junk. Anything that passes is stored; the parser copes with the rest. The one rule for
    every door: the listener, the IMAP poller and ``mailproc ingest``.
    """
    if not raw.strip():
        return "input is empty"
    start = header_start(raw)
    header, _ = split_header_block(raw[start[0] :] if start else raw)
    if b"\x00" in header:
        return "header block contains NUL bytes (binary data, not mail)"
    if start is None:
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

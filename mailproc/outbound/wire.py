"""The bytes of a composed mail (CRLF), written directly: the same bytes as
``compose(...).as_bytes(policy=...clone(linesep="\\r\\n"))``, at a fraction of the cost.

Every header is checked as ``compose`` checks it (``checked_headers``) and folded by the same
email policy; a folded header depends only on its name and value, so the folding of a value
seen before is reused (the sender, Reply-To, the constant headers, a ticket's subject). The text
parts are encoded by the email package's own quoted-printable text encoder, and their constant
part headers are generated once by the email package; an attachment's part headers once per
type and name, its bytes encoded by the email package's own base64 encoder.
tests/outbound/test_wire.py checks the bytes are the same as ``compose``'s.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from email.contentmanager import (  # type: ignore[attr-defined]
    _encode_base64,
    _encode_text,
)
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Final

from mailproc.core.parse import MEMOIZING_POLICY
from mailproc.outbound.compose import (
    Envelope,
    HeaderValue,
    attachment_part,
    boundary_digest,
    checked_headers,
)
from mailproc.outbound.render import RenderedMail

CRLF: Final = "\r\n"
_WIRE_POLICY: Final = MEMOIZING_POLICY.clone(linesep=CRLF)
_MAX_LINE: Final = _WIRE_POLICY.max_line_length or 78
_NEWLINES: Final = re.compile(r"\r\n|\r|\n")  # the generator's line-end rewriting
# headers new with every mail: folded, not kept
_UNIQUE: Final = frozenset({"Date", "Message-ID", "In-Reply-To", "References"})
_UNSTRUCTURED: Final = frozenset(
    {"Subject", "In-Reply-To", "References", "Auto-Submitted", "X-Auto-Response-Suppress"}
)
_PLAIN_TEXT: Final = re.compile(r"[!-~]+(?: [!-~]+)*")
_PLAIN_DATE: Final = re.compile(
    r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}"
)
_PLAIN_ID: Final = re.compile(
    r"<[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>"
)
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
_PLAIN_LOCAL: Final = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*")
_PLAIN_DOMAIN: Final = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def compose_bytes(
    mail: RenderedMail, envelope: Envelope, files: Mapping[str, bytes] | None = None
) -> bytes:
    """The mail ``compose`` builds, as the bytes it serializes to with CRLF line ends.

    Raises HeaderError as ``compose`` does.
    """
    headers = checked_headers(mail, envelope, files)
    digest = boundary_digest(envelope.message_id)
    out = []
    for name, value in headers:
        key = _key(value)
        line = _plain(name, key)
        if line is None:
            line = (_folded_now if name in _UNIQUE else _folded)(name, key)
        out.append(line)
    out.append(_folded("MIME-Version", "1.0"))
    if not envelope.attachments:
        out += _alternative(mail, digest)
        return "".join(out).encode("ascii", "surrogateescape")
    assert files is not None  # checked_headers refuses an attachment without its bytes
    mixed = f"=_mailproc_mixed_{digest}"
    # as for the alternative's, the parameter always goes on a line of its own
    out.append(f'Content-Type: multipart/mixed;{CRLF} boundary="{mixed}"{CRLF}')
    out.append(CRLF + f"--{mixed}" + CRLF)
    out += _alternative(mail, digest)
    for attachment in envelope.attachments:
        out.append(CRLF + f"--{mixed}" + CRLF)
        out.append(_attachment_headers(attachment.content_type, attachment.filename))
        data = files[attachment.sha256]
        out.append(_lines(_encode_base64(data, _MAX_LINE)))
    out.append(CRLF + f"--{mixed}--" + CRLF)
    return "".join(out).encode("ascii", "surrogateescape")


def _alternative(mail: RenderedMail, digest: str) -> list[str]:
    """The multipart/alternative of the text and the HTML, from its Content-Type on."""
    boundary = f"=_mailproc_{digest}"
    # the boundary is always this long: the parameter always goes on a line of its own
    out = [f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}']
    out.append(_folded("Content-Language", mail.locale))
    out.append(CRLF + f"--{boundary}" + CRLF)
    for index, (body, subtype) in enumerate(((mail.text, "plain"), (mail.html, "html"))):
        if index:
            out.append(CRLF + f"--{boundary}" + CRLF)
        out.append(_part_headers(subtype))
        _, payload = _encode_text(body, "utf-8", "quoted-printable", MEMOIZING_POLICY)
        out.append(_lines(payload))
    out.append(CRLF + f"--{boundary}--" + CRLF)
    return out


_Key = str | tuple[bool, tuple[tuple[str, str, str], ...]]


def _key(value: HeaderValue) -> _Key:
    """A hashable value that determines the header exactly: a string, or whether it is one
    address and the addresses' parts."""
    if isinstance(value, str):
        return value
    single = isinstance(value, HeaderAddress)
    addresses = [value] if isinstance(value, HeaderAddress) else value
    return single, tuple((a.display_name, a.username, a.domain) for a in addresses)


def _plain(name: str, key: _Key) -> str | None:
    """The header line of a value the email package writes as it is (plain ASCII words on
    one line, addresses of plain words), without parsing it; None for any other value."""
    if isinstance(key, tuple):
        value = ", ".join(
            (f"{d} <{u}@{h}>" if d else f"{u}@{h}")
            for d, u, h in key[1]
            if (not d or _PLAIN_NAME.fullmatch(d))
            and _PLAIN_LOCAL.fullmatch(u)
            and _PLAIN_DOMAIN.fullmatch(h)
        )
        if value.count("@") != len(key[1]):
            return None
    elif name in _UNSTRUCTURED:
        if "=?" in key or not _PLAIN_TEXT.fullmatch(key):
            return None
        value = key
    elif (name == "Date" and _PLAIN_DATE.fullmatch(key)) or (
        name == "Message-ID" and _PLAIN_ID.fullmatch(key)
    ):
        value = key
    else:
        return None
    line = f"{name}: {value}"
    return line + CRLF if len(line) <= _MAX_LINE else None


@functools.lru_cache(maxsize=4096)
def _folded(name: str, key: _Key) -> str:
    """A header as the generator writes it, CRLF-terminated; one folding per distinct value."""
    return _folded_now(name, key)


def _folded_now(name: str, key: _Key) -> str:
    """The same, for a value that is new every time (not kept)."""
    value: HeaderValue
    if isinstance(key, str):
        value = key
    else:
        single, parts = key
        addresses = [HeaderAddress(d, u, h) for d, u, h in parts]
        value = addresses[0] if single else addresses
    _, header = MEMOIZING_POLICY.header_store_parse(name, value)
    folded: bytes = _WIRE_POLICY.fold_binary(name, header)
    return folded.decode("ascii", "surrogateescape")


@functools.cache
def _part_headers(subtype: str) -> str:
    """The header block of a text part (with its blank line), as ``compose`` writes it."""
    part = EmailMessage(policy=MEMOIZING_POLICY)
    part.set_content("", subtype=subtype, charset="utf-8", cte="quoted-printable")
    del part["MIME-Version"]
    head = part.as_bytes(policy=_WIRE_POLICY).decode("ascii")
    return head[: head.index(CRLF + CRLF) + 4]


@functools.lru_cache(maxsize=1024)
def _attachment_headers(content_type: str, filename: str) -> str:
    """The header block of an attachment part (with its blank line), as ``compose`` writes
    it: it depends only on the type and the name, not on the bytes."""
    part = attachment_part(content_type, filename, b"")
    head = part.as_bytes(policy=_WIRE_POLICY).decode("ascii")
    return head[: head.index(CRLF + CRLF) + 4]


def _lines(payload: str) -> str:
    """A text payload with the generator's line ends (CRLF after every line)."""
    lines = _NEWLINES.split(payload)
    return CRLF.join(lines[:-1]) + (CRLF if len(lines) > 1 else "") + lines[-1]

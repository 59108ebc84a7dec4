"""Turn raw bytes into a ParsedMessage: decoded headers, body text, attachments, defects."""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import hashlib
import re
import unicodedata
from email import policy
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from mailproc.core.addresses import normalize_address, salvage_address
from mailproc.core.charsets import detect_charset
from mailproc.core.html_text import CONTROL_CHARS, html_to_text, tidy_text
from mailproc.core.limits import IntakeLimits, LimitExceeded, check_limits
from mailproc.core.model import Address, Attachment, ParsedMessage
from mailproc.core.rawmail import bare_message_id, header_start, split_header_block


class MemoizingPolicy(EmailPolicy):
    """policy.default, but a header value seen before is not parsed again.

    The stdlib re-parses Content-Type and friends on every ``get()`` and on every header
    set; header objects are immutable, so one parse per distinct (name, value) is enough,
    across messages too. Outbound composition uses it as well.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        return _parse_header(name.lower(), value)

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, str) and not hasattr(value, "name"):
            if _BREAKS.search(value):  # the stdlib's own refusal, with its message
                return super().header_store_parse(name, value)
            return name, _parse_header(name, value)
        return super().header_store_parse(name, value)


@functools.lru_cache(maxsize=8192)
def _parse_header(name: str, value: str) -> Any:
    return policy.default.header_fetch_parse(name, value)


MEMOIZING_POLICY = MemoizingPolicy()
_POLICY = MEMOIZING_POLICY
_HEADER_BREAKS = re.compile(r"[\r\n\x00]+")
_BREAKS = re.compile(r"[\r\n]")
_ANGLE_IDS = re.compile(r"<([^<>\s]{1,994})>")
_LANGUAGE_TAG = re.compile(r"^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$")
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
_MAX_DEFECTS = 50
_DETECT_SAMPLE = 64 * 1024  # bytes of an undeclared text part given to charset detection
_MAX_IDS = 100
_MAX_FILENAME = 150
_EARLIEST_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST_DATE = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def parse_message(raw: bytes, limits: IntakeLimits) -> ParsedMessage:
    """Parse one raw message after checking ``limits``; never raises on malformed content.

    Raises LimitExceeded for a message that is too large or too deep to parse safely.
    """
    check_limits(raw, limits)
    start, junk = header_start(raw) or (0, 0)
    message = _BoundedParser(limits).parse(raw[start:] if start else raw)
    defects: list[str] = []
    if junk:
        defects.append(f"{junk} line(s) before the header block skipped")
    charset = _header_charset(message, defects)
    headers = _decoded_headers(message, defects, charset)
    body_part, body_text, body_source = _body(message, defects)
    attachments = _attachments(message, body_part, limits.max_mime_depth, defects)
    _collect_mime_defects(message, defects)
    return ParsedMessage(
        message_id=_message_id(message),
        in_reply_to=_id_list(_raw_header(message, "In-Reply-To")),
        references=_id_list(_raw_header(message, "References")),
        from_=_senders(message, defects, charset),
        to=_addresses(message, "To", defects),
        cc=_addresses(message, "Cc", defects),
        reply_to=_addresses(message, "Reply-To", defects),
        subject=_single_line(
            _decode_words(_raw_value(message, "Subject") or "", "Subject", defects), charset
        ),
        date=_date(message, defects),
        content_language=_languages(_raw_header(message, "Content-Language")),
        content_type=message.get_content_type(),
        body_text=body_text,
        body_source=body_source,
        attachments=tuple(attachments),
        defects=tuple(dict.fromkeys(defects))[:_MAX_DEFECTS],
        headers=headers,
        mime=message,
    )


class _BoundedParser(BytesFeedParser):
    """The stdlib parser, counting the parts and nesting depth as it splits them.

    The raw-byte scan of ``check_limits`` is a cheap first look that a boundary written
    another way (RFC 2231 continuations, odd quoting) escapes; this count cannot be escaped,
    as it is the split itself. Parsing stops at the first part over a limit.
    """

    def __init__(self, limits: IntakeLimits) -> None:
        super().__init__(policy=_POLICY)
        self._limits = limits
        self._parts = 0

    def parse(self, raw: bytes) -> EmailMessage:
        """Parse ``raw``; raises LimitExceeded when it has too many or too deep parts."""
        self.feed(raw)
        message = self.close()
        assert isinstance(message, EmailMessage)
        return message

    def _new_message(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise LimitExceeded(f"message has more than {self._limits.max_parts} MIME parts")
        depth = len(self._msgstack)  # type: ignore[attr-defined]
        if depth > self._limits.max_mime_depth:
            raise LimitExceeded(f"MIME nesting depth exceeds {self._limits.max_mime_depth}")
        super()._new_message()  # type: ignore[misc]


def _raw_value(message: Message, name: str) -> str | None:
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _raw_header(message: Message, name: str) -> str:
    return clean_text(_raw_value(message, name) or "")


def _has_raw_8bit(value: str) -> bool:
    """True when a header carries undeclared 8-bit bytes (kept as surrogate escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def clean_text(value: str, charset: str | None = None) -> str:
    """Undo surrogate escapes (raw 8-bit bytes in headers): UTF-8 if it fits, else
    ``charset`` (the one detected for the message), else cp1252."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        data = value.encode("utf-8", "surrogateescape")
    for candidate in ("utf-8", charset):
        if candidate:
            try:
                return data.decode(candidate)
            except UnicodeDecodeError:
                continue
    return data.decode("cp1252", "replace")


def _single_line(value: str, charset: str | None = None) -> str:
    return _HEADER_BREAKS.sub(" ", clean_text(value, charset)).strip()


def _header_charset(message: EmailMessage, defects: list[str]) -> str | None:
    """The charset of raw 8-bit header text (declared by none): a charset the message
    declares for its text if the bytes fit it, else charset-normalizer's guess."""
    raw = [str(value) for _, value in message.raw_items()]
    data = b"\n".join(v.encode("utf-8", "surrogateescape") for v in raw if _has_raw_8bit(v))
    if not data:
        return None
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    declared = [c for c in message.get_charsets() if c and c not in ("us-ascii", "utf-8")]
    charset = next((c for c in declared if _decodes(data, c)), None) or detect_charset(data)
    if charset:
        defects.append(f"raw 8-bit header text read as {charset}")
    return charset


def _decodes(data: bytes, charset: str) -> bool:
    try:
        data.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return False
    except Exception:  # some codecs raise other errors on hostile bytes
        return False
    return True


def _decoded_headers(
    message: EmailMessage, defects: list[str], charset: str | None
) -> tuple[tuple[str, str], ...]:
    """Every header as (name, decoded single-line value), cheaply: RFC 2047 words only."""
    decoded = []
    for name, raw in message.raw_items():
        value = str(raw)
        if _HEADER_BREAKS.search(value.replace("\r\n", "").replace("\n", "")):
            defects.append(f"{name}: header value contains CR, LF or NUL")
        decoded.append(
            (clean_text(name), _single_line(_decode_words(value, name, defects), charset))
        )
    return tuple(decoded)


def _decode_words(value: str, name: str, defects: list[str]) -> str:
    """Decode RFC 2047 encoded words; raw 8-bit text is kept for clean_text to repair."""
    if "=?" not in value or _has_raw_8bit(value):
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception as exc:  # malformed encoded words
        defects.append(f"{name}: undecodable encoded word ({type(exc).__name__})")
        return value


def _message_id(message: Message) -> str | None:
    raw = _raw_header(message, "Message-ID")
    return bare_message_id(raw) if raw else None


def _id_list(raw: str) -> tuple[str, ...]:
    ids = _ANGLE_IDS.findall(raw)
    if not ids:
        ids = [token for token in raw.split() if "@" in token and "<" not in token]
    return tuple(dict.fromkeys(ids))[:_MAX_IDS]


def _senders(message: EmailMessage, defects: list[str], charset: str | None) -> tuple[Address, ...]:
    """The From addresses: every From header, an unambiguous address salvaged from a
    malformed one, the same address twice counted once (each oddity a defect)."""
    values = [str(v) for k, v in message.raw_items() if k.lower() == "from"]
    if len(values) > 1:
        defects.append(f"From: {len(values)} From headers")
    found: dict[str, Address] = {}
    unusable: list[Address] = []
    for value in values:
        for address in _address_list(value, "From", defects, charset) or [Address("", "")]:
            key = normalize_address(address.addr)
            if key is None:
                salvaged = _salvaged(value, address, charset)
                key = normalize_address(salvaged.addr) if salvaged else None
                if salvaged is None or key is None:
                    defects.append(f"From: no usable address in {_single_line(value)[:80]!r}")
                    unusable.append(address)
                    continue
                defects.append(
                    f"From: malformed address {_single_line(value)[:80]!r} read as {salvaged.addr}"
                )
                address = salvaged
            found.setdefault(key, address)
    addresses = [*found.values(), *(a for a in unusable if a.addr)]
    return tuple(addresses)


def _salvaged(value: str, parsed: Address, charset: str | None) -> Address | None:
    """The one address a malformed From value names, with its display name, else None."""
    text = _single_line(_decode_words(value, "From", []), charset)
    salvaged = salvage_address(text)
    if salvaged is None:
        return None
    if "<" in text:
        name = parsed.name or text.partition("<")[0]
    else:
        name = " ".join(t for t in text.split() if "@" not in t)
    return Address(name.strip().strip('"').strip(), salvaged.addr)


def _addresses(message: EmailMessage, name: str, defects: list[str]) -> tuple[Address, ...]:
    raw = _raw_value(message, name)
    if raw is None:
        return ()
    return tuple(_address_list(raw, name, defects, None))


def _address_list(raw: str, name: str, defects: list[str], charset: str | None) -> list[Address]:
    """The addresses of one address header value (empty ones left out)."""
    try:
        header = None if _has_raw_8bit(raw) else _POLICY.header_fetch_parse(name, raw)
        if isinstance(header, AddressHeader):
            found = [
                Address(_single_line(a.display_name), _single_line(a.addr_spec))
                for a in header.addresses
            ]
            return [a for a in found if a.addr]
    except Exception as exc:
        defects.append(f"{name}: unparsable address header ({type(exc).__name__})")
    pairs = getaddresses([clean_text(raw, charset)])
    return [Address(_single_line(n, charset), _single_line(a)) for n, a in pairs if a]


def utc_date(text: str) -> dt.datetime | None:
    """An RFC 5322 date-time as aware UTC (naive means UTC); None when it is not one."""
    try:
        parsed = parsedate_to_datetime(text.strip())
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _date(message: EmailMessage, defects: list[str]) -> dt.datetime | None:
    """The Date header in UTC; an unreadable or implausible date is dropped with a defect."""
    raw = _raw_header(message, "Date")
    if not raw:
        return None
    parsed = utc_date(raw)
    if parsed is None:
        defects.append("Date: unparsable date")
        return None
    if not _EARLIEST_DATE <= parsed < _LATEST_DATE:
        defects.append(f"Date: implausible date {parsed.isoformat()} ignored")
        return None
    return parsed


def _languages(value: str) -> tuple[str, ...]:
    tags = (tag.strip().lower() for tag in value.split(","))
    return tuple(tag for tag in tags if _LANGUAGE_TAG.match(tag))


def decode_text_part(part: Message, defects: list[str]) -> str:
    """Decode a text part's payload with its charset, falling back instead of failing."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    declared = part.get_content_charset()
    if declared is None and not payload.isascii() and not _decodes(payload, "utf-8"):
        detected = detect_charset(payload[:_DETECT_SAMPLE])
        if detected and _decodes(payload, detected):
            defects.append(f"text without a declared charset read as {detected}")
            return payload.decode(detected)
    charset = (declared or "us-ascii").strip().lower()
    try:
        codecs.lookup(charset)
    except LookupError:
        defects.append(f"unknown charset {charset!r}; decoded with a fallback")
        charset = ""
    if charset:
        try:
            return payload.decode(charset)
        except UnicodeDecodeError:
            defects.append(f"text is not valid {charset}; decoded with a fallback")
        except Exception as exc:  # some codecs (utf-7, custom) raise other errors
            defects.append(f"charset {charset!r} failed ({type(exc).__name__})")
    for fallback in _FALLBACK_CHARSETS:
        try:
            return payload.decode(fallback)
        except UnicodeDecodeError:
            continue
    return payload.decode("latin-1")


def _body(message: EmailMessage, defects: list[str]) -> tuple[Message | None, str, str]:
    """The body part chosen for reading, its text, and where it came from."""
    plain = _find_body(message, "plain", defects)
    if plain is not None:
        text = tidy_text(decode_text_part(plain, defects))
        if text.strip():
            return plain, text, "plain"
    html = _find_body(message, "html", defects)
    if html is not None:
        text = html_to_text(decode_text_part(html, defects))
        if text.strip():
            return html, clean_text(text), "html"
    return plain or html, "", "none"


def _find_body(message: EmailMessage, subtype: str, defects: list[str]) -> Message | None:
    try:
        return message.get_body(preferencelist=(subtype,))
    except Exception as exc:
        defects.append(f"body lookup failed ({type(exc).__name__})")
        return None


def _attachments(
    message: Message, body_part: Message | None, max_depth: int, defects: list[str]
) -> list[Attachment]:
    found: list[Attachment] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > max_depth:
            raise LimitExceeded(f"MIME nesting depth exceeds {max_depth}")
        content_type = part.get_content_type()
        if part.is_multipart() and content_type != "message/rfc822":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(
                    (child, depth + 1) for child in reversed(children) if isinstance(child, Message)
                )
            continue
        if part is body_part or _is_inline_text(part):
            continue
        found.append(_attachment(part, len(found) + 1, defects))
    return found


def _is_inline_text(part: Message) -> bool:
    return (
        part.get_content_maintype() == "text"
        and part.get_content_disposition() != "attachment"
        and not _safe_filename_param(part)
    )


def _safe_filename_param(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:
        return ""


def _attachment(part: Message, index: int, defects: list[str]) -> Attachment:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        inner = part.get_payload()
        inner_message = inner[0] if isinstance(inner, list) and inner else None
        content = inner_message.as_bytes() if isinstance(inner_message, Message) else b""
    else:
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
    return Attachment(
        filename=sanitize_filename(_safe_filename_param(part), content_type, index),
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )


_EXTENSIONS = {
    "message/rfc822": ".eml",
    "text/plain": ".txt",
    "text/html": ".html",
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "text/csv": ".csv",
}


def sanitize_filename(name: str, content_type: str, index: int) -> str:
    """A display-only file name: no paths, controls, bidi tricks or leading dots."""
    name = unicodedata.normalize("NFC", clean_text(name))
    name = _BIDI_AND_INVISIBLE.sub("", CONTROL_CHARS.sub("", _HEADER_BREAKS.sub("", name)))
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"\s+", " ", name).strip().lstrip(".").strip()
    if len(name) > _MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 10 else ""
        name = (stem if dot else name)[: _MAX_FILENAME - len(keep) - 1] + (
            f".{keep}" if keep else ""
        )
    return name or f"attachment-{index}{_EXTENSIONS.get(content_type, '.bin')}"


def _collect_mime_defects(message: EmailMessage, defects: list[str]) -> None:
    for part in message.walk():
        for defect in part.defects:
            defects.append(clean_text(f"{type(defect).__name__}: {defect}".strip().rstrip(":")))


def header_summary(raw: bytes) -> tuple[str, str]:
    """The decoded From and Subject of raw mail, read from its header block only (listings)."""
    header, _ = split_header_block(raw)
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(header)
    defects: list[str] = []

    def decoded(name: str) -> str:
        value = message.get(name)
        return _single_line(_decode_words(str(value), name, defects)) if value else ""

    return decoded("From"), decoded("Subject")

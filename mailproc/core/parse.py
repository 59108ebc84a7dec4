"""Turn raw bytes into a ParsedMessage: decoded headers, body text, attachments, defects."""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import hashlib
import re
import unicodedata
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from mailproc.core.limits import IntakeLimits, LimitExceeded, check_limits
from mailproc.core.model import Address, Attachment, ParsedMessage
from mailproc.core.rawmail import bare_message_id, split_header_block


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
_PARSER = BytesParser(policy=_POLICY)
_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=False, display_images=False)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADER_BREAKS = re.compile(r"[\r\n\x00]+")
_BREAKS = re.compile(r"[\r\n]")
_ANGLE_IDS = re.compile(r"<([^<>\s]{1,994})>")
_LANGUAGE_TAG = re.compile(r"^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$")
_BIDI_AND_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
_MAX_DEFECTS = 50
_MAX_IDS = 100
_MAX_FILENAME = 150


def parse_message(raw: bytes, limits: IntakeLimits) -> ParsedMessage:
    """Parse one raw message after checking ``limits``; never raises on malformed content.

    Raises LimitExceeded for a message that is too large or too deep to parse safely.
    """
    check_limits(raw, limits)
    message = _PARSER.parsebytes(raw)
    assert isinstance(message, EmailMessage)
    defects: list[str] = []
    headers = _decoded_headers(message, defects)
    body_part, body_text, body_source = _body(message, defects)
    attachments = _attachments(message, body_part, limits.max_mime_depth, defects)
    _collect_mime_defects(message, defects)
    return ParsedMessage(
        message_id=_message_id(message),
        in_reply_to=_id_list(_raw_header(message, "In-Reply-To")),
        references=_id_list(_raw_header(message, "References")),
        from_=_addresses(message, "From", defects),
        to=_addresses(message, "To", defects),
        cc=_addresses(message, "Cc", defects),
        reply_to=_addresses(message, "Reply-To", defects),
        subject=_single_line(
            _decode_words(_raw_value(message, "Subject") or "", "Subject", defects)
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


def html_to_text(html: str) -> str:
    """Render HTML as plain text; scripts, styles and markup never reach the result."""
    if not html.strip():
        return ""
    try:
        text = get_text(html, _HTML_CONFIG)
    except (ValueError, TypeError):  # lxml rejects some documents outright
        text = re.sub(r"<[^>]*>", " ", html)
    return _tidy(text)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", _CONTROL.sub("", text))


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


def clean_text(value: str) -> str:
    """Undo surrogate escapes (raw 8-bit bytes in headers): UTF-8 if it fits, else cp1252."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _single_line(value: str) -> str:
    return _HEADER_BREAKS.sub(" ", clean_text(value)).strip()


def _decoded_headers(message: EmailMessage, defects: list[str]) -> tuple[tuple[str, str], ...]:
    """Every header as (name, decoded single-line value), cheaply: RFC 2047 words only."""
    decoded = []
    for name, raw in message.raw_items():
        value = str(raw)
        if _HEADER_BREAKS.search(value.replace("\r\n", "").replace("\n", "")):
            defects.append(f"{name}: header value contains CR, LF or NUL")
        decoded.append((clean_text(name), _single_line(_decode_words(value, name, defects))))
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


def _addresses(message: EmailMessage, name: str, defects: list[str]) -> tuple[Address, ...]:
    raw = _raw_value(message, name)
    if raw is None:
        return ()
    try:
        header = None if _has_raw_8bit(raw) else _POLICY.header_fetch_parse(name, raw)
        if isinstance(header, AddressHeader):
            found = [
                Address(_single_line(a.display_name), _single_line(a.addr_spec))
                for a in header.addresses
            ]
            return tuple(a for a in found if a.addr)
    except Exception as exc:
        defects.append(f"{name}: unparsable address header ({type(exc).__name__})")
    pairs = getaddresses([_raw_header(message, name)])
    return tuple(Address(_single_line(n), _single_line(a)) for n, a in pairs if a)


def _date(message: EmailMessage, defects: list[str]) -> dt.datetime | None:
    raw = _raw_header(message, "Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("Date: unparsable date")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _languages(value: str) -> tuple[str, ...]:
    tags = (tag.strip().lower() for tag in value.split(","))
    return tuple(tag for tag in tags if _LANGUAGE_TAG.match(tag))


def decode_text_part(part: Message, defects: list[str]) -> str:
    """Decode a text part's payload with its charset, falling back instead of failing."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "us-ascii").strip().lower()
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
        text = _tidy(decode_text_part(plain, defects))
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
    name = _BIDI_AND_INVISIBLE.sub("", _CONTROL.sub("", _HEADER_BREAKS.sub("", name)))
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

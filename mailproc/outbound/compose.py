"""Outbound message composition: checked headers, threading, ticket tag, multipart text + HTML."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from typing import Final

from mailproc.core.addresses import has_forbidden_chars, normalize_address, normalize_domain
from mailproc.core.model import Address
from mailproc.core.parse import MEMOIZING_POLICY
from mailproc.outbound.render import RenderedMail, ticket_tag

MAX_REFERENCES: Final = 20

_TICKET_TAG = re.compile(r"\[\s*ticket\s*#\s*\d+\s*\]", re.IGNORECASE)
_REPEATED_RE = re.compile(r"^(?:re\s*:\s*){2,}", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"^[^<>\s\x00-\x1f\x7f]{1,994}$")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_RANDOM_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class HeaderError(ValueError):
    """A header value is unsafe or malformed: CR, LF or NUL, a bad address, id or date.

    Permanent: the same input never makes a valid message, so do not retry.
    """


class AutoSubmitted(StrEnum):
    """RFC 3834 ``Auto-Submitted`` value of an outbound mail."""

    AUTO_REPLIED = "auto-replied"  # an answer to a mail someone sent
    AUTO_GENERATED = "auto-generated"  # scheduled or triggered by a timer
    NO = "no"  # a person wrote it (an agent's reply): no Auto-Submitted header


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """A stored attachment sent with a mail: its bytes are the blob of ``sha256``."""

    sha256: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything about one outbound mail except its content; message ids are bare (no <>)."""

    sender: Address
    to: tuple[Address, ...]
    reply_to: Address
    message_id: str
    date: dt.datetime
    auto_submitted: AutoSubmitted
    ticket_number: int | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    cc: tuple[Address, ...] = ()
    attachments: tuple[AttachmentRef, ...] = ()


@dataclass(frozen=True, slots=True)
class InlineImage:
    """A PNG the HTML part shows as ``<img src="cid:{content_id}">`` (``content_id`` bare)."""

    content_id: str
    data: bytes
    filename: str


def make_message_id(outbound_key: str, random_part: str, domain: str) -> str:
    """The bare Message-ID ``<key>.<random>@<domain>`` of one outbound mail.

    ``outbound_key`` is the outbox row's unique key (readable in logs; characters outside
    ``[A-Za-z0-9._+-]`` become ``-``); ``random_part`` is drawn once when the row is written
    (e.g. ``secrets.token_hex(8)``) and stored with it, so retries reuse the id and outsiders
    cannot guess it.
    """
    key = _KEY_UNSAFE.sub("-", outbound_key).strip(".-")[:100]
    if not key:
        raise HeaderError(f"outbound key {outbound_key!r} has no usable characters")
    if not _RANDOM_PART.match(random_part):
        raise HeaderError(f"random part {random_part!r} must be 1-64 of [A-Za-z0-9_-]")
    canonical_domain = normalize_domain(domain)
    if canonical_domain is None:
        raise HeaderError(f"{domain!r} is not a valid domain for a Message-ID")
    return f"{key}.{random_part}@{canonical_domain}"


def tag_subject(subject: str, ticket_number: int | None) -> str:
    """The subject with exactly one ``[Ticket #N]`` tag in front (no tag for None).

    Any ticket tag already in the subject is removed first, and a stack of ``Re:`` prefixes
    left by replies is collapsed to one.
    """
    cleaned = " ".join(_TICKET_TAG.sub(" ", subject).split())
    cleaned = _REPEATED_RE.sub("Re: ", cleaned)
    if ticket_number is None:
        return cleaned
    return f"{ticket_tag(ticket_number)} {cleaned}".rstrip()


def compose(
    mail: RenderedMail,
    envelope: Envelope,
    images: Sequence[InlineImage] = (),
    files: Mapping[str, bytes] | None = None,
) -> EmailMessage:
    """Build the multipart/alternative message (inside multipart/mixed with the envelope's
    attachments, their bytes from ``files`` by hash); every header value is checked first.

    With ``images``, the HTML alternative is a multipart/related: the HTML, then one inline
    part per image under its Content-ID (RFC 2387).

    Raises HeaderError, before anything is built, when a header value holds CR, LF or NUL,
    an address or message id is malformed, the date is naive, or an attachment's bytes are
    missing.
    """
    headers = checked_headers(mail, envelope, files)
    message = EmailMessage(policy=MEMOIZING_POLICY)
    for name, value in headers:
        message[name] = value
    message["MIME-Version"] = "1.0"
    digest = boundary_digest(envelope.message_id)
    message.make_alternative(boundary=f"=_mailproc_{digest}")
    message["Content-Language"] = mail.locale
    for body, subtype in ((mail.text, "plain"), (mail.html, "html")):
        part = EmailMessage(policy=MEMOIZING_POLICY)
        part.set_content(body, subtype=subtype, charset="utf-8", cte="quoted-printable")
        del part["MIME-Version"]  # set_content adds it; only the top level carries it
        if subtype == "html" and images:
            part.make_related(boundary=f"=_mailproc_related_{digest}")
            for image in images:
                part.attach(_inline(image))
        message.attach(part)
    if envelope.attachments and files is not None:
        message.make_mixed(boundary=f"=_mailproc_mixed_{digest}")
        for attachment in envelope.attachments:
            data = files[attachment.sha256]
            message.attach(attachment_part(attachment.content_type, attachment.filename, data))
    return message


HeaderValue = str | HeaderAddress | list[HeaderAddress]


def checked_headers(
    mail: RenderedMail, envelope: Envelope, files: Mapping[str, bytes] | None = None
) -> list[tuple[str, HeaderValue]]:
    """The top-level headers of the mail before its MIME headers, in order, every value
    checked (raises HeaderError; see ``compose``)."""
    for attachment in envelope.attachments:
        _check_text("attachment filename", attachment.filename)
        _check_text("attachment type", attachment.content_type)
        if files is None or attachment.sha256 not in files:
            raise HeaderError(f"attachment {attachment.filename!r}: its bytes are not stored")
    _check_text("Subject", mail.subject)
    subject = tag_subject(mail.subject, envelope.ticket_number)
    _check_text("Content-Language", mail.locale)
    sender = _mailbox("From", envelope.sender)
    to = [_mailbox("To", address) for address in envelope.to]
    cc = [_mailbox("Cc", address) for address in envelope.cc]
    reply_to = _mailbox("Reply-To", envelope.reply_to)
    if not to:
        raise HeaderError("To: at least one recipient is required")
    message_id = _message_id("Message-ID", envelope.message_id)
    if "@" not in envelope.message_id:
        raise HeaderError(f"Message-ID: {envelope.message_id!r} has no @domain")
    in_reply_to = _message_id("In-Reply-To", envelope.in_reply_to) if envelope.in_reply_to else None
    references = _references(envelope.references, envelope.in_reply_to)
    if envelope.date.tzinfo is None:
        raise HeaderError("Date: a naive datetime; give an aware one")
    headers: list[tuple[str, HeaderValue]] = [("From", sender), ("To", to)]
    if cc:
        headers.append(("Cc", cc))
    headers += [
        ("Reply-To", reply_to),
        ("Subject", subject),
        ("Date", format_datetime(envelope.date)),
        ("Message-ID", message_id),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    if references:
        headers.append(("References", references))
    if envelope.auto_submitted is not AutoSubmitted.NO:
        headers.append(("Auto-Submitted", str(envelope.auto_submitted)))
        headers.append(("X-Auto-Response-Suppress", "All"))
    return headers


def boundary_digest(message_id: str) -> str:
    """The per-mail part of the MIME boundaries: "=_" never occurs in quoted-printable text;
    hashing the id keeps output reproducible."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


def _inline(image: InlineImage) -> EmailMessage:
    part = EmailMessage(policy=MEMOIZING_POLICY)
    part.set_content(
        image.data,
        maintype="image",
        subtype="png",
        disposition="inline",
        filename=image.filename,
        cid=_message_id("Content-ID", image.content_id),
    )
    del part["MIME-Version"]
    return part


def attachment_part(content_type: str, filename: str, data: bytes) -> EmailMessage:
    """One attachment, sent as bytes of its declared type (base64)."""
    maintype, _, subtype = content_type.partition("/")
    if not (maintype and subtype) or maintype == "multipart":
        maintype, subtype = "application", "octet-stream"
    part = EmailMessage(policy=MEMOIZING_POLICY)
    part.set_content(
        data,
        maintype=maintype,
        subtype=subtype,
        disposition="attachment",
        filename=filename or "attachment",
    )
    del part["MIME-Version"]
    return part


def _check_text(field: str, value: str) -> None:
    if has_forbidden_chars(value):
        raise HeaderError(f"{field}: CR, LF or NUL in {value!r}")


def _mailbox(field: str, address: Address) -> HeaderAddress:
    """A header mailbox from a checked display name and a checked, IDNA-encoded address."""
    _check_text(field, address.name)
    _check_text(field, address.addr)
    canonical = normalize_address(address.addr)
    if canonical is None:
        raise HeaderError(f"{field}: {address.addr!r} is not a valid mail address")
    local = address.addr.strip().removeprefix("<").removesuffix(">").strip().rsplit("@", 1)[0]
    if not local.isascii():
        raise HeaderError(f"{field}: {address.addr!r} needs SMTPUTF8 (non-ASCII local part)")
    return HeaderAddress(display_name=address.name, username=local, domain=canonical.split("@")[1])


def _message_id(field: str, value: str) -> str:
    """``<id>`` from a bare message id, after checking it."""
    _check_text(field, value)
    if not _MESSAGE_ID.match(value):
        raise HeaderError(f"{field}: {value!r} is not a message id")
    return f"<{value}>"


def _references(references: tuple[str, ...], in_reply_to: str | None) -> str:
    """The References value: the thread plus the parent, deduplicated, first and latest kept."""
    ids = list(dict.fromkeys((*references, *((in_reply_to,) if in_reply_to else ()))))
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1) :]]
    return " ".join(_message_id("References", value) for value in ids)

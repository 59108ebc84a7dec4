"""The transactional outbox: queue mail in the caller's transaction (claims: attempts.py).

These functions run inside a transaction the caller opens and commits; none talks to the network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import IntEnum, StrEnum
from functools import cache
from typing import Any, Final

from sqlalchemy import Insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.config_transport import OutboxSettings
from mailproc.core.addresses import normalize_address
from mailproc.core.rawmail import bare_message_id
from mailproc.outbound.build import (
    ENVELOPE,
    attachment_files,
    build,
    context_adapter,
    store_built,
)
from mailproc.outbound.compose import Envelope, HeaderError
from mailproc.outbound.contexts import TEMPLATES, TemplateContext
from mailproc.outbound.render import Renderer
from mailproc.outbound.values import Audience
from mailproc.store.models import MessageRecord, Outbox, OutboxRecipient
from mailproc.store.staged import (
    StagedRows,
    current_scope,
    insert_rows,
    plain_insert,
    scope_chain,
    table_of,
)

NOT_AUTOMATIC: Final = "no"
AUTO_SUBMITTED_VALUES: Final = frozenset({NOT_AUTOMATIC, "auto-replied", "auto-generated"})
MAX_KEY_LENGTH: Final = 200


class OutboxStatus(StrEnum):
    """Where an outbound mail (or one of its recipients) stands."""

    PENDING = "pending"  # waiting for its next attempt
    SENDING = "sending"  # claimed by a deliverer until ``next_attempt_at`` (the lease)
    SENT = "sent"  # accepted by the relay (a row: for at least one recipient)
    FAILED = "failed"  # given up, ``last_error`` / ``reason`` says why


def retry_deadline(now: dt.datetime, settings: OutboxSettings) -> dt.datetime:
    """The time after which a mail queued ``now`` is no longer retried."""
    return now + dt.timedelta(hours=settings.retry_deadline_hours)


def envelope_sender(settings: Settings) -> str:
    """The SMTP envelope sender (bounces go there): ``relay.envelope_sender`` or support's."""
    return settings.relay.envelope_sender or settings.support.addresses[0]


def queue_mail(
    session: Session,
    *,
    key: str,
    ticket_id: int | None,
    template: str,
    locale: str,
    message: EmailMessage,
    envelope_from: str,
    recipients: Iterable[str],
    auto_submitted: str,
    now: dt.datetime,
    deadline: dt.datetime,
) -> bool:
    """Queue a composed mail under the idempotency ``key``; False if that key was queued before.

    The bytes are stored as they go on the wire (CRLF), so every retry sends the same. The mail
    is also recorded in the ticket's thread (a ``messages`` row, direction ``out``) so that
    replies find their ticket by In-Reply-To. ``envelope_from`` may be empty (null sender).
    Raises HeaderError or ValueError for a mail that could never be sent. Never commits.
    """
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"outbox key must have 1 to {MAX_KEY_LENGTH} characters: {key!r}")
    message_id = bare_message_id(str(message.get("Message-ID", "")))
    if message_id is None:
        raise HeaderError("the message has no usable Message-ID")
    declared = str(message.get("Auto-Submitted", NOT_AUTOMATIC))
    if auto_submitted not in AUTO_SUBMITTED_VALUES or str(auto_submitted) != declared:
        raise ValueError(f"auto_submitted {auto_submitted!r} but the message says {declared!r}")
    envelope_to = list(dict.fromkeys(_smtp_address(address) for address in recipients))
    return _insert_row(
        session,
        key=key,
        ticket_id=ticket_id,
        template=template,
        locale=locale,
        message_id=message_id,
        envelope_from=envelope_from,
        raw=message.as_bytes(policy=message.policy.clone(linesep="\r\n")),
        context=None,
        envelope=None,
        auto_submitted=declared,
        recipients=envelope_to,
        thread=_thread_record(message, message_id, ticket_id, now),
        now=now,
        deadline=deadline,
    )


def queue_deferred(
    session: Session,
    *,
    key: str,
    ticket_id: int | None,
    locale: str,
    context: TemplateContext,
    envelope: Envelope,
    envelope_from: str,
    now: dt.datetime,
    deadline: dt.datetime,
) -> bool:
    """Queue a mail to be rendered by the deliverer; False if ``key`` was queued before.

    Intake stays fast: the template context and envelope are stored as JSON, and the mail is
    rendered and composed once, at its first delivery attempt (then kept for retries). The
    Message-ID is fixed now, and the thread record is written at once, so a reply threads even
    before delivery. The context names its template.
    """
    template = context.template
    envelope_to = list(dict.fromkeys(_smtp_address(a.addr) for a in (*envelope.to, *envelope.cc)))
    thread = {
        "ticket_id": ticket_id,
        "direction": "out",
        "message_id": envelope.message_id,
        "in_reply_to": [envelope.in_reply_to] if envelope.in_reply_to else [],
        "references": list(envelope.references),
        "from_address": normalize_address(envelope.sender.addr),
        "from_name": envelope.sender.name,
        "to": [[a.name, a.addr] for a in envelope.to],
        "cc": [[a.name, a.addr] for a in envelope.cc],
        "reply_to": [[envelope.reply_to.name, envelope.reply_to.addr]],
        "subject": "",
        "sent_at": envelope.date,
        "content_language": locale,
        "body_text": "",
        "body_source": "none",
        "new_text": "",
        "created_at": now,
    }
    return _insert_row(
        session,
        key=key,
        ticket_id=ticket_id,
        template=template,
        locale=locale,
        message_id=envelope.message_id,
        envelope_from=envelope_from,
        raw=None,
        context=context_adapter(template).dump_python(context, mode="json"),
        envelope=ENVELOPE.dump_python(envelope, mode="json"),
        auto_submitted=str(envelope.auto_submitted),
        recipients=envelope_to,
        thread=thread,
        now=now,
        deadline=deadline,
    )


class Lane(IntEnum):
    """The delivery lane of a mail: customer-facing mail is claimed before internal mail."""

    CUSTOMER = 0
    INTERNAL = 1


def lane_of(template: str) -> Lane:
    """A template's lane, from its context's audience; mail built without a context (the
    scheduled reports) is internal."""
    context = TEMPLATES.get(template)
    customer = context is not None and context.audience == Audience.CUSTOMER
    return Lane.CUSTOMER if customer else Lane.INTERNAL


def materialize(session: Session, row: Outbox, renderer: Renderer) -> None:
    """Render and compose a deferred row once; its thread record gets subject and text.

    Raises RenderError or HeaderError (permanent) when the mail cannot be built.
    """
    if row.raw is not None:
        return
    files = attachment_files(session, [row.envelope])
    built = build(row.id, row.template, row.locale, row.context, row.envelope, renderer, files)
    row.raw = built.raw
    store_built(session, {row.message_id: built})


_OUTBOX: Final = table_of(Outbox)
_RECIPIENTS: Final = table_of(OutboxRecipient)


def _insert_row(
    session: Session,
    *,
    key: str,
    ticket_id: int | None,
    template: str,
    locale: str,
    message_id: str,
    envelope_from: str,
    raw: bytes | None,
    context: dict[str, Any] | None,
    envelope: dict[str, Any] | None,
    auto_submitted: str,
    recipients: list[str],
    thread: dict[str, Any],
    now: dt.datetime,
    deadline: dt.datetime,
) -> bool:
    """Queue an outbox row, its recipients and its thread record unless ``key`` exists.

    Outside a staging scope the row is inserted at once and the answer is exact. Inside one
    (a processing batch) the rows are staged: a key staged earlier in the scope is refused
    here, and a key already in the database is skipped when the rows are written (the
    recipients and thread record go in only with a row that went in), so a mail is never
    queued twice. Staged automatic mail counts in ``recent_auto_replies`` at once.
    """
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"outbox key must have 1 to {MAX_KEY_LENGTH} characters: {key!r}")
    if not recipients:
        raise HeaderError("at least one envelope recipient is required")
    row = {
        "key": key,
        "ticket_id": ticket_id,
        "template": template,
        "locale": locale,
        "message_id": message_id,
        "envelope_from": _smtp_address(envelope_from) if envelope_from else "",
        "raw": raw,
        "context": context,
        "envelope": envelope,
        "auto_submitted": auto_submitted,
        "status": OutboxStatus.PENDING,
        "lane": lane_of(template),
        "attempts": 0,
        "next_attempt_at": now,
        "deadline_at": deadline,
        "created_at": now,
    }
    entry = {
        "row": row,
        "recipients": recipients,
        "thread": {**_THREAD_DEFAULTS, **thread},
    }
    scope = current_scope(session)
    if scope is None:
        return key in _NEW_MAIL.insert(session, [entry])
    if any(key in _staged_mail(s).keys for s in scope_chain(session)):
        return False
    scope.add(_NEW_MAIL, entry)
    staged = _staged_mail(scope)
    staged.keys.add(key)
    if auto_submitted != NOT_AUTOMATIC:
        for address in recipients:
            staged.automatic.setdefault(address, []).append(now)
    return True


class _NewMailWriter:
    """Writes outbox rows set-based: the rows whose key is new, then only their recipients and
    thread records (keyed by the ids the database gave them)."""

    def insert(self, session: Session, entries: list[dict[str, Any]]) -> set[str]:
        """Insert the entries whose key is new, with their dependents; the keys inserted.

        A row went in when the stored row of its key carries its Message-ID (each mail gets
        a fresh one), so one query after the insert names them all.
        """
        connection = session.connection()
        rows = [entry["row"] for entry in entries]
        connection.execute(_insert_if_new_key(connection.dialect.name), rows)
        ours = {row["key"]: row["message_id"] for row in rows}
        stored = connection.execute(
            select(_OUTBOX.c.id, _OUTBOX.c.key, _OUTBOX.c.message_id).where(
                _OUTBOX.c.key.in_(list(ours))
            )
        )
        ids = {key: id_ for id_, key, message_id in stored if ours[key] == message_id}
        new = [entry for entry in entries if entry["row"]["key"] in ids]
        recipients = [
            {
                "outbox_id": ids[entry["row"]["key"]],
                "address": address,
                "status": OutboxStatus.PENDING.value,
                "reason": "",
            }
            for entry in new
            for address in entry["recipients"]
        ]
        if new:  # every mail has at least one recipient
            insert_rows(session, plain_insert(OutboxRecipient), recipients)
            insert_rows(session, plain_insert(MessageRecord), [entry["thread"] for entry in new])
        return set(ids)

    def write(self, session: Session, rows: list[dict[str, Any]]) -> None:
        self.insert(session, rows)


_NEW_MAIL: Final = _NewMailWriter()


@dataclass
class _StagedMail:
    """Mail staged in one scope: its keys, and when automatic mail went to each address."""

    keys: set[str] = field(default_factory=set)
    automatic: dict[str, list[dt.datetime]] = field(default_factory=dict)
    # automatic mail already stored, loaded for many addresses at once, and since when
    stored: dict[str, list[dt.datetime]] = field(default_factory=dict)
    stored_since: dt.datetime | None = None


def _staged_mail(scope: StagedRows) -> _StagedMail:
    found: _StagedMail = scope.memo.setdefault("outbox", _StagedMail())
    return found


_THREAD_DEFAULTS: Final[Mapping[str, Any]] = {
    "quoted_text": "",
    "content_hash": "",
    "defects": [],
    "sender_kind": "unknown",
}


def recent_auto_replies(session: Session, address: str, since: dt.datetime) -> list[dt.datetime]:
    """When automatic mails (Auto-Submitted not ``no``) were queued to ``address`` since then.

    Includes mail staged in open staging scopes, not yet written; answers from what
    ``load_recent_auto_replies`` loaded for the scope when it covers the address.
    """
    normalized = normalize_address(address)
    if normalized is None:
        return []
    scopes = list(scope_chain(session))
    loaded = next(
        (
            m.stored[normalized]
            for m in map(_staged_mail, scopes)
            if normalized in m.stored and m.stored_since is not None and m.stored_since <= since
        ),
        None,
    )
    stored = (
        _stored_auto_replies(session, [normalized], since).get(normalized, [])
        if loaded is None
        else loaded
    )
    staged = (at for m in map(_staged_mail, scopes) for at in m.automatic.get(normalized, ()))
    return sorted(at for at in (*stored, *staged) if at >= since)


def load_recent_auto_replies(
    session: Session, addresses: Iterable[str], since: dt.datetime
) -> None:
    """Load for the current staging scope, in one query, the automatic mail stored since
    ``since`` to these addresses, so that ``recent_auto_replies`` needs no query for them."""
    scope = current_scope(session)
    wanted = {n for n in map(normalize_address, addresses) if n is not None}
    if scope is None or not wanted:
        return
    staged = _staged_mail(scope)
    staged.stored = {address: [] for address in wanted}
    staged.stored.update(_stored_auto_replies(session, wanted, since))
    staged.stored_since = since


# Transaction-scoped advisory locks, taken in one order (of the keys) so workers never deadlock.
_LOCK_ADDRESSES = sql_text(
    "SELECT pg_advisory_xact_lock(key) FROM"
    " (SELECT DISTINCT hashtext(address) AS key FROM unnest(CAST(:addresses AS text[])) AS address"
    " ORDER BY key) AS keys"
)


def _stored_auto_replies(
    session: Session, addresses: Iterable[str], since: dt.datetime
) -> dict[str, list[dt.datetime]]:
    found: dict[str, list[dt.datetime]] = {}
    wanted = sorted(addresses)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One counter at a time per address, until this transaction ends: a concurrent
        # worker counts only after this one's automatic mail is committed (or rolled back).
        connection.execute(_LOCK_ADDRESSES, {"addresses": wanted})
    rows = connection.execute(
        select(_RECIPIENTS.c.address, _OUTBOX.c.created_at)
        .join(_RECIPIENTS, _RECIPIENTS.c.outbox_id == _OUTBOX.c.id)
        .where(
            _RECIPIENTS.c.address.in_(wanted),
            _OUTBOX.c.auto_submitted != NOT_AUTOMATIC,
            _OUTBOX.c.created_at >= since,
        )
    )
    for address, created_at in rows:
        found.setdefault(address, []).append(created_at)
    return found


@cache
def _insert_if_new_key(dialect: str) -> Insert:
    """INSERT into the outbox that does nothing when the key exists (any other conflict raises)."""
    module = postgresql if dialect == "postgresql" else sqlite
    statement: Insert = module.insert(_OUTBOX).on_conflict_do_nothing(
        index_elements=[_OUTBOX.c.key]
    )
    return statement


def _smtp_address(address: str) -> str:
    """A normalized address SMTP can carry without SMTPUTF8; HeaderError otherwise."""
    normalized = normalize_address(address)
    if normalized is None or not normalized.isascii():
        raise HeaderError(f"{address!r} is not an address the relay can deliver to")
    return normalized


def _thread_record(
    message: EmailMessage, message_id: str, ticket_id: int | None, now: dt.datetime
) -> dict[str, Any]:
    """The ``messages`` row of an outbound mail, built from its headers and text part."""
    sender = _mailboxes(message, "From")
    body = message.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    date: Any = message.get("Date")
    return {
        "ticket_id": ticket_id,
        "direction": "out",
        "message_id": message_id,
        "in_reply_to": _message_ids(message, "In-Reply-To"),
        "references": _message_ids(message, "References"),
        "from_address": normalize_address(sender[0][1]) if sender else None,
        "from_name": sender[0][0] if sender else "",
        "to": _mailboxes(message, "To"),
        "cc": _mailboxes(message, "Cc"),
        "reply_to": _mailboxes(message, "Reply-To"),
        "subject": str(message.get("Subject", "")),
        "sent_at": getattr(date, "datetime", None),
        "content_language": str(message.get("Content-Language", ""))[:64],
        "body_text": text,
        "body_source": "plain" if text else "none",
        "new_text": text,
        "created_at": now,
    }


def _mailboxes(message: EmailMessage, name: str) -> list[list[str]]:
    header: Any = message.get(name)
    return [[a.display_name, a.addr_spec] for a in getattr(header, "addresses", ())]


def _message_ids(message: EmailMessage, name: str) -> list[str]:
    found = (bare_message_id(token) for token in str(message.get(name, "")).split())
    return [message_id for message_id in found if message_id]

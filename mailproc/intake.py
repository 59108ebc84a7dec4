"""Durable raw intake: store each message's bytes and envelope once, before anyone says OK.

Every entry point (``mailproc ingest``, the SMTP/LMTP listener, the IMAP poller) calls
``store_batch`` inside a transaction and acknowledges only after that transaction commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailproc.core.addresses import has_forbidden_chars
from mailproc.core.rawmail import find_message_id
from mailproc.store.models import Base, Blob, Inbound

SOURCES = frozenset({"smtp", "lmtp", "imap", "file", "maildir", "mbox", "stdin"})
_MAX_ENVELOPE_FIELD = 998


@dataclass(frozen=True, slots=True)
class Envelope:
    """How a message reached us: channel, a reference within it, SMTP envelope if known."""

    source: str
    source_ref: str | None = None
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown intake source {self.source!r}")


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing one raw message."""

    inbound_id: int
    duplicate: bool
    message_id: str | None
    message_id_conflict: bool


def insert_ignoring_duplicates(session: Session, table: type[Base]) -> Insert:
    """An INSERT that skips rows whose unique key already exists (SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def store_blob(session: Session, data: bytes, sha256: str | None = None) -> str:
    """Store bytes under their SHA-256 unless already there; return the hash."""
    digest = sha256 or hashlib.sha256(data).hexdigest()
    session.execute(
        insert_ignoring_duplicates(session, Blob),
        {"sha256": digest, "size": len(data), "data": data},
    )
    return digest


def store_batch(
    session: Session, items: Sequence[tuple[bytes, Envelope]], received_at: dt.datetime
) -> list[Stored]:
    """Store raw messages with their envelopes in the caller's transaction.

    The same bytes twice are stored once (the second is reported as a duplicate); the same
    Message-ID with different bytes is stored as its own message and flagged. Nothing is
    durable until the caller commits. A batch costs a handful of statements, not one per mail.
    """
    digests = [hashlib.sha256(raw).hexdigest() for raw, _ in items]
    message_ids = [find_message_id(raw) for raw, _ in items]
    existing: dict[str, int] = dict(
        session.execute(
            select(Inbound.raw_sha256, Inbound.id).where(Inbound.raw_sha256.in_(set(digests)))
        ).all()
    )
    wanted_ids = {mid for mid in message_ids if mid}
    known_ids = set(
        session.scalars(select(Inbound.message_id).where(Inbound.message_id.in_(wanted_ids)))
        if wanted_ids
        else ()
    )
    new_rows: dict[str, dict[str, object]] = {}
    for (raw, envelope), digest, message_id in zip(items, digests, message_ids, strict=True):
        if digest in existing or digest in new_rows:
            continue
        new_rows[digest] = _inbound_row(
            raw, digest, envelope, message_id, message_id in known_ids, received_at
        )
        if message_id:
            known_ids.add(message_id)
    inserted = _insert_new(session, items, digests, new_rows)
    fresh = set(inserted)
    existing.update(inserted)
    raced = [d for d in new_rows if d not in existing]
    if raced:  # another process stored the same bytes a moment ago
        existing.update(
            session.execute(
                select(Inbound.raw_sha256, Inbound.id).where(Inbound.raw_sha256.in_(raced))
            ).all()
        )
    results: list[Stored] = []
    for digest, message_id in zip(digests, message_ids, strict=True):
        first = digest in fresh
        fresh.discard(digest)
        conflict = first and bool(new_rows[digest]["message_id_conflict"])
        results.append(Stored(existing[digest], not first, message_id, conflict))
    return results


def _inbound_row(
    raw: bytes,
    digest: str,
    envelope: Envelope,
    message_id: str | None,
    conflict: bool,
    received_at: dt.datetime,
) -> dict[str, object]:
    return {
        "raw_sha256": digest,
        "size": len(raw),
        "message_id": message_id,
        "message_id_conflict": conflict,
        "source": envelope.source,
        "source_ref": _clean(envelope.source_ref),
        "envelope_from": _clean(envelope.mail_from),
        "envelope_to": [c for c in (_clean(r) for r in envelope.rcpt_to) if c],
        "received_at": received_at,
        "status": "pending",
        "attempts": 0,
    }


def _insert_new(
    session: Session,
    items: Sequence[tuple[bytes, Envelope]],
    digests: list[str],
    new_rows: dict[str, dict[str, object]],
) -> dict[str, int]:
    """Insert blobs and inbound rows with one statement each; return digest → new id."""
    if not new_rows:
        return {}
    raw_by_digest = {d: raw for (raw, _), d in zip(items, digests, strict=True) if d in new_rows}
    session.execute(
        insert_ignoring_duplicates(session, Blob),
        [{"sha256": d, "size": len(raw), "data": raw} for d, raw in raw_by_digest.items()],
    )
    statement = insert_ignoring_duplicates(session, Inbound).returning(
        Inbound.raw_sha256, Inbound.id, sort_by_parameter_order=True
    )
    rows = session.execute(statement, list(new_rows.values())).all()
    return {digest: inbound_id for digest, inbound_id in rows}


def _clean(value: str | None) -> str | None:
    """Envelope values are data from the network: no line breaks, bounded length."""
    if value is None:
        return None
    if has_forbidden_chars(value):
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value[:_MAX_ENVELOPE_FIELD]

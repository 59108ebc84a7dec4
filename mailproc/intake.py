"""Durable raw intake: store each message's bytes and envelope once, before anyone says OK.

Every entry point (``mailproc ingest``, the SMTP/LMTP listener, the IMAP poller) calls
``store_batch`` inside a transaction and acknowledges only after that transaction commits.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Dialect, Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailproc.core.addresses import has_forbidden_chars
from mailproc.core.rawmail import find_message_id
from mailproc.store.models import Base, Blob, Inbound

SOURCES = frozenset({"smtp", "lmtp", "imap", "file", "maildir", "mbox", "stdin"})
_MAX_ENVELOPE_FIELD = 998
_CHUNK = 1000  # messages per statement: parameters stay under SQLite's and PostgreSQL's caps
_FIND = "SELECT raw_sha256, id, message_id FROM inbound"
_INBOUND_COLUMNS = (
    "raw_sha256",
    "size",
    "message_id",
    "message_id_conflict",
    "source",
    "source_ref",
    "envelope_from",
    "envelope_to",
    "received_at",
    "status",
    "attempts",
)


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
    """Store raw messages in the caller's ORM transaction (see ``store_raw``)."""
    return store_raw(session.connection(), items, received_at)


def store_raw(
    connection: Connection, items: Sequence[tuple[bytes, Envelope]], received_at: dt.datetime
) -> list[Stored]:
    """Store raw messages with their envelopes in the connection's transaction.

    The same bytes twice are stored once (the second is reported as a duplicate); the same
    Message-ID with different bytes is stored as its own message and flagged. Nothing is
    durable until the caller commits. Each chunk of mail costs three statements, not three
    per mail: the lookup of known hashes and Message-IDs, the blobs and the inbound rows.
    """
    statements = _statements(connection.dialect)
    results: list[Stored] = []
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        results += _store_chunk(connection, statements, chunk, received_at)
    return results


def _store_chunk(
    connection: Connection,
    sql: _Statements,
    items: Sequence[tuple[bytes, Envelope]],
    received_at: dt.datetime,
) -> list[Stored]:
    digests = [hashlib.sha256(raw).hexdigest() for raw, _ in items]
    message_ids = [find_message_id(raw) for raw, _ in items]
    wanted = set(digests)
    wanted_ids = {mid for mid in message_ids if mid}
    existing: dict[str, int] = {}
    known_ids: set[str] = set()
    for digest, inbound_id, message_id in connection.exec_driver_sql(
        sql.find(len(wanted), len(wanted_ids)), (*wanted, *wanted_ids)
    ):
        if digest in wanted:
            existing[digest] = inbound_id
        if message_id:
            known_ids.add(message_id)
    when = sql.received_at(received_at)
    new_rows: dict[str, tuple[object, ...]] = {}
    blobs: list[tuple[str, int, bytes]] = []
    conflicts: set[str] = set()
    for (raw, envelope), digest, message_id in zip(items, digests, message_ids, strict=True):
        if digest in existing or digest in new_rows:
            continue
        if message_id in known_ids:
            conflicts.add(digest)
        new_rows[digest] = (
            digest,
            len(raw),
            message_id,
            digest in conflicts,
            envelope.source,
            _clean(envelope.source_ref),
            _clean(envelope.mail_from),
            sql.envelope_to([c for c in (_clean(r) for r in envelope.rcpt_to) if c]),
            when,
            "pending",
            0,
        )
        blobs.append((digest, len(raw), raw))
        if message_id:
            known_ids.add(message_id)
    fresh: set[str] = set()
    if new_rows:
        connection.exec_driver_sql(sql.insert_blob, blobs)
        parameters = [value for row in new_rows.values() for value in row]
        for digest, inbound_id in connection.exec_driver_sql(
            sql.insert_inbound(len(new_rows)), tuple(parameters)
        ):
            existing[digest] = inbound_id
            fresh.add(digest)
    raced = [digest for digest in new_rows if digest not in existing]
    if raced:  # another process stored the same bytes a moment ago
        found = connection.exec_driver_sql(sql.find(len(raced), 0), tuple(raced))
        existing.update((digest, inbound_id) for digest, inbound_id, _ in found)
    results: list[Stored] = []
    for digest, message_id in zip(digests, message_ids, strict=True):
        first = digest in fresh
        fresh.discard(digest)
        results.append(
            Stored(existing[digest], not first, message_id, first and digest in conflicts)
        )
    return results


class _Statements:
    """The SQL of intake for one dialect, built once: the hot path skips statement compilation."""

    def __init__(self, dialect: Dialect) -> None:
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = Inbound.__table__.c
        self._when = columns.received_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._json = columns.envelope_to.type.dialect_impl(dialect).bind_processor(dialect)
        self.insert_blob = (
            f"INSERT INTO blobs (sha256, size, data) VALUES ({self._marks(3)}) "
            "ON CONFLICT DO NOTHING"
        )
        self._insert_inbound = f"INSERT INTO inbound ({', '.join(_INBOUND_COLUMNS)}) VALUES "
        self._inbound_values = f"({self._marks(len(_INBOUND_COLUMNS))})"

    def _marks(self, count: int) -> str:
        return ", ".join([self._mark] * count)

    def find(self, digests: int, message_ids: int) -> str:
        """Rows (raw hash, id, Message-ID) having one of the hashes or one of the Message-IDs."""
        query = f"{_FIND} WHERE raw_sha256 IN ({self._marks(digests)})"
        if message_ids:
            query += f" UNION ALL {_FIND} WHERE message_id IN ({self._marks(message_ids)})"
        return query

    def insert_inbound(self, rows: int) -> str:
        """Insert inbound rows unless their hash is stored; returns (raw hash, id) of new ones."""
        values = ", ".join([self._inbound_values] * rows)
        return f"{self._insert_inbound}{values} ON CONFLICT DO NOTHING RETURNING raw_sha256, id"

    def received_at(self, value: dt.datetime) -> object:
        """A time as the dialect stores it (naive UTC text on SQLite)."""
        return self._when(value) if self._when else value

    def envelope_to(self, value: list[str]) -> object:
        """Recipients as the JSON column stores them."""
        return self._json(value) if self._json else value


@functools.lru_cache(maxsize=8)
def _statements(dialect: Dialect) -> _Statements:
    return _Statements(dialect)


def _clean(value: str | None) -> str | None:
    """Envelope values are data from the network: no line breaks, bounded length."""
    if value is None:
        return None
    if has_forbidden_chars(value):
        value = value.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return value[:_MAX_ENVELOPE_FIELD]

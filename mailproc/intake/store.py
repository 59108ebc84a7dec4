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
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.orm import Session

from mailproc.core.addresses import has_forbidden_chars
from mailproc.core.rawmail import find_message_id
from mailproc.store.db import driver_error
from mailproc.store.models import Inbound

SOURCES = frozenset({"smtp", "lmtp", "imap", "file", "maildir", "mbox", "stdin"})
_MAX_ENVELOPE_FIELD = 998
_CHUNK = 1000  # messages per statement: parameters stay under SQLite's and PostgreSQL's caps
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
    "imported_at",
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """How a message reached us: channel, a reference within it, SMTP envelope if known.

    ``history`` marks old mail imported by ``ingest --history``, stored with its own time
    (``received_at``, see core/history.py) instead of the time of storing.
    """

    source: str
    source_ref: str | None = None
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    history: bool = False
    received_at: dt.datetime | None = None

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
    durable until the caller commits. A chunk of mail costs two statements on the driver's
    cursor (blobs, inbound rows that look up their Message-ID conflicts themselves), and a
    third only when some of it was stored before (their ids); driver errors are raised as
    SQLAlchemy's, as from ``Connection.execute``.
    """
    sql = _statements(connection.dialect)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        results: list[Stored] = []
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            results += _store_chunk(cursor, sql, chunk, received_at)
        return results
    except connection.dialect.loaded_dbapi.Error as error:
        raise driver_error(connection, error) from error
    finally:
        cursor.close()


def _store_chunk(
    cursor: Any,
    sql: _Statements,
    items: Sequence[tuple[bytes, Envelope]],
    received_at: dt.datetime,
) -> list[Stored]:
    digests = [hashlib.sha256(raw).hexdigest() for raw, _ in items]
    message_ids = [find_message_id(raw) for raw, _ in items]
    when = sql.received_at(received_at)
    new_rows: dict[str, tuple[object, ...]] = {}
    blobs: list[tuple[str, int, bytes]] = []
    seen_ids: set[str] = set()
    for (raw, envelope), digest, message_id in zip(items, digests, message_ids, strict=True):
        if digest in new_rows:
            continue
        new_rows[digest] = (
            digest,
            len(raw),
            message_id,
            message_id in seen_ids,  # earlier in this chunk; the statement looks up stored mail
            message_id,
            envelope.source,
            _clean(envelope.source_ref),
            _clean(envelope.mail_from),
            sql.envelope_to([c for c in (_clean(r) for r in envelope.rcpt_to) if c]),
            sql.received_at(envelope.received_at) if envelope.received_at else when,
            "pending",
            0,
            when if envelope.history else None,
        )
        blobs.append((digest, len(raw), raw))
        if message_id:
            seen_ids.add(message_id)
    fresh = {
        digest: (inbound_id, conflict)
        for digest, inbound_id, conflict in sql.insert(cursor, blobs, list(new_rows.values()))
    }
    existing = {digest: inbound_id for digest, (inbound_id, _) in fresh.items()}
    known = [digest for digest in new_rows if digest not in fresh]
    if known:  # stored before (or by another process a moment ago)
        cursor.execute(sql.find(len(known)), tuple(known))
        existing.update(cursor.fetchall())
    results: list[Stored] = []
    for digest, message_id in zip(digests, message_ids, strict=True):
        first = fresh.pop(digest, None)
        conflict = first is not None and bool(first[1])
        results.append(Stored(existing[digest], first is None, message_id, conflict))
    return results


class _Statements:
    """The SQL of intake for one dialect, built once, and how it is sent with fewest round trips.

    SQLite inserts the inbound rows with one multi-row statement; psycopg sends blobs and
    inbound rows as one pipeline (its ``executemany``), so a chunk is one round trip.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._pipeline = dialect.driver == "psycopg"
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = Inbound.__table__.c
        self._when = columns.received_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._json = columns.envelope_to.type.dialect_impl(dialect).bind_processor(dialect)
        self._insert_blob = (
            f"INSERT INTO blobs (sha256, size, data) VALUES ({self._marks(3)}) "
            "ON CONFLICT DO NOTHING"
        )
        self._insert_inbound = f"INSERT INTO inbound ({', '.join(_INBOUND_COLUMNS)}) VALUES "
        # message_id_conflict: the same Message-ID earlier in the chunk, or already stored.
        conflict = (
            f"({self._mark} OR EXISTS (SELECT 1 FROM inbound WHERE message_id = {self._mark}))"
        )
        self._row = f"({self._marks(3)}, {conflict}, {self._marks(len(_INBOUND_COLUMNS) - 4)})"
        self._returning = " ON CONFLICT DO NOTHING RETURNING raw_sha256, id, message_id_conflict"

    def _marks(self, count: int) -> str:
        return ", ".join([self._mark] * count)

    def find(self, digests: int) -> str:
        """(raw hash, id) of the stored rows having one of ``digests`` hashes."""
        return f"SELECT raw_sha256, id FROM inbound WHERE raw_sha256 IN ({self._marks(digests)})"

    def insert(
        self, cursor: Any, blobs: list[tuple[str, int, bytes]], rows: list[tuple[object, ...]]
    ) -> list[tuple[str, int, bool]]:
        """Insert blobs and inbound rows unless their hash is stored; (raw hash, id, Message-ID
        conflict) of the new rows."""
        if self._pipeline:
            with cursor.connection.pipeline(), cursor.connection.cursor() as blob_cursor:
                blob_cursor.executemany(self._insert_blob, blobs)
                statement = f"{self._insert_inbound}{self._row}{self._returning}"
                cursor.executemany(statement, rows, returning=True)
                inserted: list[tuple[str, int, bool]] = []
                while True:
                    inserted += cursor.fetchall()
                    if not cursor.nextset():
                        return inserted
        cursor.executemany(self._insert_blob, blobs)
        values = ", ".join([self._row] * len(rows))
        cursor.execute(
            f"{self._insert_inbound}{values}{self._returning}",
            [value for row in rows for value in row],
        )
        return list(cursor.fetchall())

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

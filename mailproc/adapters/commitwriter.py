"""The commit writer: a process of its own that stores the listener's mail in group commits.

``GroupCommitter`` starts it with one end of a socket pair and talks to it in frames (a 4-byte
big-endian length, then a pickle; both ends are our own code on a private socket). The first
frame is the configuration; every other frame from the listener is one message. Connected to
the database, the writer answers an empty frame: the listener opens its port only then. The writer
takes whatever messages have arrived, stores them with ``intake.store_raw`` and commits them
together, then answers with one frame: an outcome per message. It runs apart from the listener
so that hashing, SQL and the commit do not compete with the sessions for the listener's GIL.

It stops when the listener closes its end (after committing and answering what it read), so a
listener that dies, even by ``kill -9``, takes the writer with it; SIGTERM and SIGINT are left
to the listener, which drains the writer on its way out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import pickle
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, Engine, exc

from mailproc.errors import TransientError
from mailproc.intake.store import Envelope, Stored, store_raw
from mailproc.store.db import first_line, is_transient, make_engine

log = logging.getLogger("mailproc.commit-writer")

_LENGTH = struct.Struct(">I")
_READ_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """What the writer needs to know, sent as the first frame (the URL may hold a password)."""

    database_url: str
    busy_timeout_ms: int
    max_group: int


class Request(NamedTuple):
    """One message to store; ``seq`` pairs it with its answer. (Tuples pickle fastest.)"""

    seq: int
    received_at: dt.datetime
    raw: bytes
    source: str
    source_ref: str | None
    mail_from: str | None
    rcpt_to: tuple[str, ...]

    @property
    def envelope(self) -> Envelope:
        return Envelope(self.source, self.source_ref, self.mail_from, self.rcpt_to)


def request(seq: int, received_at: dt.datetime, raw: bytes, envelope: Envelope) -> Request:
    """The frame value for one message."""
    return Request(
        seq,
        received_at,
        raw,
        envelope.source,
        envelope.source_ref,
        envelope.mail_from,
        envelope.rcpt_to,
    )


class Failure(NamedTuple):
    """A message that was not stored: ``transient`` when retrying later may succeed."""

    transient: bool
    reason: str


Outcome = Stored | Failure
# An answer names the request by ``seq``; a stored message comes as the fields of ``Stored``.
Answer = tuple[int, tuple[int, bool, str | None, bool] | Failure]


def frame(value: object) -> bytes:
    """One frame: length, then the pickle."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


class FrameBuffer:
    """Bytes read from a socket, cut into the frames they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[object]:
        """Add bytes; return the values of the frames now complete."""
        self._buffer += data
        values: list[object] = []
        start = 0
        while len(self._buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer, start)
            end = start + _LENGTH.size + length
            if len(self._buffer) < end:
                break
            values.append(pickle.loads(self._buffer[start + _LENGTH.size : end]))
            start = end
        del self._buffer[:start]
        return values


class Writer:
    """Stores groups on one long-lived connection; a broken group is retried message by message."""

    def __init__(self, engine: Engine, busy_timeout_ms: int) -> None:
        self._engine = engine
        self._busy_timeout_ms = busy_timeout_ms
        self._connection: Connection | None = None

    def commit(self, group: Sequence[Request]) -> list[Outcome]:
        """Store and commit ``group``; an outcome per request, in order."""
        try:
            return list(self._write(group))  # list[Stored] as list[Outcome]
        except TransientError as error:
            return [Failure(True, str(error))] * len(group)
        except Exception as error:
            if len(group) > 1:
                # Something in one message broke the group: only that message is refused.
                log.warning("group of %d failed (%s); committing one by one", len(group), error)
                return [outcome for request in group for outcome in self.commit([request])]
            log.exception("message refused by the database")
            return [Failure(False, f"{type(error).__name__}: {error}")]

    def _write(self, group: Sequence[Request]) -> list[Stored]:
        try:
            if self._connection is None:
                self._connection = self._connect()
            with self._connection.begin():
                return store_raw(
                    self._connection,
                    [(request.raw, request.envelope) for request in group],
                    group[0].received_at,
                )
        except exc.SQLAlchemyError as error:
            self.disconnect()
            if is_transient(error):
                raise TransientError(f"database unavailable: {first_line(error)}") from error
            raise

    def connect(self) -> None:
        """Connect now, before any mail waits for it (a database that is down: at the first
        group)."""
        with contextlib.suppress(exc.SQLAlchemyError):
            self._connection = self._connect()

    def _connect(self) -> Connection:
        """A connection whose lock waits end at the busy timeout on PostgreSQL too (SQLite has
        its busy timeout; PostgreSQL would wait for a row lock without end)."""
        connection = self._engine.connect()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SET lock_timeout = {max(int(self._busy_timeout_ms), 1)}")
            connection.commit()
        return connection

    def disconnect(self) -> None:
        """Drop the connection (the next group opens a new one)."""
        if self._connection is not None:
            with contextlib.suppress(exc.SQLAlchemyError):
                self._connection.close()
            self._connection = None


def serve(sock: socket.socket) -> None:
    """Read the configuration, then store groups until the listener closes its end."""
    buffer = FrameBuffer()
    queued: deque[object] = deque()
    if not _read(sock, buffer, queued, wait=True):
        return
    config = queued.popleft()
    assert isinstance(config, WriterConfig)
    engine = make_engine(config.database_url, config.busy_timeout_ms)
    writer = Writer(engine, config.busy_timeout_ms)
    writer.connect()
    sock.sendall(frame([]))  # ready (an empty answer): the listener may open its port
    open_ = True
    try:
        while queued or open_:
            if not queued:
                open_ = _read(sock, buffer, queued, wait=True)
                continue
            if open_:  # whatever else arrived during the last commit joins this group
                open_ = _read(sock, buffer, queued, wait=False)
            group = [queued.popleft() for _ in range(min(config.max_group, len(queued)))]
            requests = [request for request in group if isinstance(request, Request)]
            outcomes = writer.commit(requests)
            answer: list[Answer] = [
                (request.seq, _answer_of(outcome))
                for request, outcome in zip(requests, outcomes, strict=True)
            ]
            sock.sendall(frame(answer))
    finally:
        writer.disconnect()
        engine.dispose()


def _answer_of(outcome: Outcome) -> tuple[int, bool, str | None, bool] | Failure:
    """An outcome as it travels: a failure as is, a stored message as the fields of Stored."""
    if isinstance(outcome, Failure):
        return outcome
    return (outcome.inbound_id, outcome.duplicate, outcome.message_id, outcome.message_id_conflict)


def _read(sock: socket.socket, buffer: FrameBuffer, into: deque[object], *, wait: bool) -> bool:
    """Read what the socket holds (waiting for a frame if ``wait``); False once it is closed."""
    while True:
        try:
            data = sock.recv(_READ_SIZE) if wait else sock.recv(_READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        if not data:
            return False
        values = buffer.feed(data)
        into.extend(values)
        if values or not wait:
            wait = False  # got a frame: take the rest without waiting


def main(argv: Sequence[str]) -> None:
    """``python -m mailproc.adapters.commitwriter FD``: serve the socket inherited as FD."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with socket.socket(fileno=int(argv[0])) as sock:
        serve(sock)


if __name__ == "__main__":
    # Run the module under its own name, so that the frames' classes are the listener's.
    from mailproc.adapters.commitwriter import main as _main

    _main(sys.argv[1:])

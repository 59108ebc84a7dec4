"""Pending mail read and parsed before the transaction that writes it begins, cut into parts.

On SQLite one writer holds the database at a time, and the SMTP listener's commits wait for
the worker's transaction. So the worker does nothing heavy in it: the pending rows are read
in a short transaction of their own and parsed (in the parse pool's workers, or here) before
the write transaction begins, and they are cut into parts, one transaction each: a message of
``LARGE_BYTES`` or more alone, the others together up to ``PART_BYTES`` of raw mail. (A 2 MB
mail of 500,000 short lines kept the write lock 2.8 s while it was parsed, with the 80 mails
of its batch: other senders waited up to 3.1 s for their "250".)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from mailproc.processing.context import ProcessingContext
from mailproc.processing.parsepool import Ahead, Job, PrepareResult
from mailproc.store import repo
from mailproc.store.db import transaction
from mailproc.store.models import Inbound

LARGE_BYTES = 1024 * 1024  # a message this large is written in a transaction of its own
PART_BYTES = 8 * 1024 * 1024  # raw mail written per transaction (one message may be larger)
READ_AHEAD = 2  # batches parsed ahead in the workers while one is written
READ_AHEAD_BYTES = 64 * 1024 * 1024  # no further batch is read ahead past this much raw mail


@dataclass
class Part:
    """Pending rows to be claimed and written in one transaction, and their parsing."""

    jobs: list[tuple[int, Job]]  # (inbound id, (raw, envelope sender))
    size: int  # bytes of raw mail
    pooled: bool  # parsed in the pool's workers (else here, when asked)
    ahead: Ahead | None = None  # being parsed in the workers

    def results(self, context: ProcessingContext) -> dict[int, PrepareResult]:
        """The parsed mail by inbound id; waits for the workers, or parses it here."""
        if self.ahead is not None:
            return self.ahead.results()
        ids = [key for key, _ in self.jobs]
        return dict(zip(ids, context.prepare([job for _, job in self.jobs]), strict=True))


def cut(rows: Sequence[tuple[Inbound, bytes]]) -> list[list[tuple[Inbound, bytes]]]:
    """Rows in id order cut into parts: a large message alone, the others up to PART_BYTES."""
    parts: list[list[tuple[Inbound, bytes]]] = []
    size = 0
    alone = False  # the last part holds a large message: nothing joins it
    for row in rows:
        length = len(row[1])
        large = length >= LARGE_BYTES
        if not parts or alone or large or size + length > PART_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(row)
        size += length
        alone = large
    return parts


class ReadAhead:
    """The parts to write next, read and started ahead of the transactions that write them.

    With a parse pool, up to READ_AHEAD batches more (fewer past READ_AHEAD_BYTES of raw
    mail) are read and parsed in the workers while one part is written: read without locks;
    claimed, and checked, in a later transaction.
    """

    def __init__(
        self, factory: sessionmaker[Session], context: ProcessingContext, batch_size: int
    ) -> None:
        self._factory = factory
        self._context = context
        self._batch_size = batch_size
        self._parts: deque[Part] = deque()
        self._after = 0  # the last inbound id read
        self._more = True  # the last read was a full batch: more may be pending

    def next(self) -> Part | None:
        """The next part to write (None when nothing is pending); reads ahead first."""
        if self._more and (not self._parts or self._ahead_room()):
            with transaction(self._factory, commit=False) as session:  # reads only, briefly
                if not self._parts:  # all that was read is written: what is pending, from 0
                    self._after = 0
                    self._take(session, first=True)
                while self._more and self._ahead_room():
                    self._take(session, first=False)
            pool = self._context.pool
            for part in self._parts:  # after the transaction: starting the workers takes time
                if pool is not None and part.pooled and part.ahead is None:
                    part.ahead = pool.start(part.jobs)
        return self._parts.popleft() if self._parts else None

    def _ahead_room(self) -> bool:
        """Whether the pool's workers may parse another batch behind the part written next."""
        pool = self._context.pool
        behind = list(self._parts)[1:]
        return (
            pool is not None
            and pool.workers > 0
            and sum(len(part.jobs) for part in behind) < READ_AHEAD * self._batch_size
            and sum(part.size for part in behind) < READ_AHEAD_BYTES
        )

    def _take(self, session: Session, *, first: bool) -> None:
        rows = repo.peek_pending(session, self._after, self._batch_size)
        self._more = len(rows) == self._batch_size
        if not rows:
            return
        self._after = rows[-1][0].id
        pool = self._context.pool
        for part in cut(rows):
            jobs = [(inbound.id, (raw, inbound.envelope_from)) for inbound, raw in part]
            size = sum(len(raw) for _, raw in part)
            # the workers take a part read ahead, a full batch, enough mail, or a large message
            # (parsed here, it would hold this process's interpreter: the listener's in serve)
            pooled = (
                pool is not None
                and pool.workers > 0
                and (not first or self._more or len(jobs) >= pool.min_jobs or size >= LARGE_BYTES)
            )
            self._parts.append(Part(jobs, size, pooled))

"""Group commit: concurrent SMTP sessions hand messages to one writer that commits them together.

Each session awaits the commit of the group that holds its message before it answers ``250``.
The writer is one thread with one long-lived connection: the event loop keeps serving the other
sessions while a group is written and synced, and a group costs a few prebuilt statements and
one commit (``intake.store_raw``), with no ORM session, pool checkout or thread hand-off of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, exc

from mailproc.clock import Clock
from mailproc.errors import TransientError
from mailproc.intake import Envelope, Stored, store_raw
from mailproc.store.db import is_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    raw: bytes
    envelope: Envelope
    done: asyncio.Future[Stored]


class GroupCommitter:
    """One writer for many sessions: whatever queued up during a commit goes into the next one."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        max_group: int = 256,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._max_group = max_group
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._closed = False
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
        self._connection: Connection | None = None  # used in the writer thread only

    async def store(self, raw: bytes, envelope: Envelope) -> Stored:
        """Queue one message and return once it is committed; raise if it could not be."""
        if self._closed:
            raise TransientError("shutting down")
        done: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(raw, envelope, done))
        return await done

    def close(self) -> None:
        """Accept nothing new; ``run`` returns after committing what is queued."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def run(self) -> None:
        """Commit queued messages group by group until closed and drained."""
        try:
            while True:
                first = await self._queue.get()
                if first is None:
                    return
                group = [first]
                closing = False
                while len(group) < self._max_group and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        closing = True
                        break
                    group.append(item)
                # A session that gave up (timeout, lost connection) before its turn is not written.
                await self._commit([p for p in group if not p.done.cancelled()])
                if closing:
                    return
        finally:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._disconnect)
            self._writer.shutdown(wait=False)

    async def _commit(self, group: list[_Pending]) -> None:
        if not group:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._writer, self._write, [(p.raw, p.envelope) for p in group]
            )
        except Exception as error:
            if len(group) > 1 and not isinstance(error, TransientError):
                # Something in one message broke the group: retry one by one so that only
                # that message is refused.
                log.warning("group of %d failed (%s); committing one by one", len(group), error)
                for pending in group:
                    await self._commit([pending])
                return
            for pending in group:
                if not pending.done.done():
                    pending.done.set_exception(error)
            return
        for pending, stored in zip(group, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(stored)
        if self._on_commit is not None:
            self._on_commit(len(group))

    def _write(self, items: Sequence[tuple[bytes, Envelope]]) -> list[Stored]:
        """Store and commit one group (writer thread); a database error drops the connection."""
        try:
            if self._connection is None:
                self._connection = self._engine.connect()
            with self._connection.begin():
                return store_raw(self._connection, items, self._clock.now())
        except exc.SQLAlchemyError as error:
            self._disconnect()
            if is_transient(error):
                lines = str(getattr(error, "orig", None) or error).strip().splitlines()
                reason = lines[0] if lines else type(error).__name__
                raise TransientError(f"database unavailable: {reason}") from error
            raise

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(exc.SQLAlchemyError):
                self._connection.close()
            self._connection = None

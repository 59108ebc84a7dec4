"""Group commit: concurrent SMTP sessions hand messages to one writer that commits them together.

Each session awaits the commit of the group that holds its message before it answers ``250``.
The writer is a thread of its own with one long-lived connection: the event loop keeps serving
the other sessions while a group is written and synced. A group costs a few prebuilt statements
and one commit (``intake.store_raw``); the loop pays a queue put per message and one wake-up per
group. (Waiting for more messages before a commit was measured: it only added latency.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
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
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._connection: Connection | None = None  # the writer thread's

    async def store(self, raw: bytes, envelope: Envelope) -> Stored:
        """Queue one message and return once it is committed; raise if it could not be."""
        if self._closed:
            raise TransientError("shutting down")
        done: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.put(_Pending(raw, envelope, done))
        return await done

    def close(self) -> None:
        """Accept nothing new; ``run`` returns after committing what is queued."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    async def run(self) -> None:
        """Run the writer thread until closed and drained."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        thread = threading.Thread(
            target=self._writer, args=(loop, finished), name="group-commit", daemon=True
        )
        thread.start()
        await finished

    def _writer(self, loop: asyncio.AbstractEventLoop, finished: asyncio.Future[None]) -> None:
        try:
            while True:
                group, closing = self._next_group()
                # A session that gave up (timeout, lost connection) before its turn is not written.
                self._commit(loop, [p for p in group if not p.done.cancelled()])
                if closing:
                    return
        finally:
            self._disconnect()
            loop.call_soon_threadsafe(_set_done, finished)

    def _next_group(self) -> tuple[list[_Pending], bool]:
        """Wait for a message, then take whatever else is queued (up to ``max_group``)."""
        first = self._queue.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
        return group, False

    def _commit(self, loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
        if not group:
            return
        try:
            results = self._write([(p.raw, p.envelope) for p in group])
        except Exception as error:
            if len(group) > 1 and not isinstance(error, TransientError):
                # Something in one message broke the group: retry one by one so that only
                # that message is refused.
                log.warning("group of %d failed (%s); committing one by one", len(group), error)
                for pending in group:
                    self._commit(loop, [pending])
                return
            loop.call_soon_threadsafe(_fail, group, error)
            return
        loop.call_soon_threadsafe(self._succeed, group, results)

    def _succeed(self, group: list[_Pending], results: list[Stored]) -> None:
        for pending, stored in zip(group, results, strict=True):
            if not pending.done.done():
                pending.done.set_result(stored)
        if self._on_commit is not None:
            self._on_commit(len(group))

    def _write(self, items: Sequence[tuple[bytes, Envelope]]) -> list[Stored]:
        """Store and commit one group; a database error drops the connection."""
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


def _fail(group: list[_Pending], error: Exception) -> None:
    for pending in group:
        if not pending.done.done():
            pending.done.set_exception(error)


def _set_done(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)

"""Group commit: concurrent SMTP sessions hand messages to one writer that commits them together.

Each session awaits the commit of the group that holds its message before it answers ``250``;
the write runs in a thread so that the event loop keeps serving the other sessions meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock
from mailproc.errors import TransientError
from mailproc.intake import Envelope, Stored, store_batch
from mailproc.store.db import transaction

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
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        max_group: int = 256,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._factory = factory
        self._clock = clock
        self._max_group = max_group
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._closed = False

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

    async def _commit(self, group: list[_Pending]) -> None:
        if not group:
            return
        try:
            results = await asyncio.to_thread(self._write, [(p.raw, p.envelope) for p in group])
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
        log.debug("committed a group of %d", len(group))
        if self._on_commit is not None:
            self._on_commit(len(group))

    def _write(self, items: Sequence[tuple[bytes, Envelope]]) -> list[Stored]:
        with transaction(self._factory) as session:
            return store_batch(session, items, self._clock.now())

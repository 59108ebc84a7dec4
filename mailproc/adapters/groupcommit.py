"""Group commit: concurrent SMTP sessions hand messages to one writer that commits them together.

Each session awaits the commit of the group that holds its message before it answers ``250``.
The writer is a process of its own (``commitwriter``): the event loop only pickles each message
onto a socket and resolves the answers as they arrive, while hashing, SQL and the sync run on
the other core without taking the listener's GIL.
Whatever arrives during a commit goes into the next one. (Measured: a writer thread in the
listener's process cost the loop about half its throughput; waiting for more messages before a
commit only added latency.)

If the writer dies, the messages it had not answered get ``451`` (a message it committed before
dying is recognized as a duplicate when the client retries) and a new writer is started. A
writer that does not answer within the database busy timeout and a short grace (a database that
stalls on the open connection) gets the session a ``451`` as well, instead of keeping the
client until the listener's own timeout; should the writer store the message later, the
client's retry is recognized as a duplicate the same way.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import cast

from mailproc.adapters.commitwriter import (
    Answer,
    Failure,
    FrameBuffer,
    WriterConfig,
    frame,
    request,
)
from mailproc.clock import Clock
from mailproc.config import DatabaseSettings
from mailproc.errors import PermanentError, TransientError
from mailproc.intake.store import Envelope, Stored

log = logging.getLogger(__name__)

_RESTART_DELAYS_S = (0.1, 0.5, 2.0, 10.0)
# Beyond the busy timeout (which bounds the writer's own lock waits), the time a commit may take
# on a loaded machine before the session gives up on it.
_ANSWER_GRACE_S = 2.0


class _WriterLink(asyncio.Protocol):
    """The socket to one writer process: answers resolve their futures as soon as they arrive."""

    def __init__(self, on_answer: Callable[[list[Answer]], None]) -> None:
        self._on_answer = on_answer
        self._buffer = FrameBuffer()
        self.transport: asyncio.Transport | None = None
        self.answered = False
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()  # the writer is connected
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for answer in self._buffer.feed(data):
            if not self.ready.done():  # the writer's first frame says it is ready
                self.ready.set_result(None)
                continue
            self._on_answer(answer)  # type: ignore[arg-type]
            self.answered = True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class GroupCommitter:
    """The listener's side of the commit writer: queue messages, await their commit."""

    def __init__(
        self,
        database: DatabaseSettings,
        clock: Clock,
        *,
        max_group: int = 256,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._config = WriterConfig(database.url, database.busy_timeout_ms, max_group)
        self._answer_wait_s = database.busy_timeout_ms / 1000 + _ANSWER_GRACE_S
        self._clock = clock
        self._on_commit = on_commit
        self._closed = False
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[Stored]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._link: _WriterLink | None = None  # to the running writer

    @property
    def in_flight(self) -> int:
        """Messages sent to the writer and not answered yet (safe to read from any thread)."""
        return len(self._waiting)

    @property
    def writer_pid(self) -> int | None:
        """The running writer process's id."""
        return self._process.pid if self._link is not None and self._process else None

    async def store(self, raw: bytes, envelope: Envelope) -> Stored:
        """Queue one message and return once it is committed; raise if it could not be, or
        (TransientError) if the writer has not answered within the busy timeout and grace."""
        if self._closed:
            raise TransientError("shutting down")
        if self._link is None or self._link.transport is None:
            raise TransientError("commit writer not running")
        self._seq = seq = self._seq + 1
        done: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = done
        self._link.transport.write(frame(request(seq, self._clock.now(), raw, envelope)))
        try:
            return await asyncio.wait_for(done, self._answer_wait_s)
        except TimeoutError:  # the writer may still store it: a retry is then a duplicate
            self._waiting.pop(seq, None)
            raise TransientError(
                f"database did not answer within {self._answer_wait_s:g}s"
            ) from None
        except asyncio.CancelledError:  # the session gave up; the writer may still store it
            self._waiting.pop(seq, None)
            raise

    def close(self) -> None:
        """Accept nothing new; ``run`` returns once the writer committed what it was sent."""
        if self._closed:
            return
        self._closed = True
        if self._link is not None and self._link.transport is not None:
            self._link.transport.write_eof()

    @property
    def ready(self) -> bool:
        """Whether the running writer has connected to the database."""
        return self._link is not None and self._link.ready.done()

    async def start(self) -> None:
        """Start a writer process (``store`` refuses until one runs) and wait, up to the
        answer wait, until it has connected: a message sent at once would wait for its start
        (1-2.5 s on a busy 2-core machine), and the listener's first senders with it."""
        parent, child = socket.socketpair()
        with child:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mailproc.adapters.commitwriter", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        loop = asyncio.get_running_loop()
        transport, self._link = await loop.create_unix_connection(
            lambda: _WriterLink(self._resolve), sock=parent
        )
        self._link.transport = transport
        transport.write(frame(self._config))
        await asyncio.wait(
            (self._link.ready, self._link.closed),
            timeout=self._answer_wait_s,
            return_when=asyncio.FIRST_COMPLETED,
        )

    async def run(self) -> None:
        """Deliver the writer's answers until closed and drained; restart a writer that dies."""
        if self._process is None:
            await self.start()
        failures = 0
        while True:
            assert self._link is not None and self._process is not None
            await self._link.closed
            code = await asyncio.to_thread(self._process.wait)
            answered, self._link = self._link.answered, None
            self._fail_waiting(f"commit writer stopped (exit code {code})")
            if self._closed:
                return
            failures = 0 if answered else failures + 1
            delay = _RESTART_DELAYS_S[min(failures, len(_RESTART_DELAYS_S) - 1)]
            log.error("commit writer stopped (exit code %s); restarting in %.1fs", code, delay)
            await asyncio.sleep(delay)
            if self._closed:
                return
            await self.start()

    def _resolve(self, answer: list[Answer]) -> None:
        stored = 0
        for seq, outcome in answer:
            done = self._waiting.pop(seq, None)
            if done is None or done.done():
                continue
            if isinstance(outcome, Failure):
                error_type = TransientError if outcome.transient else PermanentError
                done.set_exception(error_type(outcome.reason))
            else:
                done.set_result(Stored(*outcome))
                stored += 1
        if stored and self._on_commit is not None:
            self._on_commit(stored)

    def _fail_waiting(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for done in waiting.values():
            if not done.done():
                done.set_exception(TransientError(reason))

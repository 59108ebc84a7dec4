"""How many messages one write transaction takes while ``serve`` shares SQLite with its listener.

On SQLite the listener's commits wait for the worker's transaction, so the time a transaction
holds the write lock is what other senders may wait for their "250". Its count alone does not
bound that time: 100 ordinary mails held the lock 0.9-1.7 s on a loaded machine (load 9), and
once delayed another sender by 2.3 s. So the count adapts to the measured time: a transaction
that took longer than ``TARGET_S`` sets the count for the next ones to what would have fit in
``TARGET_S`` at its time per message (at most half of it, at least one), and a full
transaction under half of ``TARGET_S`` lets the next one take an eighth more (up to the most
it started from). Every transaction still claims, writes and commits whole messages (with its
savepoint retry), so where the mail is cut changes no outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TARGET_S = 0.5
"""The time one write transaction aims to hold SQLite's write lock under ``serve``.

Small next to the 2 s the listener's other senders may wait at worst. Not smaller: each
transaction also waits for the listener's commits first (``Worker.LISTENER_FIRST_S``), and
at 0.25 s the worker processed 20-50% fewer messages a second under ``serve`` on a loaded
machine; at 0.5 s a transaction of 100 ordinary mails is cut only when the machine is loaded
(docs/performance.md, "Write transactions bounded by time")."""


class WriteBudget:
    """The count of messages the next write transaction takes, learnt from the last ones."""

    def __init__(
        self,
        most: int,
        target_s: float = TARGET_S,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._most = max(1, most)
        self._target_s = target_s
        self._timer = timer
        self.limit = self._most

    def start(self) -> float:
        """The time a transaction begins (passed back to ``record``)."""
        return self._timer()

    def record(self, messages: int, started: float) -> None:
        """A transaction of ``messages`` begun at ``started`` has committed: adapt the limit."""
        if messages < 1:
            return
        seconds = self._timer() - started
        if seconds > self._target_s:
            fits = int(messages * self._target_s / seconds)
            self.limit = max(1, min(messages // 2, fits))
        elif messages >= self.limit and seconds < self._target_s / 2:
            self.limit = min(self._most, self.limit + max(1, self.limit // 8))

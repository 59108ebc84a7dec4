"""Run the pure ``prepare`` step in worker processes, so parsing overlaps on several cores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future

from mailproc.core.understand import Prepared, PrepareRules, prepare
from mailproc.workers import WorkerPool

PrepareResult = Prepared | Exception
Job = tuple[bytes, str | None]  # raw bytes, envelope sender


def prepare_all(jobs: Sequence[Job], rules: PrepareRules) -> list[PrepareResult]:
    """Prepare each job; a message that cannot be prepared yields its exception instead."""
    results: list[PrepareResult] = []
    for raw, sender in jobs:
        try:
            results.append(prepare(raw, rules, sender))
        except Exception as error:  # reported per message; the caller quarantines it
            results.append(error)
    return results


class Ahead:
    """Results being prepared in the workers, keyed (by inbound id)."""

    def __init__(self, parts: list[tuple[list[int], Future[list[PrepareResult]]]]) -> None:
        self._parts = parts

    def results(self) -> dict[int, PrepareResult]:
        """Wait for every part and return the results by key."""
        found: dict[int, PrepareResult] = {}
        for keys, future in self._parts:
            found.update(zip(keys, future.result(), strict=True))
        return found


class ParsePool:
    """A few worker processes for ``prepare`` (``mailproc.workers``; the fork server loads the
    code and the language model once). The rules (limits, detection policy, classifier) go to
    each worker once, when it starts."""

    min_jobs = 16  # below this, the round trip to another process is not worth it

    def __init__(self, workers: int, rules: PrepareRules) -> None:
        self.workers = workers
        self.rules = rules
        self._pool = WorkerPool(workers, ["mailproc.processing.preload"], _start_worker, (rules,))

    def prepare(self, jobs: Sequence[Job]) -> list[PrepareResult]:
        """Prepare ``jobs`` in order in the workers (here, when there are too few to share).

        This process only waits: it would otherwise load the detectors' models a second time.
        """
        if self.workers <= 0 or len(jobs) < self.min_jobs:
            return prepare_all(jobs, self.rules)
        ahead = self.start(list(enumerate(jobs)))
        assert ahead is not None
        found = ahead.results()
        return [found[index] for index in range(len(jobs))]

    def start(self, jobs: Sequence[tuple[int, Job]]) -> Ahead | None:
        """Begin preparing keyed jobs in the workers only; None when there are no workers.

        The worker uses this to parse the next batch while it writes the current one.
        """
        if self.workers <= 0 or not jobs:
            return None
        size = -(-len(jobs) // self.workers)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        return Ahead(
            [
                (
                    [key for key, _ in chunk],
                    self._pool.submit(_prepare_in_worker, [job for _, job in chunk]),
                )
                for chunk in chunks
            ]
        )

    @property
    def workers_pool(self) -> WorkerPool:
        """The worker processes (to start, wait for or run a task in)."""
        return self._pool

    def warm(self) -> None:
        """Start the workers in the background."""
        self._pool.warm()

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.close()


_worker_rules: PrepareRules | None = None  # set once in each worker process


def _start_worker(rules: PrepareRules) -> None:
    """Keep the rules for every task of this worker; quiet flufl.bounce, whose detectors log a
    traceback for each odd mail (we catch those)."""
    global _worker_rules
    _worker_rules = rules
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


def _prepare_in_worker(jobs: Sequence[Job]) -> list[PrepareResult]:
    assert _worker_rules is not None, "the worker was started without its rules"
    return prepare_all(jobs, _worker_rules)

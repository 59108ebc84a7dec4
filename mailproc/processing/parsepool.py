"""Run the pure ``prepare`` step in worker processes, so parsing overlaps on several cores."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from mailproc.core.understand import Prepared, PrepareRules, prepare
from mailproc.runtime import exit_with, tune_gc

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
    """A few worker processes (forkserver: no database handles are inherited) for ``prepare``.

    The rules (limits, detection policy, classifier) go to each worker once, when it starts.
    """

    min_jobs = 16  # below this, the round trip to another process is not worth it

    def __init__(self, workers: int, rules: PrepareRules) -> None:
        self.workers = workers
        self.rules = rules
        self._executor: ProcessPoolExecutor | None = None
        self._creating = threading.Lock()  # warm() creates the pool from another thread
        self._warming: threading.Thread | None = None

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
                    self._pool().submit(_prepare_in_worker, [job for _, job in chunk]),
                )
                for chunk in chunks
            ]
        )

    def warm(self) -> None:
        """Start the workers in the background (starting the fork server takes ~0.7 s)."""
        if self.workers > 0 and self._executor is None and self._warming is None:
            self._warming = threading.Thread(target=self._start_workers, name="parse-pool-start")
            self._warming.start()

    def _start_workers(self) -> None:
        pool = self._pool()
        for _ in range(self.workers):
            pool.submit(_ready)

    def _pool(self) -> ProcessPoolExecutor:
        with self._creating:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                # the fork server loads the code and the language model once; workers fork warm
                context.set_forkserver_preload(["mailproc.processing.preload"])
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(self.rules, os.getpid()),
                )
            return self._executor

    def close(self) -> None:
        """Stop the worker processes."""
        if self._warming is not None:  # a warm() may still be starting them
            self._warming.join()
            self._warming = None
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None


_worker_rules: PrepareRules | None = None  # set once in each worker process


def _start_worker(rules: PrepareRules, served: int) -> None:
    """Keep the rules for every task of this worker and end with the ``served`` process;
    quiet flufl.bounce, whose detectors log a traceback for each odd mail (we catch those)."""
    global _worker_rules
    exit_with(served)
    _worker_rules = rules
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    tune_gc()


def _prepare_in_worker(jobs: Sequence[Job]) -> list[PrepareResult]:
    assert _worker_rules is not None, "the worker was started without its rules"
    return prepare_all(jobs, _worker_rules)


def _ready() -> None:
    """A task that only makes the pool start a worker."""

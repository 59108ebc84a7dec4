"""Worker processes for pure CPU work (parsing inbound mail, building outbound mail).

A ``WorkerPool`` starts its processes from a fork server (no database handles or threads are
inherited) that imported ``preload`` once, so each worker forks warm; the fork server is one
per process, shared by every pool, and imports what the pools created before it started name.
Every worker runs ``initializer(*initargs)`` first, ends with the process it serves
(``runtime.exit_with``) and collects garbage less often (``runtime.tune_gc``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

from mailproc.runtime import exit_with, tune_gc

P = ParamSpec("P")
R = TypeVar("R")

_PRELOAD: set[str] = set()  # what the pools of this process asked the fork server to import


class WorkerPool:
    """``workers`` processes, created on first use or by ``warm`` in the background."""

    def __init__(
        self,
        workers: int,
        preload: Sequence[str],
        initializer: Callable[..., None],
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.workers = workers
        _PRELOAD.update(preload)
        self._initializer = initializer
        self._initargs = initargs
        self._executor: ProcessPoolExecutor | None = None
        self._creating = threading.Lock()  # warm() creates the pool from another thread
        self._warming: threading.Thread | None = None
        self._started = threading.Event()

    def submit(self, task: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run ``task`` in a worker (starting the workers if they are not yet)."""
        return self._pool().submit(task, *args, **kwargs)

    def warm(self) -> None:
        """Start the workers in the background (the fork server takes ~0.7 s to start)."""
        if self.workers > 0 and self._executor is None and self._warming is None:
            self._warming = threading.Thread(target=self._start_workers, name="worker-pool-start")
            self._warming.start()

    def ready(self) -> bool:
        """Whether every worker has started (``warm``)."""
        return self._started.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the workers a ``warm`` is starting."""
        return self._started.wait(timeout)

    @property
    def started(self) -> bool:
        """Whether the workers were asked to start (``warm`` or a task)."""
        return self._executor is not None or self._warming is not None

    def _start_workers(self) -> None:
        pool = self._pool()
        for started in [pool.submit(_ready) for _ in range(self.workers)]:
            started.result()
        self._started.set()

    def _pool(self) -> ProcessPoolExecutor:
        with self._creating:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(sorted(_PRELOAD))
                self._executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(), self._initializer, self._initargs),
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
        self._started.clear()


def _start_worker(served: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    exit_with(served)
    initializer(*initargs)
    tune_gc()


def _ready() -> None:
    """A task that only makes the pool start a worker."""

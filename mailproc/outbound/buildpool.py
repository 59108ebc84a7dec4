"""Building the next batch of deferred mail in worker processes while this one is sent.

``deliver_all_due`` reads the rows its next claim will most likely take (the first due rows in
claim order, after the current claim committed) and hands their stored contexts, still as JSON
text, to the workers. The claim then keeps the bytes of the rows it took that were built ahead
in its own transaction; a row built ahead that the claim did not take is built again later (a
build is a pure function of the row: the same bytes). A row the workers could not build, or
one with attachments (their bytes are read from the database), is built after the claim as
before, where a failure is recorded. Rendering is most of a mail's cost: on two cores, the
workers build while this process talks to the database and the relay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import orjson

from mailproc.outbound.build import BuiltMail, build
from mailproc.outbound.compose import HeaderError
from mailproc.outbound.render import Renderer, RenderError
from mailproc.outbound.values import Company
from mailproc.workers import WorkerPool

log = logging.getLogger(__name__)

# a row to build: outbox id, template, locale, and the stored context and envelope as JSON
BuildJob = tuple[int, str, str, str | None, str | None]


def build_all(jobs: Sequence[BuildJob], renderer: Renderer) -> dict[int, BuiltMail]:
    """The mails of ``jobs`` that build without attachments, by outbox id."""
    built: dict[int, BuiltMail] = {}
    for outbox_id, template, locale, context, envelope in jobs:
        try:
            stored_envelope = orjson.loads(envelope) if envelope else None
            if stored_envelope and stored_envelope.get("attachments"):
                continue
            built[outbox_id] = build(
                outbox_id,
                template,
                locale,
                orjson.loads(context) if context else None,
                stored_envelope,
                renderer,
            )
        except (RenderError, HeaderError, orjson.JSONDecodeError):
            continue  # built again after the claim, which records why it cannot be
    return built


class BuildsAhead:
    """Mail being built in the workers."""

    def __init__(self, futures: list[Future[dict[int, BuiltMail]]]) -> None:
        self._futures = futures

    def results(self) -> dict[int, BuiltMail]:
        """Wait for the workers; what they built, by outbox id (what a broken pool lost is
        built after the claim, in this process)."""
        built: dict[int, BuiltMail] = {}
        for future in self._futures:
            try:
                built.update(future.result())
            except Exception as error:  # a worker died: the claim builds these
                log.warning("building ahead failed (%s); building in this process", error)
        return built

    def cancel(self) -> None:
        """Drop builds nobody will wait for."""
        for future in self._futures:
            future.cancel()


class BuildPool:
    """Worker processes (``mailproc.workers``) that render and compose deferred mail, each
    with its own renderer of the company's templates."""

    def __init__(self, workers: int, company: Company) -> None:
        self.workers = workers
        self._pool = WorkerPool(workers, ["mailproc.outbound.buildpool"], _start_worker, (company,))

    def start(self, jobs: Sequence[BuildJob]) -> BuildsAhead | None:
        """Begin building ``jobs`` in the workers (None without workers or jobs)."""
        if self.workers <= 0 or not jobs:
            return None
        size = -(-len(jobs) // self.workers)
        try:
            return BuildsAhead(
                [
                    self._pool.submit(_build_in_worker, jobs[i : i + size])
                    for i in range(0, len(jobs), size)
                ]
            )
        except BrokenProcessPool as error:  # a worker died: start afresh, build here meanwhile
            log.warning("build workers lost (%s); starting new ones", error)
            self._pool.close()
            self.warm()
            return None

    def warm(self) -> None:
        """Start the workers in the background."""
        self._pool.warm()

    def ready(self) -> bool:
        """Whether the workers are running."""
        return self._pool.ready()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the workers a ``warm`` is starting."""
        return self._pool.wait_ready(timeout)

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.close()


_worker_renderer: Renderer | None = None  # set once in each worker process


def _start_worker(company: Company) -> None:
    global _worker_renderer
    _worker_renderer = Renderer(company)


def _build_in_worker(jobs: Sequence[BuildJob]) -> dict[int, BuiltMail]:
    assert _worker_renderer is not None, "the worker was started without its renderer"
    return build_all(jobs, _worker_renderer)

"""``mailproc serve``: listener, IMAP pollers, worker, deliverer and scheduler in one process.

The listener runs on the asyncio loop; the pollers, the worker, the deliverer and the scheduler
tick run in threads of their own. SIGTERM or SIGINT stops accepting new work, lets what is in
flight finish (within ``serve.shutdown_grace_s``) and exits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import exc

from mailproc.adapters import lease
from mailproc.adapters.groupcommit import GroupCommitter
from mailproc.adapters.imap import MailboxPoller
from mailproc.adapters.smtp import Listener, PasswordFile, RecipientPolicy, make_tls_context
from mailproc.app import App
from mailproc.config_dashboard import DashboardSettings
from mailproc.config_transport import ListenerSettings
from mailproc.errors import StartupError, TransientError
from mailproc.outbound.deliver import deliver_all_due
from mailproc.processing.budget import WriteBudget
from mailproc.processing.context import OutcomeAction
from mailproc.store import migrate
from mailproc.store.db import first_line

if TYPE_CHECKING:
    from mailproc.dashboard.server import DashboardServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tick:
    """A periodic job that ``serve`` runs every ``serve.tick_interval_s`` with the current time."""

    name: str
    run: Callable[[dt.datetime], object]


def scheduled_ticks(app: App) -> list[Tick]:
    """The periodic jobs of ``serve``: the SLA check (breaches, escalation timers, surveys,
    incidents) when follow-ups are on. Delivery runs in its own thread (``Deliverer``)."""
    if app.settings.processing.followups:
        return [Tick("sla-check", lambda now: app.check(now, dry_run=False))]
    return []


def check_database(app: App) -> None:
    """Fail fast, with one line, when the database is unreachable or its schema is old."""
    try:
        current = migrate.current_revision(app.engine)
    except (exc.SQLAlchemyError, TransientError) as error:
        cause = error.__cause__ if isinstance(error, TransientError) else error
        raise StartupError(
            f"database unreachable: {first_line(cause or error)}", os.EX_TEMPFAIL
        ) from error
    head = migrate.head_revision()
    if current != head:
        raise StartupError(
            f"database schema is at {current or 'base'}, not {head}: run `mailproc db upgrade`",
            os.EX_CONFIG,
        )


def build_listener(
    app: App, settings: ListenerSettings, on_commit: Callable[[int], None] | None
) -> Listener:
    """The configured listener; a bad certificate or password file is a StartupError."""
    tls_context: ssl.SSLContext | None = None
    if settings.tls_cert:
        try:
            tls_context = make_tls_context(settings.tls_cert, settings.tls_key)
        except (OSError, ssl.SSLError) as error:
            raise StartupError(
                f"cannot load TLS certificate {settings.tls_cert} or key {settings.tls_key}: "
                f"{error}",
                os.EX_CONFIG,
            ) from error
    authenticator = None
    if settings.auth_file:
        try:
            authenticator = PasswordFile(Path(settings.auth_file))
        except (OSError, ValueError) as error:
            raise StartupError(f"cannot read auth_file: {error}", os.EX_CONFIG) from error
    committer = GroupCommitter(
        app.settings.database, app.clock, max_group=settings.group_max, on_commit=on_commit
    )
    policy = RecipientPolicy(app.settings.support.addresses, app.settings.support.domain)
    return Listener(
        settings,
        committer,
        policy,
        max_message_bytes=app.settings.intake.max_message_bytes,
        tls_context=tls_context,
        authenticator=authenticator,
    )


class Worker:
    """Processes pending mail when new mail was stored and every ``interval_s`` anyway.

    On SQLite one writer holds the database at a time, and a worker that begins its next batch
    right after a commit keeps the listener's commit writer out (4 SMTP clients during a
    5,000-mail backlog: p99 0.7-1.1 s, at worst the 5 s busy timeout and a 451). So there,
    with a listener (``share_with_listener``), the worker first waits, up to
    ``LISTENER_FIRST_S``, until the listener has no message waiting for its commit, and takes
    at most ``LISTENER_BATCH`` messages per transaction (then: p99 0.13-0.33 s, at worst
    about 2 s; benchmarks/bench_listener_backlog.py), fewer when the last transactions took
    longer than ``processing.budget.TARGET_S`` (100 ordinary mails held the write lock up to
    1.7 s on a loaded machine).
    """

    LISTENER_FIRST_S = 0.25
    LISTENER_BATCH = 100
    _POLL_S = 0.002

    def __init__(
        self, app: App, interval_s: float, on_batch: Callable[[int], None] | None = None
    ) -> None:
        self._app = app
        self._interval_s = interval_s
        self._on_batch = on_batch
        self.wake = threading.Event()
        self._listener_in_flight: Callable[[], int] | None = None
        self._batch_size: int | None = None
        self._budget: WriteBudget | None = None

    def share_with_listener(self, in_flight: Callable[[], int]) -> None:
        """Let the listener's commits go first (SQLite: one writer at a time)."""
        self._listener_in_flight = in_flight
        self._batch_size = min(self.LISTENER_BATCH, self._app.settings.processing.batch_size)
        self._budget = WriteBudget(self._batch_size)

    def wake_up(self, _count: int = 0) -> None:
        """Ask for a processing run soon (new mail was stored)."""
        self.wake.set()

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set; the run in progress at that moment is finished."""
        self.wake.set()  # whatever is pending from before the start
        while not stop.is_set():
            self.wake.wait(self._interval_s)
            self.wake.clear()
            if not stop.is_set():
                self.process_once()

    def _listener_first(self) -> None:
        """Let the listener's waiting commits take the database before the next batch."""
        in_flight = self._listener_in_flight
        if in_flight is None:
            return
        deadline = time.monotonic() + self.LISTENER_FIRST_S
        while in_flight() and time.monotonic() < deadline:
            time.sleep(self._POLL_S)

    def process_once(self) -> None:
        """One processing run; failures are logged and retried on the next wake-up."""
        try:
            summary = self._app.process(
                self._on_batch,
                before_batch=self._listener_first,
                batch_size=self._batch_size,
                budget=self._budget,
            )
        except TransientError as error:
            log.warning("processing postponed: %s", error)
            return
        except Exception:
            log.exception("processing failed")
            return
        if summary.outcomes:
            log.info(
                "processed %d: created %d, appended %d, reopened %d, duplicates %d, quarantined %d",
                len(summary.outcomes),
                summary.count(OutcomeAction.CREATED),
                summary.count(OutcomeAction.APPENDED),
                summary.count(OutcomeAction.REOPENED),
                summary.count(OutcomeAction.DUPLICATE),
                summary.count(OutcomeAction.QUARANTINED),
            )


class Deliverer:
    """Sends due mail as soon as a processing batch committed (``wake_up``), batch after batch
    while mail is due, and every ``interval_s`` anyway (retries, the scheduler's mail)."""

    def __init__(self, app: App, interval_s: float) -> None:
        self._app = app
        self._interval_s = interval_s
        self.wake = threading.Event()

    def wake_up(self, _count: int = 0) -> None:
        """Ask for a delivery run soon (mail may have been queued)."""
        self.wake.set()

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; the batch in progress at that moment is finished."""
        self.wake.set()
        while not stop.is_set():
            self.wake.wait(self._interval_s)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                summary = deliver_all_due(
                    self._app.sessions,
                    self._app.settings,
                    self._app.clock,
                    stop=stop,
                    pool=self._app.build_pool,
                )
            except TransientError as error:
                log.warning("delivery postponed: %s", error)
                continue
            except Exception:
                log.exception("delivery failed")
                continue
            if summary.handled or summary.skipped:
                log.info("delivered: %s", summary)


class Scheduler:
    """Runs every registered tick at start and then every ``interval_s``, one after another."""

    def __init__(self, app: App, ticks: Sequence[Tick], interval_s: float) -> None:
        self._app = app
        self._ticks = tuple(ticks)
        self._interval_s = interval_s

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set."""
        while not stop.is_set():
            for tick in self._ticks:
                if stop.is_set():
                    return
                try:
                    tick.run(self._app.clock.now())
                except TransientError as error:
                    log.warning("tick %s postponed: %s", tick.name, error)
                except Exception:
                    log.exception("tick %s failed", tick.name)
            stop.wait(self._interval_s)


@dataclass(frozen=True)
class Components:
    """What one ``serve`` process runs."""

    listener: ListenerSettings | None
    pollers: bool
    worker: bool
    ticks: Sequence[Tick] = ()
    dashboard: DashboardSettings | None = None
    deliver: bool = False


class Supervisor:
    """Starts the components, waits for a stop signal, shuts them down in order."""

    def __init__(self, app: App, components: Components) -> None:
        self.app = app
        self.components = components
        self.listener: Listener | None = None
        self.worker: Worker | None = None
        self.dashboard: DashboardServer | None = None
        self.deliverer: Deliverer | None = None
        self._stop_threads = threading.Event()
        self._threads: list[threading.Thread] = []

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        asyncio.run(self._run_until_signal())

    async def _run_until_signal(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.serve(stop)

    async def serve(self, stop: asyncio.Event) -> None:
        """Start everything, wait until ``stop`` is set, then shut down gracefully."""
        serve_settings = self.app.settings.serve
        deliverer = (
            Deliverer(self.app, serve_settings.tick_interval_s) if self.components.deliver else None
        )
        worker = (
            Worker(
                self.app,
                serve_settings.process_interval_s,
                on_batch=deliverer.wake_up if deliverer else None,
            )
            if self.components.worker
            else None
        )
        wake = worker.wake_up if worker else None
        pollers = self._pollers(wake)
        if not (self.components.listener or pollers or worker or self.components.dashboard):
            raise StartupError(
                "nothing to run: listener, pollers, worker and dashboard are all off", os.EX_CONFIG
            )
        check_database(self.app)
        if self.components.dashboard is not None:
            from mailproc.dashboard.server import DashboardServer  # web stack only when used

            self.dashboard = DashboardServer(
                self.app.settings.database, self.app.clock, self.components.dashboard
            )
            await self.dashboard.start()
        if self.components.listener is not None:
            listener = build_listener(self.app, self.components.listener, wake)
            try:
                await listener.start()
            except OSError as error:
                raise StartupError(
                    f"cannot listen on {self.components.listener.listen}: "
                    f"{os.strerror(error.errno) if error.errno else error}",
                    os.EX_UNAVAILABLE,
                ) from error
            self.listener = listener
            if worker is not None and self.app.engine.dialect.name == "sqlite":
                worker.share_with_listener(lambda: listener.committer.in_flight)
        for poller in pollers:
            self._start(f"poller-{poller.mailbox.name}", poller.run)
        if worker is not None:
            self.worker = worker
            self._start("worker", worker.run)
        if deliverer is not None:
            self.deliverer = deliverer
            self._start("deliverer", deliverer.run)
        if self.components.ticks:
            scheduler = Scheduler(self.app, self.components.ticks, serve_settings.tick_interval_s)
            self._start("scheduler", scheduler.run)
        log.info("serving (pid %d)", os.getpid())
        await stop.wait()
        await self._shutdown(serve_settings.shutdown_grace_s)

    def _pollers(self, on_stored: Callable[[int], None] | None) -> list[MailboxPoller]:
        if not self.components.pollers:
            return []
        holder = lease.new_holder()
        settings = self.app.settings.imap
        return [
            MailboxPoller(
                mailbox,
                settings,
                self.app.sessions,
                self.app.clock,
                holder=holder,
                on_stored=on_stored,
            )
            for mailbox in settings.mailboxes
        ]

    def _start(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop_threads,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    async def _shutdown(self, grace_s: float) -> None:
        log.info("shutting down: no new connections, finishing what is in flight")
        deadline = time.monotonic() + grace_s
        self._stop_threads.set()
        for waiting in (self.worker, self.deliverer):
            if waiting is not None:
                waiting.wake_up()
        if self.listener is not None:
            await self.listener.stop(grace_s)
        if self.dashboard is not None:
            await self.dashboard.stop()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "%s still busy after %.0fs; leaving it (its work rolls back)",
                    thread.name,
                    grace_s,
                )
        log.info("stopped")

"""``mailproc deliver``: send queued outbound mail through the configured relay."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Final

import click

from mailproc.app import App
from mailproc.cli.context import current_app, parse_time
from mailproc.cli.errors import EX_TEMPFAIL
from mailproc.clock import Clock, FixedClock
from mailproc.errors import TransientError
from mailproc.outbound.attempts import due_mails
from mailproc.outbound.deliver import DeliverySummary, deliver_all_due, deliver_due
from mailproc.store.db import transaction
from mailproc.supervisor import check_database

log = logging.getLogger(__name__)

IDLE_SLEEP_S: Final = 2.0


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option(
    "--now",
    "now_text",
    help="With --once: deliver what is due at this ISO time (a rehearsal of `sla check --now`).",
)
@click.option("--dry-run", is_flag=True, help="With --once: list what is due; send nothing.")
def deliver(once: bool, now_text: str | None, dry_run: bool) -> None:
    """Send queued mail through [relay] url (smtp://, smtps:// or maildir:), with retries.

    Without --once, keep delivering until SIGINT or SIGTERM, printing a line per round that
    did something. Exit codes: 0 done, 75 database unavailable or mail left due (the relay
    refused or deferred it), 78 bad config or old schema.
    """
    now = parse_time(now_text)
    if (now is not None or dry_run) and not once:
        raise click.UsageError("--now and --dry-run go with --once")
    app = current_app()
    check_database(app)
    if not once:
        _deliver_until_stopped(app)
        return
    clock: Clock = FixedClock(now) if now is not None else app.clock
    if dry_run:
        with transaction(app.sessions, commit=False) as session:
            due = due_mails(session, clock.now())
        for line in due:
            click.echo(f"would send: {line}")
        click.echo(f"dry run at {clock.now().isoformat()}: {len(due)} mail(s) due")
        return
    summary = deliver_all_due(app.sessions, app.settings, clock)
    click.echo(str(summary))
    if summary.retried or summary.skipped:
        click.echo("mailproc: mail is left due: the relay refused or deferred it", err=True)
        sys.exit(EX_TEMPFAIL)


def _deliver_until_stopped(app: App) -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            try:
                summary = deliver_due(app.sessions, app.settings, app.clock)
            except TransientError as error:  # the database went away: try again next round
                log.warning("delivery postponed: %s", error)
                summary = DeliverySummary()
            if summary.handled or summary.skipped:
                click.echo(str(summary))
            if summary.handled < app.settings.outbox.batch_size or summary.skipped:
                stop.wait(IDLE_SLEEP_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

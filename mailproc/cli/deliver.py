"""``mailproc deliver``: send queued outbound mail through the configured relay."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Final

import click

from mailproc.app import App
from mailproc.cli.context import current_app, deliver_with_progress
from mailproc.cli.errors import handles_errors
from mailproc.errors import TransientError
from mailproc.outbound.deliver import DeliverySummary, deliver_due
from mailproc.supervisor import check_database

log = logging.getLogger(__name__)

IDLE_SLEEP_S: Final = 2.0


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@handles_errors
def deliver(once: bool) -> None:
    """Send queued mail through [relay] url (smtp://, smtps:// or maildir:), with retries.

    Without --once, keep delivering until SIGINT or SIGTERM, printing a line per round that
    did something. Exit codes: 0 done, 75 database unavailable, 78 bad config or old schema.
    """
    app = current_app()
    check_database(app)
    if once:
        click.echo(str(deliver_with_progress(app)))
    else:
        _deliver_until_stopped(app)


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

"""The state every command shares: the lazily opened App, plus the output helpers they share."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from mailproc.app import App
from mailproc.clock import Clock
from mailproc.config import ConfigError, load_settings
from mailproc.config_transport import split_host_port
from mailproc.outbound.attempts import count_due
from mailproc.outbound.deliver import DeliverySummary, deliver_all_due
from mailproc.processing.context import OutcomeAction, ProcessSummary
from mailproc.resources import resource_path
from mailproc.store.db import missing_sqlite_file, transaction


class Context:
    """Lazily opened App for the chosen config file.

    Only ``init`` sets ``creates_database``: every other command finds a missing SQLite
    file a configuration error and creates nothing.
    """

    def __init__(self, config: str | None) -> None:
        self.config = config
        self.creates_database = False
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            settings = load_settings(self.config)
            missing = missing_sqlite_file(settings.database.url)
            if missing is not None and not self.creates_database:
                raise ConfigError(f"no database here ({missing}): run `mailproc init`")
            self._app = App(settings)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def state() -> Context:
    """The root command's Context."""
    found = click.get_current_context().find_object(Context)
    assert found is not None
    return found


def current_app() -> App:
    """The App of the root command (opened on first use)."""
    return state().app


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def parse_time(value: str | None) -> dt.datetime | None:
    """An ISO date or date-time option (UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


@contextmanager
def progress(label: str, length: int | None) -> Iterator[Callable[[int], None]]:
    """Progress on stderr when it is a terminal (a bar, or a count when ``length`` is
    unknown); silent elsewhere, where the command's summary line is all there is."""
    if not sys.stderr.isatty():
        yield lambda _done: None
        return
    if length is not None:
        with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    done = 0

    def count(more: int) -> None:
        nonlocal done
        done += more
        click.echo(f"\r{label}: {done}", nl=False, err=True)

    try:
        yield count
    finally:
        if done:
            click.echo(err=True)


def print_processing(summary: ProcessSummary) -> None:
    """One line of processing counts, then each quarantined message on stderr."""
    count = summary.count
    click.echo(
        f"processed {len(summary.outcomes)}: created {count(OutcomeAction.CREATED)}, "
        f"appended {count(OutcomeAction.APPENDED)}, reopened {count(OutcomeAction.REOPENED)}, "
        f"duplicates {count(OutcomeAction.DUPLICATE)}, "
        f"quarantined {count(OutcomeAction.QUARANTINED)}, held {count(OutcomeAction.HELD)}"
    )
    for outcome in summary.quarantined:
        click.echo(f"quarantined inbound {outcome.inbound_id}: {outcome.reason}", err=True)


def sample_customers_text() -> str:
    """The shipped sample customers CSV."""
    return (resource_path("data") / "customers_sample.csv").read_text("utf-8")


def print_import(report: Any) -> None:
    """The counts of a customer import, then each rejected line on stderr."""
    kept = f", kept {report.kept}" if report.kept else ""
    rejected = len({error.line for error in report.errors if error.rejected})
    click.echo(
        f"customers: created {report.created}, updated {report.updated}{kept}, rejected {rejected}"
    )
    if report.tickets_recomputed:
        click.echo(f"plan changes re-timed {report.tickets_recomputed} open ticket(s)")
    for error in report.errors:
        click.echo(f"  line {error.line}: {error.reason}", err=True)


def daemon_app(ctx: click.Context) -> App:
    """The App of the root command, with INFO logs per component unless -v was given."""
    if not ctx.find_root().params.get("verbose"):
        logging.getLogger("mailproc").setLevel(logging.INFO)
    if ctx.find_root().params.get("verbose", 0) < 2:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    return current_app()


def listen_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a --listen HOST:PORT option."""
    if value is not None:
        try:
            split_host_port(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


def deliver_with_progress(app: App, clock: Clock) -> DeliverySummary:
    """``deliver --once``: every due batch, with a progress bar on a terminal for long runs."""
    pool = app.build_pool
    if not sys.stderr.isatty():
        return deliver_all_due(app.sessions, app.settings, clock, pool=pool)
    with transaction(app.sessions, commit=False) as session:
        due = count_due(session, clock.now())
    if due <= app.settings.outbox.batch_size:
        return deliver_all_due(app.sessions, app.settings, clock, pool=pool)
    with click.progressbar(length=due, label="delivering", file=sys.stderr) as bar:
        return deliver_all_due(app.sessions, app.settings, clock, progress=bar.update, pool=pool)

"""The state every command shares: the lazily opened App, plus the output helpers they share."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from mailproc.app import App
from mailproc.config import load_settings
from mailproc.processing.context import OutcomeAction, ProcessSummary
from mailproc.resources import resource_path


class Context:
    """Lazily opened App for the chosen config file."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App(load_settings(self.config))
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
    click.echo(
        f"customers: created {report.created}, updated {report.updated}, "
        f"rejected {len(report.errors)}"
    )
    if report.tickets_recomputed:
        click.echo(f"plan changes re-timed {report.tickets_recomputed} open ticket(s)")
    for error in report.errors:
        click.echo(f"  line {error.line}: {error.reason}", err=True)

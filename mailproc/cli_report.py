"""``mailproc report`` and the filters of ``mailproc tickets list`` (issue 16)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from mailproc.app import App
from mailproc.reports import metrics
from mailproc.reports.periods import PeriodKind, choose_period, local_midnight
from mailproc.store.db import transaction
from mailproc.tickets.worklist import SORTS, WorkFilter, work_list

F = TypeVar("F", bound=Callable[..., Any])
_DATE = click.DateTime(["%Y-%m-%d"])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _now(app: App, text: str | None) -> dt.datetime:
    if text is None:
        return app.clock.now()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date-time", param_hint="--now") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


@click.command("report")
@click.option("--from", "first", type=_DATE, help="First day (YYYY-MM-DD, company time zone).")
@click.option("--to", "last", type=_DATE, help="Last day, included (YYYY-MM-DD).")
@click.option("--period", type=click.Choice(["week", "month", "quarter"]), help="Period length.")
@click.option("--json", "as_json", is_flag=True, help="The stable JSON contract.")
@click.option("--csv", "as_csv", is_flag=True, help="One row per metric.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report page (with charts) to FILE.",
)
@click.option("--now", "now_text", help="Judge deadlines as of this ISO time (default: now).")
@click.pass_context
def report(
    ctx: click.Context,
    first: dt.datetime | None,
    last: dt.datetime | None,
    period: str | None,
    as_json: bool,
    as_csv: bool,
    html_file: Path | None,
    now_text: str | None,
) -> None:
    """Support KPIs of a period against the procedures' targets.

    Default: the last full week (Monday to Sunday) in [company] timezone. --period alone:
    the last full week, month or quarter; with --from or --to, the one holding that day.
    """
    from mailproc.cli import handles_errors  # mailproc.cli imports this module

    if sum((as_json, as_csv, html_file is not None)) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")

    def run() -> None:
        app: App = ctx.find_root().obj.app
        now = _now(app, now_text)
        zone = ZoneInfo(app.settings.company.timezone)
        try:
            chosen = choose_period(
                now,
                zone,
                first.date() if first else None,
                last.date() if last else None,
                PeriodKind(period) if period else None,
            )
        except ValueError as error:
            raise click.UsageError(str(error)) from None
        with transaction(app.sessions, commit=False) as session:
            if html_file is not None:
                from mailproc.reports.mailing import build_page  # loads matplotlib

                page = build_page(session, chosen, now, content_id_domain=app.message_id_domain())
                html_file.write_text(page.standalone_html(), encoding="utf-8")
                click.echo(f"wrote {page.subject} to {html_file}")
                return
            found = metrics.report(session, chosen, now)
        if as_json:
            click.echo(json.dumps(found, indent=2, ensure_ascii=False))
        elif as_csv:
            click.echo(_csv(found["metrics"]), nl=False)
        else:
            click.echo(f"report {found['from']} .. {found['to']} ({found['timezone']})")
            for row in _flat(found["metrics"]):
                name, part, value, target, met = row
                mark = {True: "met", False: "MISSED", None: ""}[met] if target != "" else ""
                label = f"{name}{'.' + part if part else ''}"
                goal = f"target {target}" if target != "" else ""
                click.echo(f"{label:<45} {_text(value):>10}  {goal:<14} {mark}".rstrip())

    handles_errors(run)()


def _flat(found: dict[str, Any]) -> list[tuple[str, str, Any, Any, Any]]:
    """(metric, part, value, target, met) rows; a metric without a target leaves them ''."""
    rows: list[tuple[str, str, Any, Any, Any]] = []
    for name, entry in found.items():
        if "value" in entry:
            rows.append((name, "", entry["value"], entry.get("target", ""), entry.get("met")))
            continue
        for part, value in entry.items():
            if isinstance(value, dict):
                rows.append((name, part, value["value"], value["target"], value["met"]))
            else:
                rows.append((name, part, value, "", None))
    return rows


def _csv(found: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "part", "value", "target", "met"])
    for name, part, value, target, met in _flat(found):
        writer.writerow([name, part, _text(value, ""), target, "" if met is None else str(met)])
    return buffer.getvalue()


def _text(value: Any, empty: str = "-") -> str:
    return empty if value is None else str(value)


# --- tickets list ------------------------------------------------------------------------------


def work_list_options(command: F) -> F:
    """The work-list options of ``tickets list``."""
    options = (
        click.option(
            "--priority",
            "priorities",
            multiple=True,
            type=click.Choice(["P0", "P1", "P2", "P3"]),
            help="Repeat for several.",
        ),
        click.option("--assignee", help="Assigned to this name (#assign)."),
        click.option("--customer", help="A customer id, or part of the company or requester."),
        click.option("--overdue", is_flag=True, help="Open tickets past a deadline."),
        click.option("--due-within", help="Open tickets whose next deadline is within e.g. 4h."),
        click.option("--escalated", is_flag=True, help="Escalated to a team or manager."),
        click.option("--since", type=_DATE, help="Received on or after this day (company zone)."),
        click.option("--limit", type=click.IntRange(min=1), help="At most N tickets."),
        click.option("--sort", type=click.Choice(SORTS), help="Default: newest first."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def print_work_list(app: App, status: str | None, as_json: bool, options: dict[str, Any]) -> None:
    """Run ``tickets list`` with the work-list ``options`` and print the tickets."""
    since: dt.datetime | None = options.get("since")
    work = WorkFilter(
        status=status,
        priorities=tuple(options.get("priorities") or ()),
        assignee=options.get("assignee"),
        customer=options.get("customer"),
        overdue=bool(options.get("overdue")),
        due_within=_duration(options.get("due_within")),
        escalated=bool(options.get("escalated")),
        since=(
            local_midnight(since.date(), ZoneInfo(app.settings.company.timezone)) if since else None
        ),
        limit=options.get("limit"),
        sort=options.get("sort"),
    )
    now = app.clock.now()
    with transaction(app.sessions, commit=False) as session:
        rows = work_list(session, work, now)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    click.echo(
        f"{'TICKET':<8} {'STATUS':<8} {'PRI':<3} {'NEXT DUE (UTC)':<17} {'':<2} "
        f"{'ASSIGNEE':<12} {'CUSTOMER':<28} SUBJECT"
    )
    for row in rows:
        due = row["resolution_due"] if row["first_responded_at"] else row["first_response_due"]
        late = "!!" if row["first_response_breached"] or row["resolution_breached"] else ""
        who = (
            f"{row['customer_id']} {row['company'] or ''}"
            if row["customer_id"]
            else f"unknown {row['requester'] or ''}"
        )
        click.echo(
            f"#{row['number']:<7} {row['status']:<8} {row['priority'] or '--':<3} "
            f"{(due or '-')[:16].replace('T', ' '):<17} {late:<2} "
            f"{(row['assignee'] or '-')[:12]:<12} {who[:28]:<28} {row['subject'][:50]}"
        )
    click.echo(f"{len(rows)} ticket(s)")


def _duration(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r}: give a number and m, h or d (4h, 30m, 2d)", param_hint="--due-within"
        )
    return dt.timedelta(**{_UNITS[match[2]]: float(match[1])})

"""``mailproc report``: the support KPIs of a period against the procedures' targets (§10)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from mailproc.cli.context import current_app, parse_time, progress
from mailproc.kb.deflection import deflection_json, deflection_report
from mailproc.reports import metrics
from mailproc.reports.periods import PeriodKind, choose_period
from mailproc.store.db import transaction

DATE = click.DateTime(["%Y-%m-%d"])


@click.command("report")
@click.option("--from", "first", type=DATE, help="First day (YYYY-MM-DD, company time zone).")
@click.option("--to", "last", type=DATE, help="Last day, included (YYYY-MM-DD).")
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
def report(
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
    if sum((as_json, as_csv, html_file is not None)) > 1:
        raise click.UsageError("choose one of --json, --csv and --html")
    app = current_app()
    now = parse_time(now_text) or app.clock.now()
    if True:
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

                page = build_page(
                    session,
                    chosen,
                    now,
                    content_id_domain=app.message_id_domain(),
                    kb_target=app.settings.kb.monthly_target,
                )
                html_file.write_text(page.standalone_html(), encoding="utf-8")
                click.echo(f"wrote {page.subject} to {html_file}")
                return
            with progress("computing the report", metrics.QUERY_STEPS) as advance:
                found = metrics.report(session, chosen, now, advance)
            found["kb_deflection"] = deflection_json(
                deflection_report(session, app.settings.kb.monthly_target, now)
            )
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

"""``mailproc sla`` and ``incidents``: what falls due, and multi-customer incidents."""

from __future__ import annotations

import dataclasses

import click

from mailproc.cli.context import current_app, echo_json, parse_time
from mailproc.errors import NotFoundError
from mailproc.store.db import transaction
from mailproc.store.models import Incident
from mailproc.tickets import views


@click.group()
def sla() -> None:
    """SLA breaches, escalation timers, surveys and incidents (the cron breach notifier)."""


@sla.command("check")
@click.option("--now", "now_text", help="Run as of this ISO time (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sla_check(now_text: str | None, dry_run: bool, as_json: bool) -> None:
    """Send what falls due: breach apologies and alerts, escalations, surveys, incidents.

    Made for cron (and run by `serve` on its tick); overlapping runs send nothing twice.
    Mail queued by a run with --now T in the future is due at T: `deliver --once --now T`
    sends it (or rehearse with --dry-run, which queues nothing).
    """
    app = current_app()
    now = parse_time(now_text) or app.clock.now()
    summary = app.check(now, dry_run=dry_run)
    if as_json:
        echo_json({"now": now.isoformat(), "dry_run": dry_run, **dataclasses.asdict(summary)})
        return
    for line in summary.lines():
        click.echo(("would: " if dry_run else "") + line)
    click.echo(
        f"{'dry run: ' if dry_run else ''}sla check at {now.isoformat()}: "
        f"{len(summary.breaches)} breach notice(s), {len(summary.escalations)} escalation(s), "
        f"{len(summary.voided)} void timer(s), {len(summary.surveys)} survey(s), "
        f"{len(summary.incidents)} incident(s)"
    )


@click.group()
def incidents() -> None:
    """Multi-customer P0 incidents: list and resolve."""


@incidents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def incidents_list(as_json: bool) -> None:
    """List incidents with their tickets."""
    with transaction(current_app().sessions, commit=False) as session:
        rows = views.list_incidents(session)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:>4}  {row['status']:<8} {row['code']:<10} started "
            f"{row['started_at']}  tickets {', '.join(map(str, row['tickets']))}"
        )
    click.echo(f"{len(rows)} incident(s)")


@incidents.command("resolve")
@click.argument("incident_id", type=int)
@click.option("--summary", default="", help="What was fixed (sent to every customer).")
def incidents_resolve(incident_id: int, summary: str) -> None:
    """Resolve an incident: its tickets are resolved and every customer is updated."""
    app = current_app()
    with transaction(app.sessions) as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise NotFoundError(f"no incident {incident_id}")
        numbers = app.workflows().resolve_incident(session, incident, summary, app.clock.now())
    click.echo(
        f"incident {incident_id} resolved; customers of tickets "
        f"{', '.join(map(str, numbers)) or '-'} updated"
    )

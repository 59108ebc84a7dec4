"""``mailproc tickets``: list, show and re-prioritise tickets."""

from __future__ import annotations

import click

from mailproc.cli.context import current_app, echo_json
from mailproc.core.model import Priority
from mailproc.errors import NotFoundError
from mailproc.store import repo
from mailproc.store.db import transaction
from mailproc.tickets import views
from mailproc.tickets.ops import change_priority


@click.group()
def tickets() -> None:
    """Tickets: list and show."""


@tickets.command("list")
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved", "closed"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tickets_list(status: str | None, as_json: bool) -> None:
    """List tickets, newest first."""
    with transaction(current_app().sessions, commit=False) as session:
        rows = views.list_tickets(session, status)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        who = (
            f"customer {row['customer_id']} ({row['plan']})"
            if row["customer_id"]
            else (f"unknown {row['requester']}")
        )
        assignee = f"  @{row['assignee']}" if row["assignee"] else ""
        click.echo(
            f"#{row['number']}  {row['status']:<8} {row['priority'] or '--'}  "
            f"{who}{assignee}  {row['subject'][:60]}"
        )
    click.echo(f"{len(rows)} ticket(s)")


@tickets.command("show")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tickets_show(number: int, as_json: bool) -> None:
    """Show one ticket with its messages and event log."""
    with transaction(current_app().sessions, commit=False) as session:
        detail = views.ticket_detail(session, number)
    if detail is None:
        raise NotFoundError(f"no ticket #{number}")
    if as_json:
        echo_json(detail)
        return
    click.echo(f"Ticket #{detail['number']} [{detail['status']}] {detail['subject']}")
    if detail["customer_id"]:
        click.echo(f"Customer: {detail['customer_id']} {detail['company']} ({detail['plan']})")
    else:
        click.echo(f"Customer: unknown ({detail['requester']})")
    click.echo(f"Assigned to: {detail['assignee'] or '-'}")
    local = detail["local_times"]
    click.echo(
        f"Received: {detail['received_at']} (local {local['received_at']}, {detail['timezone']})"
    )
    if detail["priority"]:
        click.echo(
            f"Priority: {detail['priority']} ({detail['intent']})"
            f"{'  NEEDS TRIAGE: ' + detail['triage_reason'] if detail['needs_triage'] else ''}"
        )
        for hit in detail["classification"].get("rule_hits", []):
            click.echo(f"  rule {hit['rule']}: {hit['reason']}")
        codes = detail["classification"].get("error_codes") or []
        unknown = detail["classification"].get("unknown_codes") or []
        click.echo(
            f"Error codes: {', '.join(codes) or '-'}"
            f"{'  (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}"
        )
        sla = detail["sla"]
        click.echo(f"SLA row: {sla.get('sla_row')}; calendar: {sla.get('calendar')}")
        for name in ("first_response_due", "resolution_due", "triage_due"):
            if detail[name]:
                label = name.replace("_", " ")
                click.echo(f"  {label}: {detail[name]} UTC = {local[name]} local")
    for message in detail["messages"]:
        click.echo(
            f"\n--- {message['direction']} {message['sent_at'] or ''} "
            f"from {message['from']} <{message['message_id']}>"
        )
        click.echo(message["new_text"][:2000])
        for attachment in message["attachments"]:
            click.echo(
                f"  [attachment] {attachment['filename']} "
                f"({attachment['content_type']}, {attachment['size']} bytes)"
            )
    click.echo("\nEvents:")
    for event in detail["events"]:
        click.echo(f"  {event['at']}  {event['kind']}: {event['reason']}")


@tickets.command("priority")
@click.argument("number", type=int)
@click.argument("priority", type=click.Choice(["P0", "P1", "P2", "P3"]))
def tickets_priority(number: int, priority: str) -> None:
    """Change a ticket's priority; its due times are recomputed and the change is logged."""
    app = current_app()
    policy = app.processing_context().sla
    with transaction(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        if ticket is None:
            raise NotFoundError(f"no ticket #{number}")
        changed = change_priority(
            session, ticket, Priority(priority), policy, app.clock.now(), "an admin (CLI)"
        )
        due = ticket.first_response_due
    click.echo(
        f"#{number}: priority {priority}; first response due {due}"
        if changed
        else f"#{number} already has priority {priority}"
    )

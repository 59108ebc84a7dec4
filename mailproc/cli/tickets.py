"""``mailproc tickets``: list, show and re-prioritise tickets."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from mailproc.app import App
from mailproc.cli.context import current_app, echo_json
from mailproc.core.model import Priority
from mailproc.errors import NotFoundError
from mailproc.reports.periods import local_midnight
from mailproc.store import repo
from mailproc.store.db import transaction
from mailproc.tickets import views
from mailproc.tickets.worklist import SORTS, WorkFilter, work_list

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


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
        click.option(
            "--translation-requested",
            is_flag=True,
            help="Answered in English although the customer writes or prefers another language.",
        ),
        click.option(
            "--since",
            type=click.DateTime(["%Y-%m-%d"]),
            help="Received on or after this day (company zone).",
        ),
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
        translation_requested=bool(options.get("translation_requested")),
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
        f"{'ASSIGNEE':<16} {'CUSTOMER':<28} SUBJECT"
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
            f"{(row['assignee'] or '-')[:16]:<16} {who[:28]:<28} {row['subject'][:50]}"
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


@click.group()
def tickets() -> None:
    """Tickets: list and show."""


@tickets.command("list")
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved", "closed"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@work_list_options
def tickets_list(status: str | None, as_json: bool, **options: Any) -> None:
    """List tickets, newest first, or as a work list (filters, --sort)."""
    print_work_list(current_app(), status, as_json, options)


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
    """Change a ticket's priority; its due times are recomputed, the change is logged and
    the new priority's escalations start (a P0 goes to DevOps at once)."""
    app = current_app()
    desk = app.workflows()
    with transaction(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        if ticket is None:
            raise NotFoundError(f"no ticket #{number}")
        changed = desk.set_priority(
            session, ticket, Priority(priority), app.clock.now(), "an admin (CLI)"
        )
        due = ticket.first_response_due
    click.echo(
        f"#{number}: priority {priority}; first response due {due}"
        if changed
        else f"#{number} already has priority {priority}"
    )

"""``mailproc outbox``: the mail queued to go out, where each one stands, and its bytes."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.cli.context import current_app, echo_json
from mailproc.cli.errors import EX_DATAERR, fail
from mailproc.outbound.build import build
from mailproc.outbound.compose import HeaderError
from mailproc.outbound.deliver import renderer_for
from mailproc.outbound.outbox import Lane, OutboxStatus
from mailproc.outbound.render import RenderError
from mailproc.store.db import transaction
from mailproc.store.models import Event, Outbox, Ticket


@click.group()
def outbox() -> None:
    """Outbound mail: list it, show one with its recipients, events and bytes."""


@outbox.command("list")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]))
@click.option("--ticket", "ticket_number", type=int, help="Only the mail of this ticket number.")
@click.option("--limit", default=200, show_default=True, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def outbox_list(status: str | None, ticket_number: int | None, limit: int, as_json: bool) -> None:
    """List outbound mail, newest first: status, lane, template, ticket, recipients."""
    query = (
        select(Outbox, Ticket.number)
        .outerjoin(Ticket, Ticket.id == Outbox.ticket_id)
        .order_by(Outbox.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Outbox.status == status)
    if ticket_number is not None:
        query = query.where(Ticket.number == ticket_number)
    with transaction(current_app().sessions, commit=False) as session:
        rows = [_summary(row, number) for row, number in session.execute(query)]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:>7}  {row['status']:<8} {row['lane']:<8} {row['template']:<24} "
            f"#{row['ticket'] or '-':<6} {','.join(row['recipients'])}"
            + (f"  {row['last_error']}" if row["last_error"] else "")
        )
    click.echo(f"{len(rows)} mail(s)")


@outbox.command("show")
@click.argument("outbox_id", type=int)
@click.option("--raw", is_flag=True, help="Print the mail's bytes (built now if not sent yet).")
def outbox_show(outbox_id: int, raw: bool) -> None:
    """Show one outbound mail: envelope, recipients with their results, events."""
    app = current_app()
    with transaction(app.sessions, commit=False) as session:
        row = session.get(Outbox, outbox_id)
        if row is None:
            fail(f"no outbound mail {outbox_id}", EX_DATAERR)
        number = session.scalar(select(Ticket.number).where(Ticket.id == row.ticket_id))
        data = _summary(row, number) | _details(session, row)
        stored = row.raw
        if raw and stored is None:
            try:
                stored = build(
                    row.id,
                    row.template,
                    row.locale,
                    row.context,
                    row.envelope,
                    renderer_for(app.settings),
                ).raw
            except (RenderError, HeaderError) as error:
                fail(f"outbound mail {outbox_id} cannot be built: {error}", EX_DATAERR)
    if raw:
        click.echo(stored, nl=False)
        return
    echo_json(data)


def _summary(row: Outbox, ticket_number: int | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "lane": Lane(row.lane).name.lower(),
        "template": row.template,
        "ticket": ticket_number,
        "recipients": [r.address for r in row.recipients],
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "last_error": row.last_error,
    }


def _details(session: Session, row: Outbox) -> dict[str, Any]:
    events = session.execute(
        select(Event.at, Event.kind, Event.reason)
        .where(Event.kind.startswith("outbound."), Event.detail["outbox_id"].as_integer() == row.id)
        .order_by(Event.id)
    )
    return {
        "key": row.key,
        "message_id": row.message_id,
        "locale": row.locale,
        "envelope_from": row.envelope_from,
        "auto_submitted": row.auto_submitted,
        "deadline_at": row.deadline_at,
        "built": row.raw is not None,
        "results": {r.address: {"status": r.status, "reason": r.reason} for r in row.recipients},
        "events": [{"at": at, "kind": kind, "reason": reason} for at, kind, reason in events],
    }

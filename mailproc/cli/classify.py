"""``mailproc classify``: what mailproc would make of one message, storing nothing."""

from __future__ import annotations

from pathlib import Path

import click

from mailproc.cli.context import current_app, echo_json, parse_time
from mailproc.cli.errors import InputPath
from mailproc.tickets import views


@click.command("classify")
@click.argument("file", type=InputPath())
@click.option("--customer", "customer_id", type=int, help="Time it for this customer id.")
@click.option("--received", help="Receipt time (ISO; default now, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def classify_command(
    file: Path, customer_id: int | None, received: str | None, as_json: bool
) -> None:
    """Print the priority, rules, error codes and due times of FILE.eml; store nothing."""
    app = current_app()
    received_at = parse_time(received) or app.clock.now()
    prepared, customer, assessment = app.assess_message(file.read_bytes(), customer_id, received_at)
    found, deadlines = assessment.classification, assessment.deadlines
    zone = views.zone_of(customer.timezone if customer else "UTC")
    result = {
        "subject": prepared.parsed.subject,
        "kind": prepared.detection.kind.value,
        "customer_id": customer.id if customer else None,
        "plan": deadlines.plan.value,
        "priority": found.priority.value,
        "intent": found.intent.value,
        "needs_triage": found.needs_triage,
        "triage_reason": found.triage_reason,
        **assessment.classification_record(),
        "sla_row": deadlines.sla_row,
        "calendar": deadlines.calendar_description,
        "received_at": received_at.isoformat(),
        "first_response_due": deadlines.first_response_due.isoformat(),
        "first_response_due_local": deadlines.first_response_due.astimezone(zone).isoformat(),
        "resolution_due": deadlines.resolution_due.isoformat()
        if deadlines.resolution_due
        else None,
        "explanation": list(deadlines.explanation),
    }
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"{result['subject']}\n  kind {result['kind']}; customer "
        f"{result['customer_id'] or 'unknown'} ({result['plan']})"
    )
    click.echo(f"  {assessment.explain_priority()}")
    if found.needs_triage:
        click.echo(f"  needs triage: {found.triage_reason}")
    for line in deadlines.explanation:
        click.echo(f"  {line}")

"""``mailproc credits``: the credits and approved refunds, for Finance."""

from __future__ import annotations

import csv
import io

import click

from mailproc.cli.context import current_app, echo_json, parse_time
from mailproc.core.customers_csv import neutralize_cell
from mailproc.store.db import transaction
from mailproc.tickets.credits import credits_ledger

COLUMNS = (
    "time",
    "kind",
    "customer_id",
    "company",
    "ticket",
    "amount",
    "currency",
    "reason",
    "approver",
)


@click.group()
def credits() -> None:
    """Credits and approved refunds: what was given back, to whom, by whose approval."""


@credits.command("list")
@click.option("--since", help="Only those given since this ISO date or date-time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV for a spreadsheet.")
def credits_list(since: str | None, as_json: bool, as_csv: bool) -> None:
    """List every credit (SLA breach, low score, partial credit) and approved refund, oldest
    first: time, customer, ticket, exact amount and currency, reason, approver."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    with transaction(current_app().sessions, commit=False) as session:
        lines = [line.as_dict() for line in credits_ledger(session, parse_time(since))]
    if as_json:
        echo_json(lines)
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for line in lines:
            writer.writerow(
                neutralize_cell("" if line[name] is None else str(line[name])) for name in COLUMNS
            )
        click.echo(out.getvalue(), nl=False)
        return
    for line in lines:
        click.echo(
            f"{line['time']}  {line['kind']:<6}  {line['customer_id'] or '-':<6} "
            f"#{line['ticket'] or '-':<6} {line['amount']:>10} {line['currency']}  "
            f"{line['approver']:<16} {line['reason']}"
        )
    click.echo(f"{len(lines)} credit(s) and refund(s)")

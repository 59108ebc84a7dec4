"""``mailproc ingest``, ``process`` and ``replay``: mail in, tickets out, replays from raw mail."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from mailproc.cli.context import current_app, parse_time, print_processing, progress
from mailproc.cli.errors import EX_DATAERR, NoInputError
from mailproc.errors import NotFoundError, TransientError
from mailproc.intake.sources import RawInput, read_path, read_stdin
from mailproc.processing.replay import ReplaySelection
from mailproc.resources import resource_path


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the worker.")
@click.option("--sample", is_flag=True, help="Ingest the shipped sample support mails.")
@click.option(
    "--history",
    is_flag=True,
    help="Old mail: thread and store it at its own Date as already handled; send nothing.",
)
def ingest(paths: tuple[Path, ...], no_process: bool, sample: bool, history: bool) -> None:
    """Store mail from .eml files, Maildirs, mbox files or stdin (`-` or no PATH).

    With --history, each message is timed by its own Date (sane bounds; else its Received
    time) and its tickets open as already handled: no SLA clock, timers, survey or mail.

    Exit codes follow sysexits for MTA pipes: 0 stored, 65 not mail, 66 no such file,
    75 database unavailable (the MTA should retry; nothing was half-written).
    """
    if sample:
        paths = (*paths, resource_path("data") / "sample_mail")
    missing = [p for p in paths if str(p) != "-" and not p.exists()]
    if missing:
        raise NoInputError(f"no such file or folder: {missing[0]}")
    app = current_app()
    with progress("storing", None) as stored:
        report = app.ingest(
            _inputs(paths), stored, processing_follows=not no_process, history=history
        )
    click.echo(
        f"stored {report.stored}, duplicates {report.duplicates}, "
        f"Message-ID conflicts {report.message_id_conflicts}, "
        f"rejected {len(report.rejected)}"
    )
    for where, reason in report.rejected:
        click.echo(f"rejected {where}: {reason}", err=True)
    if not no_process:
        try:
            print_processing(app.process())
        except TransientError as error:  # stored is stored: report, do not ask for a resend
            click.echo(f"processing postponed: {error}", err=True)
    if report.rejected:
        sys.exit(EX_DATAERR)


def _inputs(paths: tuple[Path, ...]) -> Iterator[RawInput]:
    if not paths or [str(p) for p in paths] == ["-"]:
        yield read_stdin(sys.stdin.buffer)
        return
    for path in paths:
        if str(path) == "-":
            yield read_stdin(sys.stdin.buffer)
        else:
            yield from read_path(path)


@click.command()
def process() -> None:
    """Process every pending message into tickets (quarantining failures)."""
    print_processing(current_app().process())


@click.command("replay")
@click.option("--all", "everything", is_flag=True, help="Every stored message.")
@click.option("--ticket", "ticket_number", type=int, help="The messages of ticket N.")
@click.option("--message-id", help="The message(s) with this Message-ID.")
@click.option("--since", help="Messages received since this ISO date or date-time (UTC).")
@click.option("--quarantined", is_flag=True, help="Every quarantined message.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def replay(
    everything: bool,
    ticket_number: int | None,
    message_id: str | None,
    since: str | None,
    quarantined: bool,
    dry_run: bool,
) -> None:
    """Re-run processing from the stored raw mail, idempotently."""
    selection = ReplaySelection(
        everything, ticket_number, message_id, parse_time(since), quarantined
    )
    chosen = sum(map(bool, (everything, ticket_number, message_id, since, quarantined)))
    if chosen != 1:
        raise click.UsageError(
            f"{'choose one' if chosen else 'say what to replay'}: "
            "--all, --ticket, --message-id, --since or --quarantined"
        )
    app = current_app()
    ids = app.replay_ids(selection)
    if not ids and (ticket_number or message_id):
        raise NotFoundError(
            f"no ticket #{ticket_number}" if ticket_number else f"no message <{message_id}>"
        )
    with progress("replaying", len(ids)) as replayed:
        results = app.replay(ids, dry_run=dry_run, progress=replayed)
    prefix = "would be " if dry_run else ""
    for result in results:
        if result.action != "unchanged":
            click.echo(f"inbound {result.inbound_id}: {prefix}{result.action} {result.detail}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action] = counts.get(result.action, 0) + 1
    summary = ", ".join(f"{action} {n}" for action, n in sorted(counts.items())) or "nothing"
    click.echo(f"{'dry run: ' if dry_run else ''}replayed {len(results)}: {summary}")

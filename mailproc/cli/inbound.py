"""``mailproc inbound`` and ``quarantine``: the stored raw messages and the failed ones."""

from __future__ import annotations

import click

from mailproc.cli.context import current_app, echo_json, print_processing
from mailproc.core.detect import MailKind
from mailproc.errors import NotFoundError
from mailproc.processing.worker import release
from mailproc.store.db import transaction
from mailproc.store.models import Blob, Inbound
from mailproc.tickets import views


@click.group()
def quarantine() -> None:
    """Messages that failed processing: list, show, release."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def quarantine_list(as_json: bool) -> None:
    """List quarantined messages with their reasons."""
    with transaction(current_app().sessions, commit=False) as session:
        rows = views.list_inbound(session, status="quarantined")
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:>6}  attempts {row['attempts']}  {row['source']}  "
            f"<{row['message_id']}>  {row['last_error']}"
        )
    click.echo(f"{len(rows)} quarantined message(s)")


@quarantine.command("show")
@click.argument("inbound_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message bytes.")
@click.option("--json", "as_json", is_flag=True, help="Envelope, error and events as JSON.")
def quarantine_show(inbound_id: int, raw: bool, as_json: bool) -> None:
    """Show one stored message: why it failed, from whom, what (--raw: its bytes)."""
    with transaction(current_app().sessions, commit=False) as session:
        row = session.get(Inbound, inbound_id)
        if row is None:
            raise NotFoundError(f"no inbound message {inbound_id}")
        data = views.inbound_view(row)
        data["events"] = views.inbound_events(session, inbound_id)
        sender, subject = views.inbound_headlines(session, [inbound_id])[inbound_id]
        blob = session.get(Blob, row.raw_sha256)
        raw_bytes = blob.data if blob is not None else b""
    if raw:
        click.echo(raw_bytes, nl=False)
    elif as_json:
        echo_json(data)
    else:
        click.echo(f"Inbound {data['id']} [{data['status']}] received {data['received_at']}")
        click.echo(f"Reason:   {data['last_error'] or '-'}")
        click.echo(f"From:     {sender or '-'} (envelope {data['envelope_from'] or '-'})")
        click.echo(f"Subject:  {subject or '-'}")
        click.echo(f"Size:     {data['size']} bytes; attempts {data['attempts']}")
        click.echo(f"Source:   {data['source']} {data['source_ref'] or ''}".rstrip())
        for event in data["events"]:
            click.echo(f"  {event['at']}  {event['kind']}: {event['reason']}")


@quarantine.command("release")
@click.argument("inbound_ids", nargs=-1, type=int)
@click.option("--all", "release_all", is_flag=True, help="Release every quarantined message.")
@click.option("--no-process", is_flag=True, help="Only mark them pending.")
def quarantine_release(inbound_ids: tuple[int, ...], release_all: bool, no_process: bool) -> None:
    """Return messages (INBOUND_IDS, or --all) to the queue and process them again."""
    if bool(inbound_ids) == release_all:
        raise click.UsageError("give either the ids to release or --all")
    app = current_app()
    with transaction(app.sessions) as session:
        ids = list(inbound_ids)
        if release_all:
            ids = [row["id"] for row in views.list_inbound(session, status="quarantined")]
        released = release(session, ids, app.clock.now())
        not_released = sorted(set(ids) - set(released))
        if not_released:  # the transaction rolls back: all or nothing
            raise NotFoundError(
                f"no quarantined message {', '.join(map(str, not_released))}; nothing released"
            )
    click.echo(f"released {len(released)}: {', '.join(map(str, released)) or '-'}")
    if not no_process and released:
        print_processing(app.process())


@click.group()
def inbound() -> None:
    """Stored raw messages of every kind."""


@inbound.command("list")
@click.option("--status", type=click.Choice(["pending", "processed", "quarantined"]))
@click.option("--kind", type=click.Choice([*(kind.value for kind in MailKind), "duplicate"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inbound_list(status: str | None, kind: str | None, as_json: bool) -> None:
    """List stored raw messages, newest first."""
    with transaction(current_app().sessions, commit=False) as session:
        rows = views.list_inbound(session, status=status, kind=kind)
        headlines = {} if as_json else views.inbound_headlines(session, [r["id"] for r in rows])
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        sender, subject = headlines.get(row["id"], ("", ""))
        click.echo(
            f"{row['id']:>6}  {row['received_at'][:16].replace('T', ' ')}  "
            f"{row['status']:<11} {row['kind'] or '-':<10} {_cut(sender, 32):<32}  "
            f"{_cut(subject, 60)}"
        )
    click.echo(f"{len(rows)} message(s)")


@inbound.command("promote")
@click.argument("inbound_id", type=int)
def inbound_promote(inbound_id: int) -> None:
    """Turn a stored bulk or spam message into a ticket: it was a person's mail after all."""
    outcome = current_app().promote(inbound_id)
    where = f"ticket #{outcome.ticket_number}" if outcome.ticket_number else "no ticket"
    click.echo(f"inbound {inbound_id}: {outcome.action}, {where} ({outcome.reason})")


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word and marked with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;") + "…"

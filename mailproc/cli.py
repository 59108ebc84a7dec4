"""The ``mailproc`` command line: the composition root that wires settings, store and services."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from mailproc import __version__
from mailproc.app import App
from mailproc.cli_board import board, dashboard
from mailproc.cli_report import print_work_list, report, work_list_options
from mailproc.cli_serve import poll, serve, worker
from mailproc.config import ConfigError, config_path, load_settings
from mailproc.core.model import Priority
from mailproc.errors import PermanentError, TransientError
from mailproc.intake.sources import RawInput, read_path, read_stdin
from mailproc.outbound.cli_deliver import deliver
from mailproc.outbound.cli_templates import templates
from mailproc.processing import ReplaySelection, release
from mailproc.resources import resource_path
from mailproc.runtime import tune_gc
from mailproc.store import migrate, repo
from mailproc.store.db import transaction
from mailproc.store.models import Blob, Inbound, Incident
from mailproc.tickets import views
from mailproc.tickets.ops import change_priority

# sysexits.h: what an MTA pipe understands
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Lazily opened App for the chosen config file."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = App(load_settings(self.config))
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def fail(message: str, code: int) -> None:
    """Print an error and leave with a sysexits code."""
    click.echo(f"mailproc: {message}", err=True)
    sys.exit(code)


def handles_errors(command: F) -> F:
    """Map mailproc's errors to sysexits codes with one clear line each."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            fail(str(error), EX_CONFIG)
        except TransientError as error:
            hint = ""
            if "no such table" in str(error) or "does not exist" in str(error):
                hint = " (run `mailproc db upgrade`)"
            fail(f"{error}{hint}; nothing was half-written, try again later", EX_TEMPFAIL)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="mailproc")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $MAILPROC_CONFIG, then ./mailproc.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int) -> None:
    """mailproc: turn a support mailbox into tickets with SLAs and localized replies."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # flufl.bounce logs a traceback for each detector that trips on odd mail; we catch those
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL if verbose < 2 else logging.DEBUG)
    tune_gc()
    state = Context(config)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _app() -> App:
    state = click.get_current_context().find_object(Context)
    assert state is not None
    return state.app


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# ----------------------------------------------------------------------------- init / db


@cli.command()
@click.option("--sample-data", is_flag=True, help="Also load the shipped sample customers.")
@click.pass_context
@handles_errors
def init(ctx: click.Context, sample_data: bool) -> None:
    """Write a commented config (if none exists) and create or upgrade the database."""
    state = ctx.find_object(Context)
    assert state is not None
    path = config_path(state.config)
    if path.exists():
        click.echo(f"config: {path} exists, left as it is")
    else:
        path.write_text(
            (resource_path("data") / "mailproc.example.toml").read_text("utf-8"), encoding="utf-8"
        )
        click.echo(f"config: wrote {path}")
    app = state.app
    app.upgrade_database()
    click.echo(
        f"database: {app.settings.database.url} at revision {migrate.current_revision(app.engine)}"
    )
    if sample_data:
        _print_import(app.import_customers(_sample_customers_text()))


@cli.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current, history."""


@db.command("upgrade")
@click.argument("revision", default="head")
@handles_errors
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    app = _app()
    migrate.upgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine)}")


@db.command("downgrade")
@click.argument("revision")
@handles_errors
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table)."""
    app = _app()
    migrate.downgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine) or 'base'}")


@db.command("current")
@handles_errors
def db_current() -> None:
    """Show the database's revision and the newest one shipped."""
    app = _app()
    current = migrate.current_revision(app.engine)
    head = migrate.head_revision()
    state = "up to date" if current == head else "needs `mailproc db upgrade`"
    click.echo(f"current: {current or 'base (empty)'}; head: {head} ({state})")


@db.command("history")
def db_history() -> None:
    """List the shipped migrations, newest first."""
    for line in migrate.history():
        click.echo(line)


# ----------------------------------------------------------------------------- intake


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--no-process", is_flag=True, help="Only store; leave processing to the worker.")
@click.option("--sample", is_flag=True, help="Ingest the shipped sample support mails.")
@handles_errors
def ingest(paths: tuple[Path, ...], no_process: bool, sample: bool) -> None:
    """Store mail from .eml files, Maildirs, mbox files or stdin (`-` or no PATH).

    Exit codes follow sysexits for MTA pipes: 0 stored, 65 not mail, 66 no such file,
    75 database unavailable (the MTA should retry; nothing was half-written).
    """
    if sample:
        paths = (*paths, resource_path("data") / "sample_mail")
    missing = [p for p in paths if str(p) != "-" and not p.exists()]
    if missing:
        fail(f"no such file or folder: {missing[0]}", EX_NOINPUT)
    app = _app()
    report = app.ingest(_inputs(paths), processing_follows=not no_process)
    click.echo(
        f"stored {report.stored}, duplicates {report.duplicates}, "
        f"Message-ID conflicts {report.message_id_conflicts}, "
        f"rejected {len(report.rejected)}"
    )
    for where, reason in report.rejected:
        click.echo(f"rejected {where}: {reason}", err=True)
    if not no_process:
        try:
            _print_processing(app.process())
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


@cli.command()
@handles_errors
def process() -> None:
    """Process every pending message into tickets (quarantining failures)."""
    _print_processing(_app().process())


def _print_processing(summary: Any) -> None:
    click.echo(
        f"processed {len(summary.outcomes)}: created {summary.count('created')}, "
        f"appended {summary.count('appended')}, reopened {summary.count('reopened')}, "
        f"duplicates {summary.count('duplicate')}, quarantined {summary.count('quarantined')}"
    )
    for outcome in summary.quarantined:
        click.echo(f"quarantined inbound {outcome.inbound_id}: {outcome.reason}", err=True)


# ----------------------------------------------------------------------------- customers


@cli.group()
def customers() -> None:
    """Customers: import and export the customer_analytics CSV."""


def _sample_customers_text() -> str:
    return (resource_path("data") / "customers_sample.csv").read_text("utf-8")


def _print_import(report: Any) -> None:
    click.echo(
        f"customers: created {report.created}, updated {report.updated}, "
        f"rejected {len(report.errors)}"
    )
    if report.tickets_recomputed:
        click.echo(f"plan changes re-timed {report.tickets_recomputed} open ticket(s)")
    for error in report.errors:
        click.echo(f"  line {error.line}: {error.reason}", err=True)


@customers.command("import")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option("--sample", is_flag=True, help="Import the shipped sample customers 1001-1050.")
@handles_errors
def customers_import(file: Path | None, sample: bool) -> None:
    """Insert or update customers from FILE.csv; bad rows are listed with line numbers."""
    if (file is None) == (not sample):
        fail("give either FILE or --sample", EX_USAGE)
    text = _sample_customers_text() if sample else file.read_text("utf-8-sig")  # type: ignore[union-attr]
    report = _app().import_customers(text)
    _print_import(report)
    if report.errors and not report.created and not report.updated:
        sys.exit(EX_DATAERR)


@customers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@handles_errors
def customers_export(file: Path) -> None:
    """Write every customer to FILE.csv in the import format (`-` for stdout)."""
    text = _app().export_customers()
    if str(file) == "-":
        click.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {text.count(chr(10)) - 1} customers to {file}")


# ----------------------------------------------------------------------------- tickets


@cli.group()
def tickets() -> None:
    """Tickets: list and show."""


@tickets.command("list")
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved", "closed"]))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@work_list_options
@handles_errors
def tickets_list(status: str | None, as_json: bool, **options: Any) -> None:
    """List tickets, newest first, or as a work list (filters, --sort)."""
    print_work_list(_app(), status, as_json, options)


@tickets.command("show")
@click.argument("number", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def tickets_show(number: int, as_json: bool) -> None:
    """Show one ticket with its messages and event log."""
    with transaction(_app().sessions, commit=False) as session:
        detail = views.ticket_detail(session, number)
    if detail is None:
        fail(f"no ticket #{number}", EX_DATAERR)
        return
    if as_json:
        _echo_json(detail)
        return
    click.echo(f"Ticket #{detail['number']} [{detail['status']}] {detail['subject']}")
    if detail["customer_id"]:
        click.echo(f"Customer: {detail['customer_id']} {detail['company']} ({detail['plan']})")
    else:
        click.echo(f"Customer: unknown ({detail['requester']})")
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
@handles_errors
def tickets_priority(number: int, priority: str) -> None:
    """Change a ticket's priority; its due times are recomputed and the change is logged."""
    app = _app()
    policy = app.processing_context().sla
    with transaction(app.sessions) as session:
        ticket = repo.ticket_by_number(session, number)
        if ticket is None:
            fail(f"no ticket #{number}", EX_DATAERR)
            return
        changed = change_priority(
            session, ticket, Priority(priority), policy, app.clock.now(), "an admin (CLI)"
        )
        due = ticket.first_response_due
    click.echo(
        f"#{number}: priority {priority}; first response due {due}"
        if changed
        else f"#{number} already has priority {priority}"
    )


@cli.command("classify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--customer", "customer_id", type=int, help="Time it for this customer id.")
@click.option("--received", help="Receipt time (ISO; default now, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def classify_command(
    file: Path, customer_id: int | None, received: str | None, as_json: bool
) -> None:
    """Print the priority, rules, error codes and due times of FILE.eml; store nothing."""
    app = _app()
    received_at = _parse_since(received) or app.clock.now()
    try:
        prepared, customer, assessment = app.assess_message(
            file.read_bytes(), customer_id, received_at
        )
    except PermanentError as error:
        fail(str(error), EX_DATAERR)
        return
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
        _echo_json(result)
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


# ----------------------------------------------------------------------------- quarantine


@cli.group()
def quarantine() -> None:
    """Messages that failed processing: list, show, release."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def quarantine_list(as_json: bool) -> None:
    """List quarantined messages with their reasons."""
    with transaction(_app().sessions, commit=False) as session:
        rows = views.list_inbound(session, status="quarantined")
    if as_json:
        _echo_json(rows)
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
@handles_errors
def quarantine_show(inbound_id: int, raw: bool) -> None:
    """Show one stored message: envelope, error, events (and raw bytes with --raw)."""
    with transaction(_app().sessions, commit=False) as session:
        row = session.get(Inbound, inbound_id)
        if row is None:
            fail(f"no inbound message {inbound_id}", EX_DATAERR)
            return
        data = views.inbound_view(row)
        data["events"] = views.inbound_events(session, inbound_id)
        blob = session.get(Blob, row.raw_sha256)
        raw_bytes = blob.data if blob is not None else b""
    if raw:
        click.echo(raw_bytes, nl=False)
        return
    _echo_json(data)


@quarantine.command("release")
@click.argument("inbound_ids", nargs=-1, type=int)
@click.option("--all", "release_all", is_flag=True, help="Release every quarantined message.")
@click.option("--no-process", is_flag=True, help="Only mark them pending.")
@handles_errors
def quarantine_release(inbound_ids: tuple[int, ...], release_all: bool, no_process: bool) -> None:
    """Return messages to the queue and process them again."""
    app = _app()
    with transaction(app.sessions) as session:
        ids = list(inbound_ids)
        if release_all:
            ids = [row["id"] for row in views.list_inbound(session, status="quarantined")]
        released = release(session, ids, app.clock.now())
    click.echo(f"released {len(released)}: {', '.join(map(str, released)) or '-'}")
    if not no_process and released:
        _print_processing(app.process())


@cli.group()
def inbound() -> None:
    """Stored raw messages of every kind."""


@inbound.command("list")
@click.option("--status", type=click.Choice(["pending", "processed", "quarantined"]))
@click.option("--kind", help="human, auto_reply, bulk, bounce, own_mail or duplicate.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def inbound_list(status: str | None, kind: str | None, as_json: bool) -> None:
    """List stored raw messages, newest first."""
    with transaction(_app().sessions, commit=False) as session:
        rows = views.list_inbound(session, status=status, kind=kind)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:>6}  {row['status']:<11} {row['kind'] or '-':<10} "
            f"{row['source']:<7} <{row['message_id']}>"
        )
    click.echo(f"{len(rows)} message(s)")


# ----------------------------------------------------------------------------- replay


def _parse_since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date or date-time") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


@cli.command("replay")
@click.option("--all", "everything", is_flag=True, help="Every stored message.")
@click.option("--ticket", "ticket_number", type=int, help="The messages of ticket N.")
@click.option("--message-id", help="The message(s) with this Message-ID.")
@click.option("--since", help="Messages received since this ISO date or date-time (UTC).")
@click.option("--quarantined", is_flag=True, help="Every quarantined message.")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@handles_errors
def replay_command(
    everything: bool,
    ticket_number: int | None,
    message_id: str | None,
    since: str | None,
    quarantined: bool,
    dry_run: bool,
) -> None:
    """Re-run processing from the stored raw mail, idempotently."""
    selection = ReplaySelection(
        everything, ticket_number, message_id, _parse_since(since), quarantined
    )
    if selection.is_empty():
        fail(
            "say what to replay: --all, --ticket, --message-id, --since or --quarantined", EX_USAGE
        )
    app = _app()
    ids = app.replay_ids(selection)
    with click.progressbar(length=len(ids), label="replaying", file=sys.stderr) as bar:
        results = app.replay(ids, dry_run=dry_run, progress=bar.update)
    prefix = "would be " if dry_run else ""
    for result in results:
        if result.action != "unchanged":
            click.echo(f"inbound {result.inbound_id}: {prefix}{result.action} {result.detail}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.action] = counts.get(result.action, 0) + 1
    summary = ", ".join(f"{action} {n}" for action, n in sorted(counts.items())) or "nothing"
    click.echo(f"{'dry run: ' if dry_run else ''}replayed {len(results)}: {summary}")


cli.add_command(templates)
cli.add_command(serve)
cli.add_command(poll)
cli.add_command(worker)
cli.add_command(deliver)
cli.add_command(board)
cli.add_command(dashboard)
cli.add_command(report)


@cli.group()
def sla() -> None:
    """SLA breaches, escalation timers, surveys and incidents (the cron breach notifier)."""


@sla.command("check")
@click.option("--now", "now_text", help="Run as of this ISO time (default: now, UTC).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; send nothing.")
@handles_errors
def sla_check(now_text: str | None, dry_run: bool) -> None:
    """Send what falls due: breach apologies and alerts, escalations, surveys, incidents,
    the scheduled report mails.

    Made for cron (and run by `serve` on its tick); overlapping runs send nothing twice.
    """
    app = _app()
    now = _parse_since(now_text) or app.clock.now()
    summary = app.check(now, dry_run=dry_run)
    for line in summary.lines():
        click.echo(("would: " if dry_run else "") + line)
    click.echo(
        f"{'dry run: ' if dry_run else ''}sla check at {now.isoformat()}: "
        f"{len(summary.breaches)} breach notice(s), {len(summary.escalations)} escalation(s), "
        f"{len(summary.voided)} void timer(s), {len(summary.surveys)} survey(s), "
        f"{len(summary.incidents)} incident(s), {len(summary.reports)} report(s)"
    )


@cli.group()
def incidents() -> None:
    """Multi-customer P0 incidents: list and resolve."""


@incidents.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def incidents_list(as_json: bool) -> None:
    """List incidents with their tickets."""
    with transaction(_app().sessions, commit=False) as session:
        rows = views.list_incidents(session)
    if as_json:
        _echo_json(rows)
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
@handles_errors
def incidents_resolve(incident_id: int, summary: str) -> None:
    """Resolve an incident: its tickets are resolved and every customer is updated."""
    app = _app()
    with transaction(app.sessions) as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            fail(f"no incident {incident_id}", EX_DATAERR)
            return
        numbers = app.workflows().resolve_incident(session, incident, summary, app.clock.now())
    click.echo(
        f"incident {incident_id} resolved; customers of tickets "
        f"{', '.join(map(str, numbers)) or '-'} updated"
    )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mailproc")

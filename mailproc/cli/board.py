"""``mailproc board`` (the SLA board in the terminal) and ``mailproc dashboard`` (the web board)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time

import click
from pydantic import ValidationError

from mailproc.cli.context import daemon_app, listen_option
from mailproc.config_dashboard import DashboardSettings
from mailproc.passwords import hash_password
from mailproc.store.db import transaction
from mailproc.supervisor import Components, Supervisor
from mailproc.tickets.board import OPEN_STATUSES, Board, BoardRow, load_board

COLOURS = {"red": "red", "amber": "yellow", "green": "green"}
HEADERS = (
    "TICKET",
    "PRI",
    "STATE",
    "CUSTOMER (PLAN)",
    "ASSIGNEE",
    "ESCALATED TO",
    "WAITING",
    "TIME LEFT",
    "SUBJECT",
)
WIDTHS = (7, 4, 7, 28, 14, 16, 7, 9)  # the subject takes what is left of the line


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _cells(row: BoardRow) -> tuple[str, ...]:
    customer = (
        f"{row.company} ({row.plan})"
        if row.customer_id is not None
        else f"unknown {row.requester or ''}".strip()
    )
    return (
        f"#{row.number}",
        row.priority,
        row.status,
        customer,
        row.assignee or "",
        ", ".join(row.escalated_to),
        "yes" if row.waiting else "",
        row.left_text,
        row.subject,
    )


def render_text(board: Board, width: int) -> list[str]:
    """The board as lines for a terminal: counts on top, then one line per ticket.

    Colour is added with click.style; click.echo drops it when the output is not a TTY.
    """
    lines = [
        f"SLA board at {board.now:%Y-%m-%d %H:%M} UTC: {len(board.rows)} open, "
        f"{board.overdue} overdue",
        "",
        "        " + "".join(f"{name:>9}" for name in (*OPEN_STATUSES, "total", "overdue")),
    ]
    for priority, counts in board.counts().items():
        overdue = f"{counts['overdue']:>9}"
        lines.append(
            f"{priority:<8}"
            + "".join(f"{counts[k]:>9}" for k in (*OPEN_STATUSES, "total"))
            + (click.style(overdue, fg="red", bold=True) if counts["overdue"] else overdue)
        )
    subject_width = max(width - sum(w + 1 for w in WIDTHS), 20)
    widths = (*WIDTHS, subject_width)
    lines += ["", " ".join(f"{h:<{w}}" for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    for row in board.rows:
        cells = [f"{_cut(c, w):<{w}}" for c, w in zip(_cells(row), widths, strict=True)]
        if row.colour in COLOURS:
            cells[7] = click.style(cells[7], fg=COLOURS[row.colour], bold=row.colour != "green")
        lines.append(" ".join(cells).rstrip())
    return lines


@click.command("board")
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between redraws.")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable (with --watch: a line each)."
)
@click.option("--now", "now_text", help="As of this ISO time (default: now, UTC).")
@click.pass_context
def board(
    ctx: click.Context, watch: bool, interval: float, as_json: bool, now_text: str | None
) -> None:
    """Open tickets by time to their nearest SLA deadline, overdue first."""
    app = ctx.find_root().obj.app
    fixed = None
    if now_text is not None:
        try:
            fixed = dt.datetime.fromisoformat(now_text)
        except ValueError:
            raise click.BadParameter(f"{now_text!r} is not an ISO date-time") from None
        fixed = fixed.replace(tzinfo=dt.UTC) if fixed.tzinfo is None else fixed
    try:
        while True:
            with transaction(app.sessions, commit=False) as session:
                current = load_board(session, fixed or app.clock.now())
            _show(current, as_json=as_json, watch=watch)
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _show(current: Board, *, as_json: bool, watch: bool) -> None:
    if as_json:
        data = current.as_json()
        click.echo(json.dumps(data, ensure_ascii=False) if watch else json.dumps(data, indent=2))
        return
    if watch:
        click.clear()
    width = shutil.get_terminal_size((160, 40)).columns
    click.echo("\n".join(render_text(current, width)))


@click.command("dashboard")
@click.option(
    "--listen", metavar="HOST:PORT", callback=listen_option, help="Override [dashboard] listen."
)
@click.option(
    "--hash-password",
    "hash_only",
    is_flag=True,
    help="Prompt for a password and print its hash for [dashboard] users, then exit.",
)
@click.pass_context
def dashboard(ctx: click.Context, listen: str | None, hash_only: bool) -> None:
    """Run the read-only web dashboard alone (``serve`` runs it when [dashboard] enabled)."""
    if hash_only:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        click.echo(hash_password(password))
        return
    app = daemon_app(ctx)
    settings = app.settings.dashboard
    if listen is not None:
        try:
            settings = DashboardSettings.model_validate(settings.model_dump() | {"listen": listen})
        except ValidationError as error:
            raise click.UsageError(str(error)) from None
    Supervisor(
        app, Components(listener=None, pollers=False, worker=False, dashboard=settings)
    ).run()

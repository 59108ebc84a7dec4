"""The ``mailproc`` command group: global options, logging, and every command registered."""

from __future__ import annotations

import inspect
import logging

import click

from mailproc import __version__
from mailproc.cli.agents import agents
from mailproc.cli.attachments import attachments
from mailproc.cli.board import board, dashboard
from mailproc.cli.classify import classify_command
from mailproc.cli.context import Context
from mailproc.cli.credits import credits
from mailproc.cli.customers import customers
from mailproc.cli.db import db
from mailproc.cli.deliver import deliver
from mailproc.cli.doctor import doctor
from mailproc.cli.errors import MailprocGroup
from mailproc.cli.inbound import inbound, quarantine
from mailproc.cli.ingest import ingest, process, replay
from mailproc.cli.init import init
from mailproc.cli.kb import kb
from mailproc.cli.outbox import outbox
from mailproc.cli.report import report
from mailproc.cli.serve import poll, serve, worker
from mailproc.cli.sla import incidents, sla
from mailproc.cli.templates import templates
from mailproc.cli.tickets import tickets
from mailproc.runtime import tune_gc


@click.group(cls=MailprocGroup)
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


for command in (
    init,
    agents,
    attachments,
    db,
    ingest,
    process,
    customers,
    credits,
    tickets,
    classify_command,
    quarantine,
    inbound,
    replay,
    templates,
    serve,
    poll,
    worker,
    deliver,
    doctor,
    outbox,
    sla,
    incidents,
    kb,
    report,
    board,
    dashboard,
):
    cli.add_command(command)


def _whole_summaries(group: click.Group) -> None:
    """Command lists show each command's first paragraph whole, wrapped, never cut short."""
    for command in group.commands.values():
        if command.short_help is None and command.help:
            command.short_help = inspect.cleandoc(command.help).split("\n\n")[0]
        if isinstance(command, click.Group):
            _whole_summaries(command)


_whole_summaries(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mailproc")

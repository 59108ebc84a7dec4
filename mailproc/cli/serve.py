"""The long-running commands: ``mailproc serve``, ``mailproc poll`` and ``mailproc worker``."""

from __future__ import annotations

import logging
import os
import sys

import click
from pydantic import ValidationError

from mailproc.adapters import lease
from mailproc.adapters.imap import MailboxPoller
from mailproc.app import App
from mailproc.cli.context import current_app, print_processing
from mailproc.config_transport import ListenerSettings, split_host_port
from mailproc.supervisor import (
    Components,
    StartupError,
    Supervisor,
    check_database,
    scheduled_ticks,
)


def _daemon_app(ctx: click.Context) -> App:
    """The App of the root command, with INFO logs per component unless -v was given."""
    if not ctx.find_root().params.get("verbose"):
        logging.getLogger("mailproc").setLevel(logging.INFO)
    if ctx.find_root().params.get("verbose", 0) < 2:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    return current_app()


def _listen_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            split_host_port(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


@click.command()
@click.option(
    "--listen", metavar="HOST:PORT", callback=_listen_option, help="Override [listener] listen."
)
@click.option(
    "--protocol", type=click.Choice(["smtp", "lmtp"]), help="Override [listener] protocol."
)
@click.pass_context
def serve(ctx: click.Context, listen: str | None, protocol: str | None) -> None:
    """Run the listener, IMAP pollers, worker and scheduler until SIGTERM or SIGINT."""
    app = _daemon_app(ctx)
    settings = app.settings.serve
    listener = None
    if settings.listener:
        overrides = {"listen": listen, "protocol": protocol}
        try:
            listener = ListenerSettings.model_validate(
                app.settings.listener.model_dump()
                | {key: value for key, value in overrides.items() if value is not None}
            )
        except ValidationError as error:
            raise click.UsageError(str(error)) from None
    components = Components(
        listener=listener,
        pollers=settings.pollers,
        worker=settings.worker,
        ticks=scheduled_ticks(app),
    )
    Supervisor(app, components).run()


@click.command()
@click.option("--once", is_flag=True, help="One pass over every mailbox, then exit.")
@click.pass_context
def poll(ctx: click.Context, once: bool) -> None:
    """Fetch mail from the configured IMAP mailboxes (IDLE until SIGTERM unless --once).

    Exit codes: 0 done, 75 a mailbox could not be polled (try again later), 78 bad config.
    """
    app = _daemon_app(ctx)
    if not app.settings.imap.mailboxes:
        raise StartupError("no IMAP mailboxes configured ([[imap.mailboxes]])", os.EX_CONFIG)
    if not once:
        Supervisor(app, Components(listener=None, pollers=True, worker=False)).run()
        return
    check_database(app)
    holder = lease.new_holder()
    failed = False
    for mailbox in app.settings.imap.mailboxes:
        poller = MailboxPoller(mailbox, app.settings.imap, app.sessions, app.clock, holder=holder)
        try:
            result = poller.poll_once()
        except Exception as error:  # report every mailbox, then fail as a whole
            click.echo(f"{mailbox.name}: failed: {error}", err=True)
            failed = True
            continue
        if result is None:
            click.echo(f"{mailbox.name}: skipped, another process is polling it")
        else:
            click.echo(
                f"{mailbox.name}: stored {result.stored}, duplicates {result.duplicates}, "
                f"resumed {result.resumed}, not mail (set aside) {result.rejected}"
            )
    if failed:
        sys.exit(os.EX_TEMPFAIL)


@click.command()
@click.option("--once", is_flag=True, help="Process what is pending, then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Process pending mail only (scale-out: run as many as needed on PostgreSQL)."""
    app = _daemon_app(ctx)
    if not once:
        Supervisor(app, Components(listener=None, pollers=False, worker=True)).run()
        return
    check_database(app)
    print_processing(app.process())

"""``mailproc doctor``: is this installation ready to run?"""

from __future__ import annotations

import sys

import click

from mailproc.cli.context import state
from mailproc.config import config_path, load_settings
from mailproc.doctor import diagnose, exit_code


@click.command()
def doctor() -> None:
    """Check the config, database, relay, IMAP mailboxes, listener, agents and clock.

    One line each: ok, warning or error. Exit codes: 0 no errors, 78 a configuration error,
    75 something configured does not answer now (database, relay, mailbox).
    """
    root = state()
    checks = []
    for check in diagnose(load_settings(root.config), config_path(root.config)):
        click.echo(str(check))
        checks.append(check)
    sys.exit(exit_code(checks))

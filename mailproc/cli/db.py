"""``mailproc db``: the database schema's revisions."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.util import CommandError

from mailproc.cli.context import current_app
from mailproc.store import migrate


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current, history."""


@contextmanager
def _known_revision() -> Iterator[None]:
    """Alembic's "can't locate revision" as a usage error listing the shipped revisions."""
    try:
        yield
    except CommandError as error:
        known = ", ".join([*migrate.revisions(), "head", "base"])
        raise click.UsageError(f"{error}; known revisions: {known}") from None


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (to the newest revision by default; then seed the knowledge base)."""
    app = current_app()
    with _known_revision():
        if revision == "head":
            app.upgrade_database()
        else:
            migrate.upgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine)}")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Drop tables that hold data without asking.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table).

    When the downgrade would drop tables that hold rows, it says which and asks first (on a
    terminal); elsewhere it needs --yes.
    """
    app = current_app()
    with _known_revision():
        dropped = migrate.data_dropped_by_downgrade(app.engine, revision)
        if dropped and not yes:
            _confirm_drop(dropped, revision)
        migrate.downgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine) or 'base'}")


def _confirm_drop(dropped: dict[str, int], revision: str) -> None:
    """Ask on a terminal; refuse (exit 64) elsewhere."""
    what = ", ".join(f"{name} ({count} rows)" for name, count in dropped.items())
    question = f"downgrading to {revision} drops tables with data: {what}"
    if sys.stdin.isatty():
        click.confirm(f"{question}. Drop them?", abort=True)
    else:
        raise click.UsageError(f"{question}; run again with --yes to drop them")


@db.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one shipped."""
    app = current_app()
    current = migrate.current_revision(app.engine)
    head = migrate.head_revision()
    status = "up to date" if current == head else "needs `mailproc db upgrade`"
    click.echo(f"current: {current or 'base (empty)'}; head: {head} ({status})")


@db.command("history")
def db_history() -> None:
    """List the shipped migrations, newest first."""
    for line in migrate.history():
        click.echo(line)

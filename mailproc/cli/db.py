"""``mailproc db``: the database schema's revisions."""

from __future__ import annotations

import click

from mailproc.cli.context import current_app
from mailproc.cli.errors import handles_errors
from mailproc.store import migrate


@click.group()
def db() -> None:
    """Database schema: upgrade, downgrade, current, history."""


@db.command("upgrade")
@click.argument("revision", default="head")
@handles_errors
def db_upgrade(revision: str) -> None:
    """Upgrade the schema (to the newest revision by default; then seed the knowledge base)."""
    app = current_app()
    if revision == "head":
        app.upgrade_database()
    else:
        migrate.upgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine)}")


@db.command("downgrade")
@click.argument("revision")
@handles_errors
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table)."""
    app = current_app()
    migrate.downgrade(app.engine, revision)
    click.echo(f"at revision {migrate.current_revision(app.engine) or 'base'}")


@db.command("current")
@handles_errors
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

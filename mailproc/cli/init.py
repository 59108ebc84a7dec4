"""``mailproc init``: a commented config and an up-to-date database."""

from __future__ import annotations

import click

from mailproc.cli.context import print_import, sample_customers_text, state
from mailproc.config import config_path
from mailproc.resources import resource_path
from mailproc.store import migrate


@click.command()
@click.option(
    "--sample-data", is_flag=True, help="Also add the shipped sample customers that do not exist."
)
def init(sample_data: bool) -> None:
    """Write a commented config (if none exists) and create or upgrade the database."""
    root = state()
    path = config_path(root.config)
    if path.exists():
        click.echo(f"config: {path} exists, left as it is")
    else:
        path.write_text(
            (resource_path("data") / "mailproc.example.toml").read_text("utf-8"), encoding="utf-8"
        )
        click.echo(f"config: wrote {path}")
    root.creates_database = True
    app = root.app
    app.upgrade_database()
    click.echo(
        f"database: {app.settings.database.url} at revision {migrate.current_revision(app.engine)}"
    )
    if sample_data:
        print_import(app.import_customers(sample_customers_text(), insert_only=True))

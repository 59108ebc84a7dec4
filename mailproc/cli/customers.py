"""``mailproc customers``: import and export the customer_analytics CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailproc.cli.context import current_app, print_import, sample_customers_text
from mailproc.cli.errors import EX_DATAERR, EX_USAGE, fail, handles_errors


@click.group()
def customers() -> None:
    """Customers: import and export the customer_analytics CSV."""


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
    text = sample_customers_text() if sample else file.read_text("utf-8-sig")  # type: ignore[union-attr]
    report = current_app().import_customers(text)
    print_import(report)
    if report.errors and not report.created and not report.updated:
        sys.exit(EX_DATAERR)


@customers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@handles_errors
def customers_export(file: Path) -> None:
    """Write every customer to FILE.csv in the import format (`-` for stdout)."""
    text = current_app().export_customers()
    if str(file) == "-":
        click.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        click.echo(f"wrote {text.count(chr(10)) - 1} customers to {file}")

"""``mailproc customers``: import and export the customer_analytics CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailproc.cli.context import current_app, print_import, sample_customers_text
from mailproc.cli.errors import EX_DATAERR, CannotCreateError, InputPath
from mailproc.errors import PermanentError


@click.group()
def customers() -> None:
    """Customers: import and export the customer_analytics CSV."""


@customers.command("import")
@click.argument("file", type=InputPath(), required=False)
@click.option("--sample", is_flag=True, help="Import the shipped sample customers 1001-1050.")
def customers_import(file: Path | None, sample: bool) -> None:
    """Insert or update customers from FILE.csv; bad rows are listed with line numbers.

    Good rows load even when others are rejected; any rejected row makes the exit code 65.
    """
    if file is None:
        if not sample:
            raise click.UsageError("give FILE or --sample")
        text = sample_customers_text()
    elif sample:
        raise click.UsageError("give FILE or --sample, not both")
    else:
        try:
            text = file.read_text("utf-8-sig")
        except UnicodeDecodeError as error:
            raise PermanentError(
                f"{file} is not a UTF-8 CSV file (byte {error.start} cannot be decoded)"
            ) from None
    report = current_app().import_customers(text)
    print_import(report)
    if any(error.rejected for error in report.errors):
        sys.exit(EX_DATAERR)


@customers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
def customers_export(file: Path) -> None:
    """Write every customer to FILE.csv in the import format (`-` for stdout)."""
    text = current_app().export_customers()
    if str(file) == "-":
        click.echo(text, nl=False)
    else:
        try:
            file.write_text(text, encoding="utf-8")
        except OSError as error:
            raise CannotCreateError(f"cannot write {file}: {error.strerror}") from None
        click.echo(f"wrote {text.count(chr(10)) - 1} customers to {file}")

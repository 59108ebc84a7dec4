"""``mailproc attachments``: the attachments stored with a ticket's mail."""

from __future__ import annotations

from pathlib import Path

import click

from mailproc.cli.context import current_app
from mailproc.cli.errors import CannotCreateError
from mailproc.errors import NotFoundError
from mailproc.store.db import transaction
from mailproc.tickets import views


@click.group()
def attachments() -> None:
    """Attachments of a ticket's mail."""


@attachments.command("get")
@click.argument("number", type=int)
@click.argument("name", required=False)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to write them to (created if needed).",
)
def attachments_get(number: int, name: str | None, out_dir: Path) -> None:
    """Write ticket NUMBER's attachments (or only those named NAME) to a directory.

    An existing file is never overwritten: the copy gets a numbered name.
    """
    with transaction(current_app().sessions, commit=False) as session:
        found = views.ticket_attachments(session, number)
    if found is None:
        raise NotFoundError(f"no ticket #{number}")
    wanted = [(f, data) for f, data in found if name is None or f == name]
    if not wanted:
        names = ", ".join(dict.fromkeys(f for f, _ in found)) or "none"
        raise NotFoundError(f"ticket #{number} has no attachment {name or ''} (stored: {names})")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for filename, data in wanted:
            path = _free_path(out_dir, filename)
            with path.open("xb") as handle:
                handle.write(data)
            click.echo(f"{path} ({len(data)} bytes)")
    except OSError as error:
        raise CannotCreateError(f"cannot write to {out_dir}: {error}") from error


def _free_path(directory: Path, filename: str) -> Path:
    """A path in ``directory`` for ``filename`` (its last component) that does not exist."""
    base = Path(filename.replace("\\", "/")).name.strip()
    if base in ("", ".", ".."):
        base = "attachment"
    stem, suffix = Path(base).stem, Path(base).suffix
    path, count = directory / base, 1
    while path.exists():
        path = directory / f"{stem}-{count}{suffix}"
        count += 1
    return path

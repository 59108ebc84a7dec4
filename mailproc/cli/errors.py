"""Exit codes (sysexits.h, what an MTA pipe understands) and the one mapping of errors to them.

Commands raise; :class:`MailprocGroup` turns every exception into one line on stderr and
the exit code of its class. A traceback is printed only for a bug, and only with ``-vv``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, Final, NoReturn

import click

from mailproc.config import ConfigError
from mailproc.errors import MailprocError, PermanentError, TransientError
from mailproc.supervisor import StartupError

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_CONFIG = 78


class NoInputError(MailprocError):
    """A file or folder named on the command line does not exist."""


class CannotCreateError(MailprocError):
    """An output file cannot be written."""


# The first class an error is an instance of gives its code (StartupError carries its own).
EXIT_CODES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (click.UsageError, EX_USAGE),
    (NoInputError, EX_NOINPUT),
    (CannotCreateError, EX_CANTCREAT),
    (ConfigError, EX_CONFIG),
    (TransientError, EX_TEMPFAIL),
    (PermanentError, EX_DATAERR),
)


def fail(message: str, code: int) -> NoReturn:
    """Print an error and leave with a sysexits code."""
    click.echo(f"mailproc: {message}", err=True)
    sys.exit(code)


def exit_code(error: BaseException) -> int:
    """The sysexits code of an error (70, a bug, for anything unexpected)."""
    if isinstance(error, StartupError):
        return error.exit_code
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    if isinstance(error, click.ClickException):
        return error.exit_code
    return EX_SOFTWARE


def message(error: BaseException) -> str:
    """The one line that tells the user what went wrong (and what to do)."""
    if isinstance(error, click.UsageError):
        where = f"; see `{error.ctx.command_path} --help`" if error.ctx is not None else ""
        text = " ".join(line.strip() for line in error.format_message().splitlines())
        return f"{text.rstrip('.')}{where}"
    if isinstance(error, click.ClickException):
        return error.format_message()
    if isinstance(error, TransientError):
        hint = ""
        if "no such table" in str(error) or "does not exist" in str(error):
            hint = " (run `mailproc db upgrade`)"
        return f"{error}{hint}; nothing was half-written, try again later"
    if isinstance(error, MailprocError | ConfigError):
        return str(error)
    first = (str(error).strip().splitlines() or [""])[0]
    return f"internal error: {type(error).__name__}: {first} (-vv shows the traceback)"


def report(error: BaseException, verbose: int) -> NoReturn:
    """Leave with the error's line and code; ``-vv`` also prints the traceback."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        error.show()  # the help text itself
        sys.exit(EX_USAGE)
    if verbose >= 2:
        traceback.print_exception(error, file=sys.stderr)
    fail(message(error), exit_code(error))


class MailprocGroup(click.Group):
    """The root group: every error of every command leaves through :func:`report`."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            report(error, 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            report(error, ctx.params.get("verbose", 0))


class InputPath(click.Path):
    """An existing file or folder to read; a missing one is exit 66, not a usage error."""

    def __init__(self, *, dir_okay: bool = False, allow_dash: bool = False) -> None:
        super().__init__(exists=True, dir_okay=dir_okay, allow_dash=allow_dash, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not (self.allow_dash and value == "-") and not os.path.lexists(value):
            raise NoInputError(f"no such file or folder: {value}")
        return super().convert(value, param, ctx)

"""Exit codes (sysexits.h, what an MTA pipe understands) and the one mapping of errors to them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from mailproc.config import ConfigError
from mailproc.errors import TransientError
from mailproc.supervisor import StartupError

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_CONFIG = 78

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> NoReturn:
    """Print an error and leave with a sysexits code."""
    click.echo(f"mailproc: {message}", err=True)
    sys.exit(code)


def handles_errors(command: F) -> F:
    """Map mailproc's errors to sysexits codes with one clear line each."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            fail(str(error), EX_CONFIG)
        except StartupError as error:
            fail(str(error), error.exit_code)
        except TransientError as error:
            hint = ""
            if "no such table" in str(error) or "does not exist" in str(error):
                hint = " (run `mailproc db upgrade`)"
            fail(f"{error}{hint}; nothing was half-written, try again later", EX_TEMPFAIL)

    return wrapper  # type: ignore[return-value]

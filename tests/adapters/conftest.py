"""Fixtures of the adapter tests: a shared private Dovecot, config files for subprocesses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.support import Dovecot, dovecot_server

ConfigWriter = Callable[..., Path]


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot for the session; each test takes a fresh user (an empty mailbox)."""
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed: run scripts/install-test-deps.sh")
    with dovecot_server() as server:
        yield server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    """A new, empty IMAP account on the shared Dovecot."""
    return dovecot.new_user()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    """Sections of scalars, plus ``imap.mailboxes`` as an array of tables."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        tables = {k: v for k, v in values.items() if k == "mailboxes"}
        for key, value in values.items():
            if key not in tables:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, rows in tables.items():
            for row in rows:
                lines.append(f"[[{name}.{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in row.items())
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_config(tmp_path: Path, db_url: str) -> ConfigWriter:
    """Write a mailproc.toml on the test database; keyword arguments are extra sections."""

    def write(**sections: dict[str, Any]) -> Path:
        path = tmp_path / "mailproc.toml"
        path.write_text(to_toml({"database": {"url": db_url}, **sections}))
        return path

    return write

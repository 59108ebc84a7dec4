"""Issue 20 item 18: with the database down, the schema commands exit 75 with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailproc.cli import cli
from mailproc.cli.errors import EX_TEMPFAIL

DOWN = "postgresql+psycopg://postgres@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.mark.parametrize("args", [["init"], ["db", "upgrade"], ["db", "current"]])
def test_schema_commands_with_the_database_down_exit_75_with_one_line(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MAILPROC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args, env={"MAILPROC_DATABASE_URL": DOWN})
    assert result.exit_code == EX_TEMPFAIL, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = result.stderr.splitlines()
    assert line.startswith("mailproc: database unavailable: ") and "try again later" in line
    assert "Traceback" not in result.output

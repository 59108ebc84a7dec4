"""The CLI through click's CliRunner and through the installed console script."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import GOLDEN

from mailproc.cli import cli
from mailproc.cli.errors import EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_USAGE
from mailproc.runtime import GC_THRESHOLDS

CONSOLE_SCRIPT = Path(sys.executable).with_name("mailproc")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("MAILPROC_") and name != "MAILPROC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env=env, catch_exceptions=False)


def test_init_writes_config_and_database_then_is_idempotent(workdir: Path) -> None:
    first = run("init", "--sample-data")
    assert first.exit_code == 0, first.output
    assert (workdir / "mailproc.toml").exists() and (workdir / "mailproc.db").exists()
    assert "customers: created 50" in first.output
    second = run("init")
    assert second.exit_code == 0 and "exists, left as it is" in second.output
    current = run("db", "current")
    assert "up to date" in current.output


def test_the_command_tunes_the_garbage_collector(workdir: Path) -> None:
    gc.set_threshold(700, 10, 10)  # Python's defaults, as in a fresh process
    try:
        assert run("init").exit_code == 0
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*GC_THRESHOLDS)


def test_ingest_stdin_then_list_and_show_json(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    assert run("customers", "import", "--sample", env=env).exit_code == 0
    result = run("ingest", stdin=(GOLDEN / "multipart_alternative.eml").read_bytes(), env=env)
    assert result.exit_code == 0, result.output
    assert "stored 1" in result.output and "created 1" in result.output
    listed = json.loads(run("tickets", "list", "--json", env=env).output)
    assert [t["number"] for t in listed] == [10001]
    shown = json.loads(run("tickets", "show", "10001", "--json", env=env).output)
    assert shown["customer_id"] == 1001 and shown["plan"] == "Professional"
    assert shown["status"] == "new" and shown["id"] == listed[0]["id"]
    assert shown["messages"][0]["message_id"] == "CAF8x2kN-7d1@mail.northwind-analytics.example"
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds[:2] == ["ticket.created", "message.received"] and "notify.ack_queued" in kinds
    text = run("tickets", "show", "10001", env=env).output
    assert "Ticket #10001 [new]" in text and "Northwind Analytics" in text
    assert run("tickets", "show", "99999", env=env).exit_code == EX_DATAERR


def test_not_mail_on_stdin_is_a_data_error(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    for junk in (b"", b"\x00\x01\x02binary\x00junk" * 10):
        result = run("ingest", stdin=junk, env=env)
        assert result.exit_code == EX_DATAERR
        assert "rejected" in result.output
    assert json.loads(run("inbound", "list", "--json", env=env).output) == []


def test_missing_path_and_bad_usage(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    assert run("ingest", "nope.eml", env=env).exit_code == EX_NOINPUT
    assert run("replay", env=env).exit_code == EX_USAGE


def test_folder_ingest_with_no_process_then_process(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    result = run("ingest", "--no-process", str(GOLDEN), env=env)
    assert result.exit_code == 0 and "stored 9" in result.output
    pending = json.loads(run("inbound", "list", "--status", "pending", "--json", env=env).output)
    assert len(pending) == 9
    processed = run("process", env=env)
    assert "processed 9" in processed.output and "quarantined 0" in processed.output


def test_quarantine_list_show_release(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url, "MAILPROC_INTAKE_MAX_MESSAGE_BYTES": "1024"}
    result = run("ingest", str(GOLDEN / "attachments.eml"), env=env)
    assert result.exit_code == 0 and "quarantined 1" in result.output
    rows = json.loads(run("quarantine", "list", "--json", env=env).output)
    assert len(rows) == 1 and "limit is 1024" in rows[0]["last_error"]
    shown = json.loads(run("quarantine", "show", "--json", str(rows[0]["id"]), env=env).output)
    assert shown["events"][0]["kind"] == "inbound.quarantined"
    text = run("quarantine", "show", str(rows[0]["id"]), env=env).output.splitlines()
    assert text[1] == "Reason:   LimitExceeded: message is 1141 bytes; the limit is 1024"
    assert text[2] == "From:     daniel@streamwise.example (envelope -)"
    assert text[3] == "Subject:  API-4004 Too Many Requests is breaking our nightly sync"
    assert text[4] == "Size:     1141 bytes; attempts 1"
    [line, _count] = run("inbound", "list", env=env).output.splitlines()
    assert line.split()[3:6] == ["quarantined", "-", "daniel@streamwise.example"]
    assert line.endswith("  API-4004 Too Many Requests is breaking our nightly sync")
    raw = run("quarantine", "show", "--raw", str(rows[0]["id"]), env=env).stdout_bytes
    assert raw == (GOLDEN / "attachments.eml").read_bytes()
    released = run("quarantine", "release", "--all", env={"MAILPROC_DATABASE_URL": db_url})
    assert "released 1" in released.output and "created 1" in released.output


def test_replay_dry_run_output(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    run("ingest", str(GOLDEN), env=env)
    result = run("replay", "--all", "--dry-run", env=env)
    assert result.exit_code == 0
    assert "dry run: replayed 9: unchanged 9" in result.output


def test_locked_sqlite_gives_tempfail_and_stores_nothing(workdir: Path) -> None:
    assert run("init").exit_code == 0
    holder = sqlite3.connect(workdir / "mailproc.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run(
            "ingest",
            stdin=(GOLDEN / "french.eml").read_bytes(),
            env={"MAILPROC_DATABASE_BUSY_TIMEOUT_MS": "200"},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == EX_TEMPFAIL
    assert "database unavailable" in result.output and "try again later" in result.output
    assert json.loads(run("inbound", "list", "--json").output) == []


def test_postgres_down_gives_tempfail(workdir: Path) -> None:
    env = {
        "MAILPROC_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "MAILPROC_DATABASE_BUSY_TIMEOUT_MS": "1000",
    }
    result = run("ingest", stdin=(GOLDEN / "french.eml").read_bytes(), env=env)
    assert result.exit_code == EX_TEMPFAIL


def test_no_database_is_a_config_error_and_creates_nothing(workdir: Path) -> None:
    result = run("ingest", stdin=(GOLDEN / "french.eml").read_bytes())
    assert result.exit_code == EX_CONFIG and "no database here" in result.output
    assert "run `mailproc init`" in result.output
    assert list(workdir.iterdir()) == []


def test_empty_database_gives_tempfail_with_hint(workdir: Path) -> None:
    (workdir / "mailproc.db").touch()
    result = run("ingest", stdin=(GOLDEN / "french.eml").read_bytes())
    assert result.exit_code == EX_TEMPFAIL and "mailproc db upgrade" in result.output


def test_bad_config_gives_config_error(workdir: Path) -> None:
    (workdir / "mailproc.toml").write_text("[intake]\nmax_parts = -1\n")
    result = run("tickets", "list")
    assert result.exit_code == 78 and "intake.max_parts" in result.output


def test_installed_console_script_as_an_mta_pipe(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROC_")}
    subprocess.run([CONSOLE_SCRIPT, "init"], check=True, env=env, capture_output=True)
    mail = (
        b"From bounce@x.example Thu Nov 26 10:00:00 2026\n" + (GOLDEN / "spanish.eml").read_bytes()
    )
    stored = subprocess.run([CONSOLE_SCRIPT, "ingest"], input=mail, env=env, capture_output=True)
    assert stored.returncode == 0, stored.stderr
    again = subprocess.run(
        [CONSOLE_SCRIPT, "ingest", "-"], input=mail, env=env, capture_output=True
    )
    assert again.returncode == 0 and b"duplicates 1" in again.stdout
    junk = subprocess.run(
        [CONSOLE_SCRIPT, "ingest"], input=b"\x00\xff" * 50, env=env, capture_output=True
    )
    assert junk.returncode == EX_DATAERR
    listed = subprocess.run(
        [CONSOLE_SCRIPT, "inbound", "list", "--json"], env=env, capture_output=True, check=True
    )
    [row] = json.loads(listed.stdout)
    assert row["source"] == "stdin" and row["envelope_from"] == "bounce@x.example"


def test_templates_render_with_a_real_ticket(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    assert run("customers", "import", "--sample", env=env).exit_code == 0
    run("ingest", stdin=(GOLDEN / "spanish.eml").read_bytes(), env=env)
    result = run(
        "templates", "render", "acknowledgment", "--locale", "es", "--ticket", "10001", env=env
    )
    assert result.exit_code == 0, result.output
    assert "#10001" in result.output and "María Fernanda López" in result.output
    assert "COL-11001" in result.output
    missing = run("templates", "render", "acknowledgment", "--ticket", "999", env=env)
    assert missing.exit_code == EX_DATAERR and "no ticket #999" in missing.output


def test_ingest_file_with_from_lines_in_the_body_is_one_ticket(workdir: Path, db_url: str) -> None:
    env = {"MAILPROC_DATABASE_URL": db_url}
    raw = (
        b"From ana@globex.example Mon Dec  1 10:00:00 2026\n"
        b"From: Ana <ana@globex.example>\nTo: support@dataflow.com\nSubject: sync fails\n\n"
        b"Our sync fails.\n\nFrom the logs:\nDS-1001 since Monday\n\nFrom now on we wait.\n"
    )
    (workdir / "one.eml").write_bytes(raw)
    result = run("ingest", str(workdir / "one.eml"), env=env)
    assert result.exit_code == 0, result.output
    assert "stored 1" in result.output and "created 1" in result.output
    junk = b"---- Original email message ----\nFrom: bo@initech.example\nSubject: hi\n\nHi\n"
    result = run("ingest", stdin=junk, env=env)
    assert result.exit_code == 0, result.output
    assert "stored 1" in result.output

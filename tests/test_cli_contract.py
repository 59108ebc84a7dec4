"""The command line's contract (issue 19): every bad input gives its sysexits code and one line.

Each row of the issue's table is one case; then every command with a missing argument, a
missing file and an unknown id. Runs on SQLite, and on PostgreSQL when it is configured.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pty
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from adapters.support import free_port
from click.testing import CliRunner, Result
from conftest import GOLDEN
from sqlalchemy import inspect

from mailproc.cli import cli
from mailproc.cli.errors import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_DATAERR,
    EX_NOINPUT,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
)
from mailproc.cli.templates import templates
from mailproc.outbound.render import Renderer
from mailproc.resources import resource_path
from mailproc.store.db import make_engine

GOOD_ROW = (
    "2001,Good Co,Gina,gina@good.example,Starter,US,en,America/New_York,4.0,Low,,,"
    "Mon-Fri 09:00-17:00"
)
BAD_ROW = "2002,Bad Co,Bob,not-an-address,Platinum,USA,en,Mars/Base,9,,,,Mon-Fri 25:00-17:00"
CSV_HEADER = (
    "Customer_ID,Company,Contact_Name,Contact_Emails,Plan,Country,Preferred_Language,"
    "Time_Zone,Satisfaction_Score,Churn_Risk,Last_Support_Ticket,Signup_Date,Business_Hours"
)


@dataclass
class Cli:
    """Runs ``mailproc`` in a folder, on a database with the sample customers and ticket 10001."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, stdin: bytes | None = None, **env: str) -> Result:
        return CliRunner().invoke(
            cli, list(args), input=stdin, env={**self.env, **env}, catch_exceptions=False
        )


@pytest.fixture
def mailproc(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for name in list(os.environ):
        if name.startswith("MAILPROC_") and name != "MAILPROC_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    run = Cli(tmp_path, {"MAILPROC_DATABASE_URL": db_url, "MAILPROC_RELAY_URL": "maildir:out"})
    assert run("customers", "import", "--sample").exit_code == EX_OK
    assert run("ingest", str(GOLDEN / "spanish.eml")).exit_code == EX_OK
    yield run


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    """The exit code, and stderr holding exactly one line that names the problem."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailproc: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# (id, arguments, extra environment, exit code, words of the one-line message)
TABLE: list[tuple[str, list[str], dict[str, str], int, tuple[str, ...]]] = [
    ("unknown-status", ["tickets", "list", "--status", "bogus"], {}, EX_USAGE, ("'bogus'",)),
    ("show-without-number", ["tickets", "show"], {}, EX_USAGE, ("NUMBER",)),
    ("unknown-command", ["bogus"], {}, EX_USAGE, ("No such command 'bogus'",)),
    ("classify-missing-file", ["classify", "/nonexistent.eml"], {}, EX_NOINPUT, ("no such",)),
    (
        "import-missing-file",
        ["customers", "import", "/nonexistent.csv"],
        {},
        EX_NOINPUT,
        ("/nonexistent.csv",),
    ),
    (
        "render-unknown-ticket",
        ["templates", "render", "acknowledgment", "--ticket", "99999"],
        {},
        EX_DATAERR,
        ("no ticket #99999",),
    ),
    ("show-unknown-ticket", ["tickets", "show", "99999"], {}, EX_DATAERR, ("#99999",)),
    ("replay-unknown-ticket", ["replay", "--ticket", "99999"], {}, EX_DATAERR, ("#99999",)),
    ("release-unknown", ["quarantine", "release", "99999"], {}, EX_DATAERR, ("99999",)),
    ("release-nothing", ["quarantine", "release"], {}, EX_USAGE, ("--all",)),
    ("replay-two-selectors", ["replay", "--all", "--ticket", "10001"], {}, EX_USAGE, ("one",)),
    (
        "export-cannot-create",
        ["customers", "export", "/no/such/dir/x.csv"],
        {},
        EX_CANTCREAT,
        ("/no/such/dir/x.csv",),
    ),
    ("upgrade-unknown", ["db", "upgrade", "9999"], {}, EX_USAGE, ("known revisions: 0001",)),
    (
        "sla-check-without-followups",
        ["sla", "check"],
        {"MAILPROC_PROCESSING_FOLLOWUPS": "false"},
        EX_CONFIG,
        ("follow-ups are off",),
    ),
    ("unknown-kind", ["inbound", "list", "--kind", "nonsense"], {}, EX_USAGE, ("human",)),
    (
        "addresses-not-json",
        ["tickets", "list"],
        {"MAILPROC_SUPPORT_ADDRESSES": "support@x.com"},
        EX_CONFIG,
        (),
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "code", "needles"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_table_row(
    mailproc: Cli, args: list[str], env: dict[str, str], code: int, needles: tuple[str, ...]
) -> None:
    result = mailproc(*args, **env)
    if code == EX_CONFIG and "MAILPROC_SUPPORT_ADDRESSES" in env:  # one line per bad setting
        assert result.exit_code == EX_CONFIG and "Traceback" not in result.output
        assert "support.addresses: Input should be a valid tuple" in result.stderr
        assert """lists take JSON: '["support@x.com"]'""" in result.stderr
        return
    assert_one_line_error(result, code, *needles)


def test_classify_not_mail_is_a_data_error_as_ingest_says(mailproc: Cli) -> None:
    (mailproc.folder / "notmail.txt").write_text("just some notes\nnot a message\n")
    classified = mailproc("classify", "notmail.txt")
    assert_one_line_error(classified, EX_DATAERR, "not mail")
    ingested = mailproc("ingest", "notmail.txt")
    assert ingested.exit_code == EX_DATAERR
    reason = classified.stderr.split("not mail: ", 1)[1].strip()
    assert reason in ingested.stderr


def test_downgrade_below_data_refuses_without_yes(mailproc: Cli, db_url: str) -> None:
    result = mailproc("db", "downgrade", "base")
    assert_one_line_error(result, EX_USAGE, "--yes", "tickets (1 rows)", "customers (50 rows)")
    engine = make_engine(db_url)
    try:
        assert "tickets" in inspect(engine).get_table_names()  # nothing was dropped
    finally:
        engine.dispose()


def test_downgrade_below_data_asks_on_a_terminal(mailproc: Cli, db_url: str) -> None:
    code, seen = on_terminal(["db", "downgrade", "base"], mailproc.env, answer=b"n\n")
    assert code == 1 and b"tickets (1 rows)" in seen and b"Drop them? [y/N]" in seen
    assert b"Aborted" in seen and b"Traceback" not in seen
    engine = make_engine(db_url)
    try:
        assert "tickets" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_downgrade_with_yes_drops_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a SQLite file of its own: the shared PostgreSQL test database must keep its tables."""
    for name in list(os.environ):
        if name.startswith("MAILPROC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    run = Cli(tmp_path)
    assert run("init", "--sample-data").exit_code == EX_OK
    assert run("ingest", str(GOLDEN / "spanish.eml")).exit_code == EX_OK
    result = run("db", "downgrade", "base", "--yes")
    assert result.exit_code == EX_OK and "at revision base" in result.output
    assert run("db", "current").output.startswith("current: base (empty)")


def test_no_database_here_is_a_config_error_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MAILPROC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for args in (["tickets", "list"], ["sla", "check"], ["deliver", "--once"], ["db", "current"]):
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert_one_line_error(result, EX_CONFIG, "no database here", "run `mailproc init`")
    assert list(tmp_path.iterdir()) == []


def test_deliver_once_with_the_relay_refusing_is_tempfail(mailproc: Cli) -> None:
    closed = f"smtp://127.0.0.1:{free_port()}"
    result = mailproc("deliver", "--once", MAILPROC_RELAY_URL=closed)
    assert result.exit_code == EX_TEMPFAIL and "Traceback" not in result.output
    assert result.stdout == "sent 0, retried 1, failed 0, skipped 1\n"
    assert result.stderr == "mailproc: mail is left due: the relay refused or deferred it\n"


def test_binary_customer_file_is_a_data_error(mailproc: Cli) -> None:
    (mailproc.folder / "x.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 20)
    assert_one_line_error(mailproc("customers", "import", "x.csv"), EX_DATAERR, "UTF-8")


def test_bad_rows_report_every_error_and_good_rows_load(mailproc: Cli) -> None:
    (mailproc.folder / "c.csv").write_text(f"{CSV_HEADER}\n{GOOD_ROW}\n{BAD_ROW}\n")
    result = mailproc("customers", "import", "c.csv")
    assert result.exit_code == EX_DATAERR and "Traceback" not in result.output
    assert "created 1, updated 0, rejected 1" in result.stdout
    errors = result.stderr.rstrip().splitlines()
    assert all(line.startswith("  line 3: ") for line in errors)
    for word in ("Contact_Emails", "Plan", "Country", "Time_Zone", "Satisfaction_Score"):
        assert any(word in line for line in errors), word
    assert any("Business_Hours" in line and "25:00" in line for line in errors)
    exported = mailproc("customers", "export", "-").stdout
    assert "2001,Good Co" in exported and "2002" not in exported


def test_rehearsal_at_a_future_time_sends_with_deliver_now(mailproc: Cli) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    at = later.isoformat()
    assert mailproc("deliver", "--once").stdout.startswith("sent 2,")  # the acknowledgments
    checked = mailproc("sla", "check", "--now", at, "--json")
    assert checked.exit_code == EX_OK
    assert len(json.loads(checked.stdout)["breaches"]) == 3
    assert mailproc("deliver", "--once").stdout.startswith("sent 0,")  # due at T, not now
    dry = mailproc("deliver", "--once", "--now", at, "--dry-run")
    # 5 breach notices, and the weekly, monthly and quarterly reports that fell due by then
    assert dry.exit_code == EX_OK and f"dry run at {at}: 8 mail(s) due" in dry.stdout
    assert "would send: sla_breach_apology (es) to maria@gruposierra.example" in dry.stdout
    for report in ("report_weekly", "report_monthly", "report_quarterly"):
        assert f"would send: {report} (en)" in dry.stdout
    sent = mailproc("deliver", "--once", "--now", at)
    assert (sent.exit_code, sent.stdout) == (EX_OK, "sent 8, retried 0, failed 0, skipped 0\n")
    assert len(list((mailproc.folder / "out" / "new").iterdir())) == 10
    assert mailproc("deliver", "--now", at).exit_code == EX_USAGE  # --now needs --once


# --- every command: a missing argument, a missing file, an unknown id ------------------------


def _leaves(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


NEEDS_ARGUMENT = sorted(
    " ".join(path)
    for path, command in _leaves(cli)
    if any(p.required and p.param_type_name == "argument" for p in command.params)
)


def test_the_commands_with_required_arguments_are_the_expected_ones() -> None:
    assert NEEDS_ARGUMENT == [
        "agents add",
        "agents remove",
        "attachments get",
        "classify",
        "customers export",
        "db downgrade",
        "inbound promote",
        "incidents resolve",
        "kb draft",
        "kb show",
        "outbox show",
        "quarantine show",
        "templates render",
        "tickets priority",
        "tickets show",
    ]


@pytest.mark.parametrize("command", NEEDS_ARGUMENT)
def test_missing_argument_is_a_usage_error(mailproc: Cli, command: str) -> None:
    assert_one_line_error(mailproc(*command.split()), EX_USAGE, "Missing argument")


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "nope.eml"],
        ["ingest", "--no-process", "nope/"],
        ["classify", "nope.eml"],
        ["customers", "import", "nope.csv"],
        ["--config", "nope.toml", "tickets", "list"],
    ],
    ids=lambda args: " ".join(args),
)
def test_missing_file(mailproc: Cli, args: list[str]) -> None:
    code = EX_CONFIG if args[0] == "--config" else EX_NOINPUT
    assert_one_line_error(mailproc(*args), code, "nope")


@pytest.mark.parametrize(
    "args",
    [
        ["tickets", "show", "99999"],
        ["tickets", "priority", "99999", "P1"],
        ["incidents", "resolve", "99999", "--summary", "fixed"],
        ["quarantine", "show", "99999"],
        ["quarantine", "release", "99999"],
        ["inbound", "promote", "99999"],
        ["templates", "render", "survey_request", "--ticket", "99999"],
        ["replay", "--ticket", "99999"],
        ["replay", "--message-id", "<nobody@nowhere.example>"],
        ["classify", str(GOLDEN / "french.eml"), "--customer", "99999"],
        ["agents", "remove", "Nobody Known"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_unknown_id_is_a_data_error(mailproc: Cli, args: list[str]) -> None:
    assert_one_line_error(mailproc(*args), EX_DATAERR, "no ")


def test_a_bug_shows_one_line_and_the_traceback_only_with_vv(
    mailproc: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mailproc.app.App.export_customers", broken)
    quiet = mailproc("customers", "export", "-")
    assert_one_line_error(quiet, 70, "internal error: RuntimeError: boom", "-vv")
    loud = mailproc("-vv", "customers", "export", "-")
    assert loud.exit_code == 70 and "Traceback" in loud.stderr


def test_inbound_list_shows_date_sender_and_subject(mailproc: Cli) -> None:
    [line, count] = mailproc("inbound", "list").stdout.splitlines()
    number, day, time, status, kind, sender, *subject = line.split()
    assert (number, status, kind, sender) == (
        "1",
        "processed",
        "human",
        "maria@gruposierra.example",
    )
    assert dt.date.fromisoformat(day) and len(time) == 5
    assert " ".join(subject) == "Los comentarios no cargan (COL-11001)"
    assert count == "1 message(s)"


def on_terminal(args: list[str], env: dict[str, str], answer: bytes = b"") -> tuple[int, bytes]:
    """Run the console script on a pseudo-terminal (typing ``answer``): exit code, output."""
    command = [str(Path(sys.executable).with_name("mailproc")), *args]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        os.environ.update(env)
        os.execv(command[0], command)
    if answer:
        os.write(terminal, answer)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the child has exited
        while chunk := os.read(terminal, 4096):
            seen += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


def test_progress_only_on_a_terminal_and_one_summary_line(mailproc: Cli) -> None:
    quiet = mailproc("replay", "--all", "--dry-run")
    assert (quiet.exit_code, quiet.stderr) == (EX_OK, "")
    assert quiet.stdout == "dry run: replayed 1: unchanged 1\n"
    code, seen = on_terminal(["replay", "--all", "--dry-run"], mailproc.env)
    assert code == EX_OK
    assert b"replaying" in seen and b"100%" in seen
    assert seen.rstrip().endswith(b"dry run: replayed 1: unchanged 1")


def test_customers_import_shows_progress_only_on_a_terminal(mailproc: Cli) -> None:
    quiet = mailproc("customers", "import", "--sample")
    assert quiet.exit_code == EX_OK and quiet.stderr == ""
    assert quiet.stdout == "customers: created 0, updated 50, rejected 0\n"
    code, seen = on_terminal(["customers", "import", "--sample"], mailproc.env)
    assert code == EX_OK
    assert b"importing customers" in seen and b"100%" in seen
    assert seen.rstrip().endswith(b"customers: created 0, updated 50, rejected 0")


def test_report_shows_progress_only_on_a_terminal(mailproc: Cli) -> None:
    quiet = mailproc("report", "--json")
    assert quiet.exit_code == EX_OK and quiet.stderr == ""
    assert json.loads(quiet.stdout)["metrics"]["ticket_volume"] == {"value": 0}  # last week
    code, seen = on_terminal(["report"], mailproc.env)
    assert code == EX_OK
    assert b"computing the report" in seen and b"100%" in seen
    assert b"ticket_volume" in seen


def test_sla_check_prints_only_what_this_run_did(mailproc: Cli) -> None:
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    first = json.loads(mailproc("sla", "check", "--now", at, "--json").stdout)
    assert [line.split(":")[0] for line in first["breaches"]] == [
        "#10001 sla_breach_apology",
        "#10001 breach_alert",
        "#10001 resolution_alert",
    ]
    assert len(first["escalations"]) == 1 and first["dry_run"] is False
    again = mailproc("sla", "check", "--now", at)
    assert again.exit_code == EX_OK
    assert again.stdout == (
        f"sla check at {dt.datetime.fromisoformat(at).isoformat()}: 0 breach notice(s), "
        "0 escalation(s), 0 void timer(s), 0 survey(s), 0 incident(s), 0 report(s)\n"
    )


@pytest.mark.parametrize(
    "group", ["", *sorted({" ".join(path[:-1]) for path, _ in _leaves(cli) if len(path) > 1})]
)
def test_command_lists_are_not_cut_short(group: str) -> None:
    result = CliRunner().invoke(cli, [*group.split(), "--help"], catch_exceptions=False)
    commands = result.stdout.split("Commands:\n", 1)[1]
    assert "..." not in commands, commands


def test_sample_data_never_overwrites_existing_customers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MAILPROC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    run = Cli(tmp_path)
    (tmp_path / "mine.csv").write_text(
        f"{CSV_HEADER}\n1001,Our Own Name,Lee,lee@own.example,Enterprise,GB,en,Europe/London,,,,,\n"
    )
    assert run("init").exit_code == EX_OK
    assert run("customers", "import", "mine.csv").exit_code == EX_OK
    again = run("init", "--sample-data")
    assert "customers: created 49, updated 0, kept 1, rejected 0" in again.stdout
    assert run("init", "--sample-data").stdout.endswith(
        "created 0, updated 0, kept 50, rejected 0\n"
    )
    exported = run("customers", "export", "-").stdout
    assert "1001,Our Own Name,Lee,lee@own.example,Enterprise,GB" in exported


def test_template_problems_are_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(resource_path("templates"), folder)
    subject = folder / "acknowledgment" / "subject.txt"
    subject.write_text(subject.read_text() + "{{ no_such_field.x }}")
    result = CliRunner().invoke(templates, ["check"], obj=Renderer(templates_dir=folder))
    assert result.exit_code == EX_DATAERR and "no_such_field" in result.stderr

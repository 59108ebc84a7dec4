"""Issue 16: ``mailproc tickets list`` as a work list: filters, sorting, SLA state."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_reports import IDENTITY, agent, at, mailproc, send

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.tickets.worklist import WorkFilter, work_list


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.chdir(tmp_path)
    settings = Settings.model_validate(
        {"database": {"url": db_url}, "processing": {"parse_workers": 0}, "identity": IDENTITY}
    )
    application = App(settings, FixedClock(at("2026-11-30 09:00")))
    application.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    try:
        yield application
    finally:
        application.close()


def listed(app: App, *args: str) -> list[dict]:
    return json.loads(mailproc(app, "tickets", "list", "--json", *args))


def numbers(app: App, *args: str) -> list[int]:
    return [row["number"] for row in listed(app, *args)]


@pytest.fixture
def desk(app: App) -> App:
    """Four tickets on Monday 2026-11-30; the CLI runs on the system clock (later)."""
    send(
        app,
        "2026-11-30 09:00",
        "Oliver <oliver@thamesvalleyenergy.example>",
        "DS-1001: Invalid Credentials",
        "Our Azure SQL source fails.",
    )  # 10001 P1, unanswered
    send(
        app,
        "2026-11-30 09:10",
        "Laura <laura@northwind-analytics.example>",
        "MOB-6006: App Not Loading",
        "The mobile app shows a blank screen.",
    )  # 10002 P2
    send(
        app,
        "2026-11-30 09:20",
        "Priya Raman <priya@harborline.example>",
        "Error 503: Service Unavailable",
        "All dashboards are down.",
    )  # 10003 P0 → DevOps
    send(
        app,
        "2026-11-30 09:30",
        "Daniel <daniel@streamwise.example>",
        "Feature request: dark mode",
        "Could dashboards have a dark mode?",
    )  # 10004 P3
    agent(app, "2026-11-30 09:40", 10002, "#assign Marta Manager\n\nPlease update the app.")
    agent(app, "2026-11-30 09:45", 10004, "#status resolved\n\nIt is on the roadmap.")
    return app


def test_filters_select_the_work(desk: App) -> None:
    assert numbers(desk) == [10004, 10003, 10002, 10001]  # newest first, as before
    assert numbers(desk, "--priority", "P0", "--priority", "P1") == [10003, 10001]
    assert numbers(desk, "--assignee", "marta manager") == [10002]
    assert numbers(desk, "--customer", "1009") == [10001]
    assert numbers(desk, "--customer", "harborline") == [10003]
    assert numbers(desk, "--escalated") == [10003]
    assert numbers(desk, "--since", "2026-12-01") == []
    assert numbers(desk, "--status", "resolved") == [10004]
    assert numbers(desk, "--limit", "2") == [10004, 10003]
    assert numbers(desk, "--sort", "priority") == [10003, 10001, 10002, 10004]


def test_overdue_and_due_within_are_judged_at_now(desk: App) -> None:
    def work(now: str, **options: object) -> list[int]:
        with transaction(desk.sessions, commit=False) as session:
            rows = work_list(session, WorkFilter(**options), at(now))  # type: ignore[arg-type]
        return [row["number"] for row in rows]

    # 10003 (P0) was due 10:20 and is unanswered; 10001 (Enterprise P1, London) is due 13:00
    assert work("2026-11-30 12:00", overdue=True) == [10003]
    assert work("2026-11-30 12:00", due_within=dt.timedelta(hours=4)) == [10001]
    assert work("2026-11-30 12:00", due_within=dt.timedelta(minutes=30)) == []
    assert work("2026-11-30 14:00", overdue=True, sort="due") == [10003, 10001]
    # 10002 waits on the customer: its resolution clock is held, never overdue
    assert work("2026-12-11 00:00", overdue=True, sort="due") == [10003, 10001]


def test_json_carries_the_sla_state(desk: App) -> None:
    rows = {row["number"]: row for row in listed(desk)}
    assert rows[10002]["assignee"] == "Marta Manager"
    assert rows[10002]["first_responded_at"] == "2026-11-30T09:40:00+00:00"
    assert rows[10002]["first_response_breached"] is False
    assert rows[10001]["first_responded_at"] is None
    assert rows[10001]["first_response_breached"] is True
    assert rows[10003]["escalated_to"] == ["devops"]
    assert rows[10004]["resolved_at"] == "2026-11-30T09:45:00+00:00"
    assert rows[10004]["resolution_breached"] is False
    assert rows[10004]["survey_score"] is None
    assert {
        "first_responded_at",
        "resolved_at",
        "assignee",
        "escalated_to",
        "survey_score",
        "first_response_breached",
        "resolution_breached",
    } <= rows[10001].keys()


def test_text_output_has_headers_and_marks_breaches(desk: App) -> None:
    lines = mailproc(desk, "tickets", "list", "--sort", "due").splitlines()
    assert lines[0].split() == [
        "TICKET",
        "STATUS",
        "PRI",
        "NEXT",
        "DUE",
        "(UTC)",
        "ASSIGNEE",
        "CUSTOMER",
        "SUBJECT",
    ]
    assert lines[1].startswith("#10003") and "!!" in lines[1]
    assert lines[-1] == "4 ticket(s)"


def test_a_bad_duration_is_a_usage_error(desk: App) -> None:
    from click.testing import CliRunner

    from mailproc.cli import cli

    result = CliRunner().invoke(
        cli,
        ["tickets", "list", "--due-within", "soon"],
        env={"MAILPROC_DATABASE_URL": desk.settings.database.url},
    )
    assert result.exit_code == 64 and "--due-within" in result.output

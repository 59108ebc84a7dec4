"""The board's rules (nearest deadline, colour, order) and ``mailproc board``."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dashboard.conftest import NOW, T0, XSS_SUBJECT
from mailproc.app import App
from mailproc.cli import cli
from mailproc.dashboard import charts
from mailproc.store.db import transaction
from mailproc.tickets.board import colour, format_left, load_board, nearest_deadline

H = dt.timedelta(hours=1)
MAILPROC = str(Path(sys.executable).with_name("mailproc"))


def test_colour_red_when_overdue_amber_under_a_quarter_of_the_target_left() -> None:
    assert colour(-dt.timedelta(seconds=1), 4 * H) == "red"
    assert colour(dt.timedelta(0), 4 * H) == "amber"
    assert colour(59 * dt.timedelta(minutes=1), 4 * H) == "amber"
    assert colour(H, 4 * H) == "green"  # exactly 25% left is no longer amber


def test_format_left() -> None:
    assert format_left(dt.timedelta(minutes=12, seconds=59)) == "12m"
    assert format_left(dt.timedelta(hours=3, minutes=5)) == "3h 05m"
    assert format_left(dt.timedelta(days=2, hours=4, minutes=30)) == "2d 4h"
    assert format_left(-dt.timedelta(hours=2, minutes=1)) == "-2h 01m"


def test_nearest_deadline_skips_answered_first_response_and_paused_resolution() -> None:
    common = {
        "received_at": T0,
        "needs_triage": False,
        "triage_due": None,
        "first_response_target_hours": 4.0,
        "resolution_target_hours": 24.0,
    }
    first = nearest_deadline(
        **common,
        first_response_due=T0 + 4 * H,
        answered=False,
        resolution_due=T0 + 48 * H,
    )
    assert first is not None and first.kind == "first response" and first.target == 4 * H
    answered = nearest_deadline(
        **common,
        first_response_due=T0 + 4 * H,
        answered=True,
        resolution_due=T0 + 48 * H,
    )
    assert answered is not None and answered.kind == "resolution" and answered.target == 24 * H
    waiting = nearest_deadline(
        **common, first_response_due=T0 + 4 * H, answered=True, resolution_due=None
    )
    assert waiting is None
    triage = nearest_deadline(
        **{**common, "needs_triage": True, "triage_due": T0 + dt.timedelta(minutes=30)},
        first_response_due=T0 + 4 * H,
        answered=False,
        resolution_due=T0 + 48 * H,
    )
    assert triage is not None and triage.kind == "triage"
    assert triage.target == dt.timedelta(minutes=30)


def test_seeded_board_is_most_urgent_first(seeded: App) -> None:
    with transaction(seeded.sessions, commit=False) as session:
        board = load_board(session, NOW)
    rows = board.rows
    assert len(rows) == 10
    assert (rows[0].number, rows[0].priority, rows[0].colour) == (10001, "P0", "red")
    assert (rows[1].number, rows[1].priority, rows[1].colour) == (10002, "P0", "amber")
    assert rows[1].left_text == "10m" and rows[1].company == "Harborline Logistics"
    assert rows[1].escalated_to == ("devops",)
    assert all(row.colour == "green" for row in rows[2:])
    lefts = [row.left for row in rows]
    assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(lefts))
    xss = next(row for row in rows if row.customer_id is None)
    assert xss.subject == XSS_SUBJECT and xss.requester == "mallory@evil.example"
    counts = board.counts()
    assert counts["P0"] == {"new": 2, "open": 0, "waiting": 0, "total": 2, "overdue": 1}
    assert sum(c["total"] for c in counts.values()) == 10 and board.overdue == 1


def _run(app: App, *args: str, color: bool = False) -> str:
    env = {"MAILPROC_DATABASE_URL": app.settings.database.url, "MAILPROC_CONFIG": ""}
    result = CliRunner().invoke(cli, list(args), env=env, color=color, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_board_json_for_scripts(seeded: App) -> None:
    data = json.loads(_run(seeded, "board", "--json", "--now", NOW.isoformat()))
    assert data["open"] == 10 and data["overdue"] == 1
    first = data["tickets"][0]
    assert first["number"] == 10001 and first["colour"] == "red"
    assert first["deadline"] == "first response" and first["seconds_left"] == -(2 * 3600 + 50 * 60)
    assert first["left"] == "-2h 50m"
    assert [t["number"] for t in data["tickets"][:2]] == [10001, 10002]
    assert set(first) >= {"customer_id", "plan", "assignee", "escalated_to", "waiting_on_customer"}


def test_board_text_has_headers_counts_and_colours_only_on_a_terminal(seeded: App) -> None:
    plain = _run(seeded, "board", "--now", NOW.isoformat())
    assert "\x1b[" not in plain
    lines = plain.splitlines()
    assert lines[0].startswith("SLA board at 2026-11-27 10:50 UTC: 10 open, 1 overdue")
    header = next(line for line in lines if line.startswith("TICKET"))
    for column in ("PRI", "CUSTOMER (PLAN)", "ASSIGNEE", "ESCALATED TO", "WAITING", "TIME LEFT"):
        assert column in header
    tickets = [line for line in lines if line.startswith("#")]
    assert tickets[0].startswith("#10001") and "Pinnacle Financial (Enter" in tickets[0]
    assert tickets[1].startswith("#10002") and "devops" in tickets[1]
    coloured = _run(seeded, "board", "--now", NOW.isoformat(), color=True)
    red, amber = "\x1b[31m\x1b[1m-2h 50m", "\x1b[33m\x1b[1m10m"
    assert red in coloured and amber in coloured and "\x1b[32m" in coloured


def test_board_watch_prints_a_line_per_redraw_until_interrupted(seeded: App) -> None:
    env = {**os.environ, "MAILPROC_DATABASE_URL": seeded.settings.database.url}
    env.pop("MAILPROC_CONFIG", None)
    process = subprocess.Popen(
        [MAILPROC, "board", "--watch", "--json", "--interval", "0.2", "--now", NOW.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        first, second = json.loads(process.stdout.readline()), json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(20)
    assert code == 0
    assert first["open"] == second["open"] == 10


def test_chart_labels_are_escaped() -> None:
    svg = charts.horizontal_bars("codes <x>", [("<script>", 3), ("DS-1001", 1)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "codes &lt;x&gt;" in svg
    empty = charts.bars_with_target("none", ["a", "b"], [None, None], y_max=5, target=4.5)
    assert "no data yet" in empty and 'class="target"' in empty

"""Benchmark: server time to render the dashboard's board page with 10,000 open tickets.

Usage: python benchmarks/bench_board.py [--open 10000] [--history 3000] [--runs 15] [--db PATH]

Seeds a fresh SQLite database (the sample customers, ``--open`` open tickets with due times
around now, ``--history`` resolved tickets of the last eight weeks with first responses,
surveys and error codes), then prints the median wall and CPU time of ``--runs`` for: the board
page as served (the board query, the 500 most urgent rows rendered by Jinja2, KPI tiles and four
SVG charts computed at most once a minute), the same with the KPIs recomputed (a cold page), the
page with all rows, the JSON endpoint and the board query alone (``mailproc board``). The
target: the page under 300 ms. ``seed`` is also used by ``benchmarks/dashboard_screenshot.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from sqlalchemy import insert, select

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.config_dashboard import DashboardSettings
from mailproc.core.sla import DEFAULT_SLA_POLICY
from mailproc.dashboard.data import reader_engine, reader_sessions
from mailproc.dashboard.web import Dashboard
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Customer, Outbox, Ticket
from mailproc.tickets.board import load_board

NOW = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)
CODES = ["DS-1001", "DS-1002", "DB-2002", "DB-2003", "API-4004", "MOB-6006", "SSO-9001"]
SUBJECTS = {
    "P0": ["Error 503: Service Unavailable, all dashboards down ({code})", "Platform outage"],
    "P1": ["{code}: connection to our warehouse fails", "Users cannot log in ({code})"],
    "P2": ["Dashboards slow since this morning ({code})", "{code} on the mobile app"],
    "P3": ["Feature request: export to PowerPoint", "Question about our invoice"],
}
AGENTS = [None, None, "Marta", "Ken", "Ana", "Luis"]
TEAMS = ["engineering", "product", "support_manager"]
WEIGHTS = {"P0": 0.04, "P1": 0.26, "P2": 0.40, "P3": 0.30}


def _ticket(
    rng: random.Random, number: int, customer: tuple[int, str, str], now: dt.datetime, open_: bool
) -> dict[str, object]:
    customer_id, plan, address = customer
    priority = rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
    first = DEFAULT_SLA_POLICY.first_response[plan][priority]
    resolution = DEFAULT_SLA_POLICY.resolution[priority]
    code = rng.choice(CODES)
    if open_:
        received = now - first * rng.uniform(0.05, 1.3)
    else:
        received = now - dt.timedelta(days=rng.uniform(0.1, 55))
    responded = None
    if not open_ or rng.random() < 0.4:
        responded = received + first * rng.choice([0.2, 0.5, 0.8, 0.9, 1.2])
        responded = min(responded, now)
    status = "new" if responded is None else rng.choice(["open", "open", "waiting"])
    resolved = None
    if not open_:
        status = "closed"
        resolved = min(received + resolution * rng.uniform(0.2, 1.4), now)
    waiting = status == "waiting"
    survey = rng.choice([None, 3, 4, 4, 5, 5, 5, 2]) if resolved else None
    return {
        "number": number,
        "status": status,
        "subject": rng.choice(SUBJECTS[priority]).format(code=code),
        "customer_id": customer_id,
        "requester": address,
        "unknown_customer": False,
        "priority": priority,
        "intent": "incident",
        "needs_triage": False,
        "locale": "en",
        "received_at": received,
        "classified_at": received,
        "first_response_due": received + first,
        "resolution_due": None if waiting else received + resolution,
        "first_responded_at": responded,
        "resolved_at": resolved,
        "created_at": received,
        "updated_at": resolved or received,
        "classification": {"priority_rule": "catalog", "rule_hits": [], "error_codes": [code]},
        "sla": {
            "sla_row": f"{plan}/{priority}",
            "calendar": "Mon-Fri 09:00-17:00",
            "clock_start": received.isoformat(),
            "first_response_target_hours": first.total_seconds() / 3600,
            "resolution_target_hours": resolution.total_seconds() / 3600,
            "explanation": [f"SLA row {plan} × {priority}", "first response due ..."],
        },
        "sla_pauses": [[(responded or received).isoformat(), None]] if waiting else [],
        "assignee": rng.choice(AGENTS),
        "escalated_to": (
            ["devops"] if priority == "P0" else [rng.choice(TEAMS)] if rng.random() < 0.08 else []
        ),
        "survey_score": survey,
        "survey_answered_at": resolved + dt.timedelta(days=1) if survey and resolved else None,
    }


def seed(app: App, open_count: int, history: int, now: dt.datetime, seed_value: int = 16) -> None:
    """The sample customers, ``open_count`` open and ``history`` closed tickets around ``now``."""
    app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    rng = random.Random(seed_value)
    with transaction(app.sessions) as session:
        customers = [
            (c.id, c.plan, c.addresses[0].address)
            for c in session.scalars(select(Customer).order_by(Customer.id))
        ]
        rows = [
            _ticket(rng, 10001 + i, rng.choice(customers), now, i >= history)
            for i in range(history + open_count)
        ]
        for start in range(0, len(rows), 2000):
            session.execute(insert(Ticket), rows[start : start + 2000])
        replies = [
            _agent_reply(ticket_id, number, received + (resolved - received) * (n + 1) / 3)
            for ticket_id, number, received, resolved in session.execute(
                select(Ticket.id, Ticket.number, Ticket.received_at, Ticket.resolved_at).where(
                    Ticket.resolved_at.is_not(None)
                )
            )
            for n in range(1 if rng.random() < 0.75 else 2)  # first-contact resolution ~75%
        ]
        session.execute(insert(Outbox), replies)


def _agent_reply(ticket_id: int, number: int, at: dt.datetime) -> dict[str, object]:
    """An agent's reply relayed to the customer (what FCR counts), already sent."""
    key = f"agent-reply-{number}-{at.timestamp():.0f}"
    return {
        "key": key,
        "ticket_id": ticket_id,
        "template": "agent_reply",
        "locale": "en",
        "message_id": f"<{key}@mailproc.dataflow.com>",
        "envelope_from": "support@dataflow.com",
        "auto_submitted": "no",
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": at,
        "deadline_at": at,
        "created_at": at,
        "sent_at": at,
    }


def _timed(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``runs`` calls (CPU: the shared machine's noise
    inflates wall time; the page is rendered by one thread)."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--db", type=Path, help="SQLite file to create (default: a temp dir)")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp(prefix="bench-board-")) / "board.db"
    settings = Settings.model_validate(
        {"database": {"url": f"sqlite:///{path}"}, "processing": {"parse_workers": 0}}
    )
    app = App(settings, FixedClock(NOW))
    app.upgrade_database()
    started = time.perf_counter()
    seed(app, args.open, args.history, NOW)
    print(
        f"seeded {args.open} open + {args.history} closed tickets in "
        f"{time.perf_counter() - started:.1f} s ({path})"
    )
    engine = reader_engine(settings.database)
    sessions = reader_sessions(engine)
    dashboard = Dashboard(DashboardSettings(), sessions, app.clock)
    full = Dashboard(DashboardSettings(board_rows=0), sessions, app.clock)
    page = dashboard.render_board()
    print(
        f"board page: {len(page) / 1e6:.2f} MB of HTML, {page.count('<tr data-number')} rows "
        f"(the {dashboard.settings.board_rows} most urgent; board_rows = 0 shows all)"
    )

    def query() -> None:
        with transaction(sessions, commit=False) as session:
            load_board(session, NOW)

    def cold() -> str:
        return Dashboard(DashboardSettings(), sessions, app.clock).render_board()

    for name, work in (
        ("board page (GET /)", dashboard.render_board),
        ("board page, KPIs recomputed (cold)", cold),
        ("board page, all 10,000 rows", full.render_board),
        ("JSON, page's rows (/api/board?limit)", lambda: orjson.dumps(dashboard.board_data(500))),
        ("JSON, all rows (/api/board)", lambda: orjson.dumps(dashboard.board_data())),
        ("board query only", query),
    ):
        work()  # warm
        wall, cpu = _timed(args.runs, work)
        print(f"{name:<38} median {wall:7.1f} ms wall, {cpu:7.1f} ms CPU   ({args.runs} runs)")
    engine.dispose()
    app.close()


if __name__ == "__main__":
    main()

"""Benchmark: the KPI report (``mailproc report``) over a large generated ticket store.

Usage: python benchmarks/bench_report.py [--tickets 100000] [--runs 5]
       python benchmarks/bench_report.py --postgres URL [--tickets 1000000]

Generates a year of tickets (2026) with bulk inserts (SQLite: executemany; PostgreSQL: COPY)
into a fresh scratch database: every priority and plan, replies in and out of SLA, agent
replies in the outbox, resolutions, escalations, surveys and answers, refund cases, credits
and error codes. On PostgreSQL it then rolls up the report's hours once, as the scheduler
tick does (``reports/rollup.py``; timed). Then times ``metrics.report`` for the last week,
month and quarter and the whole year, and prints the median of ``--runs`` runs of each. The
bar (issue 16): under 2 s for 100,000 tickets on SQLite and 1,000,000 on PostgreSQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import database
from sqlalchemy import Table, insert, text

from mailproc.app import App
from mailproc.config import Settings
from mailproc.reports import metrics, rollup
from mailproc.reports.periods import Period, PeriodKind, month_of, quarter_of, week_of
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Credit, Outbox, RefundCaseRecord, Ticket

YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 1, 5, 9, tzinfo=dt.UTC)
CHUNK = 20_000
CODES = ("DS-1001", "DS-1002", "DB-2002", "DB-2003", "API-4004", "MOB-6006", "SSO-9001")
FIRST_HOURS = {"P0": 1, "P1": 4, "P2": 24, "P3": 48}
RESOLVE_HOURS = {"P0": 4, "P1": 24, "P2": 72, "P3": 72}


def generate(count: int, seed: int = 16) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(ticket row, its outbox/refund/credit rows) for ``count`` tickets over 2026."""
    rng = random.Random(seed)
    year = 365 * 24 * 3600
    for n in range(1, count + 1):
        received = YEAR_START + dt.timedelta(seconds=rng.randrange(year))
        priority = rng.choices(("P0", "P1", "P2", "P3"), (2, 18, 40, 40))[0]
        first_due = received + dt.timedelta(hours=FIRST_HOURS[priority])
        roll = rng.random()
        answered = (
            received + dt.timedelta(hours=FIRST_HOURS[priority] * rng.uniform(0.05, 0.95))
            if roll < 0.85
            else received + dt.timedelta(hours=FIRST_HOURS[priority] * rng.uniform(1.1, 3))
            if roll < 0.95
            else None
        )
        resolved = (
            received + dt.timedelta(hours=RESOLVE_HOURS[priority] * rng.lognormvariate(-0.5, 0.7))
            if answered is not None and rng.random() < 0.9
            else None
        )
        surveyed = resolved + dt.timedelta(hours=24) if resolved else None
        score = rng.choices((1, 2, 3, 4, 5), (5, 7, 13, 35, 40))[0] if surveyed else None
        answered_survey = surveyed + dt.timedelta(hours=rng.uniform(1, 72)) if score else None
        if rng.random() > 0.3:
            score = answered_survey = None
        ticket = {
            "id": n,
            "number": 10000 + n,
            "status": "resolved" if resolved else "open",
            "subject": f"Generated ticket {n}",
            "customer_id": 1001 + rng.randrange(50),
            "requester": f"user{n % 977}@example.com",
            "unknown_customer": False,
            "priority": priority,
            "intent": "technical_issue",
            "needs_triage": False,
            "received_at": received,
            "first_response_due": first_due,
            "resolution_due": received + dt.timedelta(hours=RESOLVE_HOURS[priority]),
            "first_responded_at": answered,
            "resolved_at": resolved,
            "created_at": received,
            "updated_at": resolved or received,
            "classification": {"error_codes": [rng.choice(CODES)] if rng.random() < 0.7 else []},
            "sla": {},
            "sla_pauses": [],
            "escalated_to": ["engineering"] if rng.random() < 0.08 else [],
            "survey_sent_at": surveyed,
            "survey_score": score,
            "survey_answered_at": answered_survey,
            "origin": "human" if rng.random() < 0.97 else "bulk",
            "churn_risk_raised": bool(score and score < 3 and rng.random() < 0.5),
        }
        extra: list[dict[str, Any]] = []
        if answered is not None:
            replies = [answered]
            if rng.random() < 0.35:
                replies.append(answered + dt.timedelta(hours=rng.uniform(0.5, 20)))
            if answered_survey is not None and score is not None and score < 3:
                replies.append(answered_survey + dt.timedelta(hours=rng.uniform(1, 60)))
            extra += [_reply(n, i, at) for i, at in enumerate(replies)]
        if rng.random() < 0.015:
            extra.append(_refund(n, received))
        if answered is None or answered > first_due:
            extra.append(_credit(n, ticket["customer_id"], first_due))
        yield ticket, extra


def _reply(ticket_id: int, index: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "_table": "outbox",
        "key": f"reply:{ticket_id}:{index}",
        "ticket_id": ticket_id,
        "template": "agent_reply",
        "locale": "en",
        "message_id": f"reply-{ticket_id}-{index}@bench.example",
        "envelope_from": "support@dataflow.com",
        "auto_submitted": "auto-replied",
        "lane": 0,
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": at,
        "deadline_at": at + dt.timedelta(hours=48),
        "created_at": at,
        "sent_at": at,
    }


def _refund(ticket_id: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "_table": "refund_cases",
        "ticket_id": ticket_id,
        "currency": "USD",
        "plan": "Starter",
        "kind": "refund",
        "required_level": "agent",
        "level_reason": "",
        "status": "requested",
        "requested_at": at,
    }


def _credit(ticket_id: int, customer_id: int, at: dt.datetime) -> dict[str, Any]:
    return {
        "_table": "credits",
        "key": f"breach:{ticket_id}",
        "customer_id": customer_id,
        "ticket_id": ticket_id,
        "amount": 50,
        "currency": "USD",
        "reason": "first-response SLA missed",
        "created_at": at,
    }


TABLES: dict[str, Table] = {
    "tickets": Ticket.__table__,  # type: ignore[dict-item]
    "outbox": Outbox.__table__,  # type: ignore[dict-item]
    "refund_cases": RefundCaseRecord.__table__,  # type: ignore[dict-item]
    "credits": Credit.__table__,  # type: ignore[dict-item]
}


def load(app: App, count: int) -> float:
    """Bulk-insert ``count`` generated tickets with their rows; the seconds it took."""
    started = time.perf_counter()
    batches: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}

    def flush() -> None:
        with app.engine.begin() as connection:
            for name, rows in batches.items():
                if rows:
                    _write(connection, name, rows)
                    rows.clear()

    for ticket, extra in generate(count):
        batches["tickets"].append(ticket)
        for row in extra:
            batches[row.pop("_table")].append(row)
        if len(batches["tickets"]) >= CHUNK:
            flush()
    flush()
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def _write(connection: Any, name: str, rows: list[dict[str, Any]]) -> None:
    table = TABLES[name]
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = list(rows[0])
    raw = connection.connection.dbapi_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
            )


def timed(app: App, period: Period, runs: int) -> tuple[float, dict[str, Any]]:
    """The median seconds of ``runs`` reports of ``period``, and the last report."""
    seconds = []
    found: dict[str, Any] = {}
    for _ in range(runs):
        started = time.perf_counter()
        with transaction(app.sessions, commit=False) as session:
            found = metrics.report(session, period, NOW)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), found


def run(kind: str, postgres: str | None, count: int, runs: int) -> None:
    with database(kind, postgres) as url:
        app = App(Settings.model_validate({"database": {"url": url}}))
        try:
            app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
            loaded = load(app, count)
            print(f"{kind}: {count:,} tickets generated and loaded in {loaded:.1f} s")
            if kind == "postgresql":
                started = time.perf_counter()
                with transaction(app.sessions) as session:
                    hours = rollup.refresh(session, NOW)
                print(f"  roll-up of {hours:,} hours: {time.perf_counter() - started:.1f} s")
            utc = ZoneInfo("UTC")
            periods = {
                "last week": week_of(dt.date(2026, 12, 21), utc),
                "last month": month_of(dt.date(2026, 12, 1), utc),
                "last quarter": quarter_of(dt.date(2026, 12, 1), utc),
                "whole year": Period(
                    dt.date(2026, 1, 1), dt.date(2026, 12, 31), utc, PeriodKind.CUSTOM
                ),
            }
            for name, period in periods.items():
                median, found = timed(app, period, runs)
                volume = found["metrics"]["ticket_volume"]["value"]
                print(
                    f"  {name:<13} {volume:>9,} tickets opened: median of {runs} runs "
                    f"{median:.3f} s"
                )
        finally:
            app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, help="default 100,000 (SQLite), 1,000,000 (PG)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL URL: benchmark there instead")
    args = parser.parse_args()
    kind = "postgresql" if args.postgres else "sqlite"
    count = args.tickets or (1_000_000 if args.postgres else 100_000)
    run(kind, args.postgres, count, args.runs)


if __name__ == "__main__":
    main()

"""Take docs/weekly-report.png: the weekly report mail of a seeded week in headless Chromium.

Usage: python benchmarks/report_screenshot.py [--out docs/weekly-report.png] [--history 1500]

Seeds a scratch SQLite database like ``benchmarks/dashboard_screenshot.py`` (``bench_board.seed``:
the sample customers, eight weeks of resolved tickets with replies, escalations, surveys and
error codes), adds what a real desk also records (survey requests, breach credits, a few refund
cases), builds the weekly report of the last full week as the scheduler's mail does
(``reports.mailing.build_page``), writes its HTML with the inline charts (``cid:``) as data URIs
and photographs it with Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import subprocess
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from bench_board import NOW, seed
from sqlalchemy import insert, select, update

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.reports.mailing import ReportKind, build_page, scheduled
from mailproc.store.db import transaction
from mailproc.store.models import Credit, RefundCaseRecord, Ticket


def enrich(app: App, seed_value: int) -> None:
    """Survey requests a day after each resolution, $50 credits for missed first responses and
    a refund case on about one ticket in 60."""
    rng = random.Random(seed_value)
    with transaction(app.sessions) as session:
        rows = session.execute(
            select(
                Ticket.id,
                Ticket.customer_id,
                Ticket.received_at,
                Ticket.first_response_due,
                Ticket.first_responded_at,
                Ticket.resolved_at,
            ).where(Ticket.resolved_at.is_not(None))
        ).all()
        session.execute(
            update(Ticket),
            [{"id": row[0], "survey_sent_at": row[5] + dt.timedelta(hours=2)} for row in rows],
        )
        credits = [
            {
                "key": f"breach:{ticket_id}",
                "customer_id": customer_id,
                "ticket_id": ticket_id,
                "amount": 50,
                "currency": "USD",
                "reason": "first-response SLA missed",
                "created_at": due,
            }
            for ticket_id, customer_id, _, due, answered, _ in rows
            if answered is not None and answered > due
        ]
        refunds = [
            {
                "ticket_id": ticket_id,
                "currency": "USD",
                "plan": "Starter",
                "kind": "refund",
                "required_level": "agent",
                "level_reason": "",
                "status": "requested",
                "requested_at": received,
            }
            for ticket_id, _, received, _, _, _ in rows
            if rng.random() < 1 / 60
        ]
        if credits:
            session.execute(insert(Credit), credits)
        if refunds:
            session.execute(insert(RefundCaseRecord), refunds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/weekly-report.png"))
    parser.add_argument("--history", type=int, default=1500)
    parser.add_argument("--size", default="900,2300")
    parser.add_argument("--seed", type=int, default=3, help="Of the random ticket mix.")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="report-shot-"))
    settings = Settings.model_validate(
        {"database": {"url": f"sqlite:///{folder / 'shot.db'}"}, "processing": {"parse_workers": 0}}
    )
    app = App(settings, FixedClock(NOW))
    try:
        app.upgrade_database()
        seed(app, 40, args.history, NOW, args.seed)
        enrich(app, args.seed)
        _, week = scheduled(ReportKind.WEEKLY, NOW, ZoneInfo(settings.company.timezone))
        with transaction(app.sessions, commit=False) as session:
            page = build_page(
                session,
                week,
                NOW,
                content_id_domain="mailproc.dataflow.com",
                kb_target=settings.kb.monthly_target,
            )
    finally:
        app.close()
    html = folder / "report.html"
    html.write_text(page.standalone_html(), encoding="utf-8")
    subprocess.run(
        [
            "/usr/bin/chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={args.size}",
            f"--screenshot={args.out.resolve()}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    print(f"wrote {args.out}: {page.subject}")


if __name__ == "__main__":
    main()

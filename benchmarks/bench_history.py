"""Benchmark (issue 14 part 4): import three months of history, then run ``sla check``.

Usage: python benchmarks/bench_history.py [--mails 3000] [--postgres URL]

Generates ``--mails`` mails of the three months before now (threads of a customer's mail, an
agent's answer with commands and the customer's reply; outages, refunds, out-of-office replies
and newsletters among them: ``tests/test_history_import.history``), stores them with
``ingest --history`` (``App.ingest(history=True)``), processes them, then runs the scheduler
tick at +2 h, +1 day and +30 days. Prints the time of each step, mails per second, and the
outbox rows and credits after each tick (the promise: 0 and 0).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (the mail generator)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import database
from sqlalchemy import func, select

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.resources import resource_path
from mailproc.store.db import transaction
from mailproc.store.models import Credit, Outbox, Ticket
from tests.test_history_import import IDENTITY, history

NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


def counts(app: App) -> tuple[int, int]:
    with transaction(app.sessions, commit=False) as session:
        sent = session.scalar(select(func.count()).select_from(Outbox)) or 0
        given = session.scalar(select(func.count()).select_from(Credit)) or 0
    return sent, given


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=3000)
    parser.add_argument("--postgres")
    args = parser.parse_args()
    raws = history(args.mails, NOW)
    with database("postgresql" if args.postgres else "sqlite", args.postgres) as url:
        clock = FixedClock(NOW)
        settings = Settings.model_validate({"database": {"url": url}, "identity": IDENTITY})
        app = App(settings, clock)
        try:
            app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
            started = time.perf_counter()
            app.ingest((RawInput(raw, Envelope("mbox")) for raw in raws), history=True)
            stored = time.perf_counter()
            app.process()
            processed = time.perf_counter()
            with transaction(app.sessions, commit=False) as session:
                tickets = session.scalar(select(func.count()).select_from(Ticket))
            print(f"{args.mails} mails: stored in {stored - started:.2f} s, processed in "
                  f"{processed - stored:.2f} s ({args.mails / (processed - started):.0f} mails/s)"
                  f" into {tickets} tickets")  # fmt: skip
            for after in (dt.timedelta(hours=2), dt.timedelta(days=1), dt.timedelta(days=30)):
                clock.advance(NOW + after - clock.now())
                tick = time.perf_counter()
                app.check(clock.now(), dry_run=False)
                sent, given = counts(app)
                print(f"sla check at +{after}: {time.perf_counter() - tick:.2f} s, "
                      f"outbox rows {sent}, credits {given}")  # fmt: skip
        finally:
            app.close()


if __name__ == "__main__":
    main()

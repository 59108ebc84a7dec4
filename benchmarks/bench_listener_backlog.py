"""Benchmark: SMTP latency of ``mailproc serve`` on SQLite while its worker works off a backlog.

Usage: python benchmarks/bench_listener_backlog.py [--backlog 5000] [--runs 2]

SQLite has one writer at a time: the listener's commit writer and the processing worker take
turns. A backlog of generated mail is stored without processing, then ``serve`` (listener and
worker) starts and 4 ``smtplib`` clients send 1,500 messages while the worker processes. Prints
intake messages/s, DATA-to-250 latency (p50, p99, worst) and the worker's messages processed a
second while ``serve`` ran, for processing batch sizes 100 and 250; in ``serve`` on SQLite the
worker takes at most ``Worker.LISTENER_BATCH`` per transaction, fewer when a transaction took
longer than ``processing.budget.TARGET_S``.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_smtp_imap import MAILPROC, drive, free_port, process, serve_config
from corpus_gen import generate
from scratch import database

CLIENTS = 4
MESSAGES = 1500


def measure(backlog: int, batch_size: int) -> str:
    """One run: a fresh database with ``backlog`` pending mails, then SMTP while it is processed."""
    from mailproc.app import App
    from mailproc.config import Settings
    from mailproc.intake.sources import RawInput
    from mailproc.intake.store import Envelope

    with database("sqlite", None) as url, tempfile.TemporaryDirectory() as work:
        app = App(Settings.model_validate({"database": {"url": url}}))
        app.ingest(RawInput(raw, Envelope("file")) for raw in generate(backlog))
        app.close()
        port = free_port()
        config = serve_config(Path(work), url, port, f"[processing]\nbatch_size = {batch_size}\n")
        started = time.monotonic()
        with process([MAILPROC, "--config", str(config), "serve"], port, Path(work) / "log"):
            run = drive(port, CLIENTS, MESSAGES, f"backlog{batch_size}")
        served = time.monotonic() - started
        processed = processed_count(url)
    latencies = sorted(seconds * 1000 for seconds in run.latencies)
    centiles = statistics.quantiles(latencies, n=100)
    return (
        f"batch_size {batch_size:>3}: {run.rate:5.0f} msg/s taken in; DATA-to-250 p50"
        f" {centiles[49]:.1f} ms, p99 {centiles[98]:.1f} ms, worst {latencies[-1]:.0f} ms;"
        f" worker {processed / served:5.0f} msg/s processed ({processed} in {served:.1f} s)"
    )


def processed_count(url: str) -> int:
    """How many stored mails the worker has processed (no longer pending)."""
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        query = "SELECT count(*) FROM inbound WHERE status != 'pending'"
        return int(connection.execute(query).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"{CLIENTS} SMTP clients, {MESSAGES} messages, during a {args.backlog}-mail backlog")
    for _ in range(args.runs):
        for batch_size in (100, 250):
            print(measure(args.backlog, batch_size))


if __name__ == "__main__":
    main()

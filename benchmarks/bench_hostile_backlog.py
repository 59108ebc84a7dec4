"""Benchmark (issue 20, item 8): hostile mail in the backlog must not stall other senders.

Usage: python benchmarks/bench_hostile_backlog.py [--runs 2] [--messages 600]

The hostile set is stored without processing (what ``ingest`` refuses is reported, not
stored): 500,000 short lines (the quote splitter was quadratic), an RFC 2231 split boundary
over 200,000 parts, 25 MB on one line, 10,000 nested multiparts and a 2,000-recipient To
header. Then ``serve`` on SQLite (listener and worker) starts and 4 ``smtplib`` clients send
``--messages`` ordinary mails, round after round (at most ``MAX_ROUNDS``) until the worker has
processed the hostile ones, so that the traffic covers their processing. Prints the SMTP
DATA-to-250 latency of the other senders (p50, p99, worst; the target is a worst under
2 s), the rounds, and how each hostile mail ended (ticket, quarantine with its reason).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_smtp_imap import MAILPROC, drive, free_port, process, serve_config
from scratch import database

CLIENTS = 4
MAX_ROUNDS = 20
HEAD = "From: Mallory <mallory@example.com>\r\nTo: support@dataflow.com\r\nSubject: {subject}\r\n"


def hostile_set() -> dict[str, bytes]:
    """The issue's hostile mails, by name."""
    lines = HEAD.format(subject="many lines") + "\r\n" + "> a\r\nb\r\n" * 250_000
    parts = "".join("--ab\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(200_000))
    split = (
        HEAD.format(subject="split boundary")
        + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary*0="a"; boundary*1="b"\r\n'
        + "\r\n"
        + parts
        + "--ab--\r\n"
    )
    one_line = HEAD.format(subject="one line") + "\r\n" + "x" * (25 * 1024 * 1024) + "\r\n"
    depth = 10_000
    nested = (
        HEAD.format(subject="nested")
        + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + "".join(
            f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n"
            for i in range(depth)
        )
        + "".join(f"--b{i}--\r\n" for i in reversed(range(depth + 1)))
    )
    recipients = ", ".join(f"user{n}@example.com" for n in range(2_000))
    crowd = (
        "From: Mallory <mallory@example.com>\r\n"
        f"To: {recipients}\r\nSubject: crowd\r\n\r\nHello everyone.\r\n"
    )
    return {
        "500,000 short lines": lines.encode(),
        "RFC 2231 split boundary, 200,000 parts": split.encode(),
        "25 MB on one line": one_line.encode(),
        "10,000 nested multiparts": nested.encode(),
        "2,000-recipient To header": crowd.encode(),
    }


def measure(messages: int) -> list[str]:
    """One run: the hostile set pending in a fresh SQLite database, then SMTP during it."""
    from sqlalchemy import select

    from mailproc.app import App
    from mailproc.config import Settings
    from mailproc.intake.sources import RawInput
    from mailproc.intake.store import Envelope
    from mailproc.store.db import transaction
    from mailproc.store.models import Inbound

    report = []
    with database("sqlite", None) as url, tempfile.TemporaryDirectory() as work:
        app = App(Settings.model_validate({"database": {"url": url}}))
        hostile = hostile_set()
        stored = app.ingest(RawInput(raw, Envelope("file", name)) for name, raw in hostile.items())
        for ref, reason in stored.rejected:
            report.append(f"  refused at intake: {ref}: {reason}")
        app.close()
        port = free_port()
        config = serve_config(Path(work), url, port, f'[relay]\nurl = "maildir:{work}/out"\n')
        with process([MAILPROC, "--config", str(config), "serve"], port, Path(work) / "log"):
            runs = [drive(port, CLIENTS, messages, "hostile0")]
            while hostile_pending(url, hostile) and len(runs) < MAX_ROUNDS:
                runs.append(drive(port, CLIENTS, messages, f"hostile{len(runs)}"))
            covered = not hostile_pending(url, hostile)
        app = App(Settings.model_validate({"database": {"url": url}}))
        with transaction(app.sessions, commit=False) as session:
            for ref, status, error in session.execute(
                select(Inbound.source_ref, Inbound.status, Inbound.last_error).where(
                    Inbound.source_ref.is_not(None)
                )
            ):
                if ref in hostile:
                    report.append(f"  {ref}: {status}{f' ({error})' if error else ''}")
        app.close()
    latencies = sorted(seconds * 1000 for run in runs for seconds in run.latencies)
    centiles = statistics.quantiles(latencies, n=100)
    rate = len(runs) * messages / sum(messages / run.rate for run in runs)
    report.insert(
        0,
        f"{rate:5.0f} msg/s taken in; other senders' DATA-to-250 p50 {centiles[49]:.1f} ms,"
        f" p99 {centiles[98]:.1f} ms, worst {latencies[-1]:.0f} ms (target: worst < 2000 ms);"
        f" {len(runs)} rounds of {messages}"
        + ("" if covered else ", the hostile set still pending after the last"),
    )
    return report


def hostile_pending(url: str, hostile: dict[str, bytes]) -> int:
    """How many of the hostile mails are still pending (read without a write lock)."""
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        marks = ", ".join("?" * len(hostile))
        query = f"SELECT count(*) FROM inbound WHERE status = 'pending' AND source_ref IN ({marks})"
        return int(connection.execute(query, list(hostile)).fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--messages", type=int, default=600)
    args = parser.parse_args()
    print(
        f"{CLIENTS} SMTP clients, {args.messages} messages, while serve processes the hostile set"
    )
    for _ in range(args.runs):
        print("\n".join(measure(args.messages)))


if __name__ == "__main__":
    main()

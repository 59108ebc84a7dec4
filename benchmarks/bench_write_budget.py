"""Benchmark (issue 20, item 8): how long the worker's write transactions hold SQLite's lock.

Usage: python benchmarks/bench_write_budget.py [--backlog 3000] [--runs 3] [--targets 0.25,0.5]

A backlog of generated mail is processed as ``serve`` does on SQLite beside its listener (parts
of at most ``Worker.LISTENER_BATCH``), with the count alone and with the time budget too
(``processing.budget.WriteBudget``: ``TARGET_S`` or each of ``--targets``), alternating. Prints
per run the transactions, the first one's time (nothing learnt yet) and the longest, 99th-centile
and median time of the others (what the listener's commits may wait for), and the messages
processed a second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_gen import generate
from scratch import database

from mailproc.processing.budget import TARGET_S, WriteBudget


class Timed(WriteBudget):
    """A budget that keeps every transaction's time; ``target_s`` None: the count alone."""

    def __init__(self, most: int, target_s: float | None) -> None:
        super().__init__(most, target_s or TARGET_S)
        self.adapt = target_s is not None
        self.times: list[float] = []

    def record(self, messages: int, started: float) -> None:
        """Keep the time, then adapt (or not)."""
        self.times.append(time.monotonic() - started)
        if self.adapt:
            super().record(messages, started)


def measure(backlog: int, target_s: float | None) -> str:
    """One run on a fresh database."""
    from mailproc.app import App
    from mailproc.config import Settings
    from mailproc.intake.sources import RawInput
    from mailproc.intake.store import Envelope
    from mailproc.supervisor import Worker

    with database("sqlite", None) as url:
        app = App(Settings.model_validate({"database": {"url": url}}))
        try:
            app.ingest(RawInput(raw, Envelope("file")) for raw in generate(backlog))
            budget = Timed(Worker.LISTENER_BATCH, target_s)
            started = time.monotonic()
            summary = app.process(batch_size=Worker.LISTENER_BATCH, budget=budget)
            rate = len(summary.outcomes) / (time.monotonic() - started)
        finally:
            app.close()
    later = sorted(budget.times[1:]) or budget.times  # the first: before anything was learnt
    p99 = statistics.quantiles(later, n=100, method="inclusive")[98] if len(later) > 1 else 0.0
    return (
        f"{f'target {target_s} s' if target_s else 'count alone'}: {len(budget.times):4d}"
        f" transactions, the first {budget.times[0] * 1000:4.0f} ms, then longest"
        f" {later[-1] * 1000:4.0f} ms, p99 {p99 * 1000:4.0f} ms, median"
        f" {statistics.median(later) * 1000:4.0f} ms; {rate:4.0f} msg/s processed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--targets", default=str(TARGET_S))
    args = parser.parse_args()
    targets = [float(target) for target in args.targets.split(",")]
    print(f"a {args.backlog}-mail backlog, parts of at most 100 (serve on SQLite)")
    for _ in range(args.runs):
        for target_s in (None, *targets):
            print(measure(args.backlog, target_s))


if __name__ == "__main__":
    main()

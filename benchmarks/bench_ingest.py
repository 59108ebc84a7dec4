"""Benchmark: ingest + process throughput on SQLite and PostgreSQL against the bare stdlib parse.

Usage: python benchmarks/bench_ingest.py [--count 5000] [--runs 3] [--postgres URL]

Prints messages/s (median of runs) for: the bare ``email.message_from_bytes(...,
policy=default)`` + ``get_body()`` on the same corpus, and mailproc's end-to-end ``ingest`` +
``process`` into a fresh database, twice: "tickets only" (``[processing] followups = false``:
parse, detect, thread, classify, SLA) and "with mail" (acknowledgments, alerts, escalation
timers queued as well), plus each run's peak memory (max RSS of the measuring process; the
parse worker process is not included). The end-to-end runs tune the garbage collector as the
``mailproc`` command does (``mailproc.runtime.tune_gc``); the bare parse runs with Python's
defaults, which it does not need to change (measured: the same rate either way).
The bar (issue 2): end-to-end at least half the bare-parse rate.
"""

from __future__ import annotations

import argparse
import email
import multiprocessing
import os
import resource
import statistics
import sys
import time
from email import policy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_gen import generate
from scratch import database


def bare_parse(mails: list[bytes]) -> float:
    started = time.perf_counter()
    for raw in mails:
        message = email.message_from_bytes(raw, policy=policy.default)
        message.get_body()  # type: ignore[attr-defined]
    return time.perf_counter() - started


def end_to_end(mails: list[bytes], url: str, followups: bool = True) -> float:
    from mailproc.app import App
    from mailproc.config import Settings
    from mailproc.intake.sources import RawInput
    from mailproc.intake.store import Envelope
    from mailproc.processing.context import OutcomeAction
    from mailproc.runtime import tune_gc

    tune_gc()  # as the mailproc command does when it starts

    app = App(
        Settings.model_validate({"database": {"url": url}, "processing": {"followups": followups}})
    )
    try:
        app.upgrade_database()
        started = time.perf_counter()
        # as `mailproc ingest` does: the parse workers start while the mail is stored
        app.ingest((RawInput(raw, Envelope("file")) for raw in mails), processing_follows=True)
        summary = app.process()
        elapsed = time.perf_counter() - started
        assert len(summary.outcomes) == len(mails), "not every message was processed"
        assert summary.count(OutcomeAction.QUARANTINED) == 0
        return elapsed
    finally:
        app.close()


def _child(target: str, count: int, url: str, queue: multiprocessing.Queue) -> None:
    mails = generate(count)
    if target == "bare":
        seconds = bare_parse(mails)
    else:
        seconds = end_to_end(mails, url, followups=target == "e2e")
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(target: str, count: int, url: str = "") -> tuple[float, float]:
    """Run one measurement in a fresh process: (seconds, peak RSS MiB)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_child, args=(target, count, url, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "MAILPROC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    sizes = [len(m) for m in generate(args.count)]
    mean_kib = statistics.mean(sizes) / 1024
    print(f"corpus: {args.count} generated support mails, mean {mean_kib:.1f} KiB")
    results: dict[str, list[tuple[float, float]]] = {
        "bare": [],
        "sqlite-core": [],
        "sqlite": [],
        "postgresql-core": [],
        "postgresql": [],
    }
    for _ in range(args.runs):  # interleaved, so machine noise hits every target alike
        results["bare"].append(measure("bare", args.count))
        for target, suffix in (("core", "-core"), ("e2e", "")):
            for kind in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
                with database(kind, args.postgres) as url:
                    results[kind + suffix].append(measure(target, args.count, url))
    bare_rate = args.count / statistics.median(s for s, _ in results["bare"])
    print(f"{'target':<42}{'msgs/s (median)':>16}{'ratio to bare':>15}{'peak RSS MiB':>14}")
    labels = {
        "bare": "bare stdlib parse + get_body()",
        "sqlite-core": "ingest+process SQLite, tickets only",
        "sqlite": "ingest+process SQLite, with mail",
        "postgresql-core": "ingest+process PostgreSQL, tickets only",
        "postgresql": "ingest+process PostgreSQL, with mail",
    }
    for key, runs in results.items():
        if not runs:
            continue
        rate = args.count / statistics.median(s for s, _ in runs)
        peak = max(m for _, m in runs)
        print(f"{labels[key]:<42}{rate:>16.0f}{rate / bare_rate:>15.2f}{peak:>14.0f}")


if __name__ == "__main__":
    main()

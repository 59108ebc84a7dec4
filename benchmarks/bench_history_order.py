"""Benchmark (issue 14 part 4): `ingest --history` stores a run in date order, memory bounded.

Usage: python benchmarks/bench_history_order.py [--mails 2000] [--size 100000]

Feeds ``--mails`` messages of ``--size`` bytes, read in a shuffled date order, through
``intake/sources.in_history_order`` (the sort ``App.ingest(history=True)`` stores in) and prints
the time, the bytes read back oldest first, and the peak memory Python allocated meanwhile
(tracemalloc): the bytes wait in the temporary spool file, only the sort keys in memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import tracemalloc
from collections.abc import Iterator

from mailproc.intake.sources import RawInput, in_history_order
from mailproc.intake.store import Envelope

NOW = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)


def _mails(count: int, size: int) -> Iterator[RawInput]:
    for n in range(count):
        when = NOW - dt.timedelta(minutes=(n * 7919) % count)  # a shuffled order of times
        head = (
            f"From: a@b.example\r\nDate: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
            f"Message-ID: <{n}@bench.example>\r\n\r\n"
        )
        raw = (head + "x" * size).encode()
        yield RawInput(raw, Envelope("maildir", source_ref=f"cur/{n}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    tracemalloc.start()
    started = time.perf_counter()
    total, last = 0, None
    for item in in_history_order(_mails(args.mails, args.size), NOW):
        when = item.envelope.received_at
        assert when is not None and (last is None or when >= last), "out of order"
        last, total = when, total + len(item.raw)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    print(
        f"{args.mails} mails, {total / 1e6:.0f} MB read back oldest first in {elapsed:.2f} s; "
        f"peak Python memory {peak / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()

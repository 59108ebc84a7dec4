"""Quote splitting time against the number of lines: it must grow linearly.

Usage: python benchmarks/bench_quotes.py [LINES ...]   (default: 100000 200000 500000)

Prints one line per size, the time per 1,000 lines and the ratio of each time to the first
size's time scaled by size (1.0 is perfectly linear; a quadratic split doubles it per doubling).
"""

from __future__ import annotations

import sys
import time

from mailproc.core.quotes import split_reply

_SHAPES = {
    "short lines": "ok\n",
    "dated lines": "see 1 a@b.example\n",
    "quoted runs": "> quoted\nanswer\n",
}


def measure(text: str, repeat: int = 3) -> float:
    """The best of ``repeat`` runs of split_reply over ``text``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        split_reply(text)
        best = min(best, time.perf_counter() - started)
    return best


def main(sizes: list[int]) -> None:
    """Time every shape at every size and print the linearity ratio."""
    for shape, unit in _SHAPES.items():
        first: tuple[int, float] | None = None
        for lines in sizes:
            per_unit = unit.count("\n")
            seconds = measure(unit * (lines // per_unit))
            first = first or (lines, seconds)
            ratio = (seconds / first[1]) / (lines / first[0])
            print(
                f"quotes {shape:12} {lines:>7} lines: {seconds:6.3f} s"
                f" ({seconds / lines * 1e6:5.2f} us/line, linearity {ratio:4.2f})"
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100_000, 200_000, 500_000])

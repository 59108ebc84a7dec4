"""Process-wide runtime tuning, applied by the command line and by each parse worker."""

from __future__ import annotations

import gc
from typing import Final

# Python's defaults (700, 10, 10) run a young collection every 700 new objects; parsing and
# the ORM make millions, and each collection also walks the caches that keep growing. With
# these, a parse worker spends about a quarter less CPU per message (benchmarks/bench_ingest.py).
GC_THRESHOLDS: Final = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect less often, and never scan again what start-up loaded (modules, models).

    Only the first call in a process acts: a later freeze would keep whatever garbage was
    waiting for a collection at that moment.
    """
    if gc.get_threshold() == GC_THRESHOLDS:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

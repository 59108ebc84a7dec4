"""Process-wide runtime tuning, applied by the command line and by each parse worker, and the
parse workers' tie to the process they serve."""

from __future__ import annotations

import gc
import os
import select
import threading
import time
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


def exit_with(pid: int) -> None:
    """End this process as soon as process ``pid`` ends (a daemon thread waits for it).

    Parse workers call it with the pid of the process they serve: their own parent is the
    fork server, which outlives a ``kill -9`` of ``serve`` or ``ingest`` as long as a worker
    lives, and a worker would wait forever on a queue nobody writes to.
    """
    threading.Thread(target=_exit_after, args=(pid,), name="exit-with", daemon=True).start()


def _exit_after(pid: int) -> None:
    try:
        handle = os.pidfd_open(pid)  # Linux: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)
    except (OSError, AttributeError):  # no pidfd here: look every second
        while _exists(pid):
            time.sleep(1)
    else:
        select.select([handle], [], [])
    os._exit(1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: it exists, as another user's process
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True

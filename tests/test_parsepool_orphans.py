"""Issue 20 item 13: kill -9 of a process leaves none of its parse-pool processes behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONSOLE_SCRIPT = Path(sys.executable).with_name("mailproc")
MAIL = (
    "From: Ana <ana{n}@example.com>\r\nTo: support@dataflow.com\r\n"
    "Subject: Dashboard error 503 number {n}\r\nMessage-ID: <{n}@example.com>\r\n\r\n"
    "The dashboard shows error 503 since this morning. {filler}\r\n"
)


def process_parents() -> dict[int, int]:
    """Every process's parent: pid -> ppid."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def _descendants(pid: int) -> set[int]:
    parents = process_parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
def test_kill_9_of_ingest_leaves_no_parse_worker_behind(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    filler = "More detail about the failing export. " * 40
    for n in range(4000):
        (folder / f"{n}.eml").write_text(MAIL.format(n=n, filler=filler))
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILPROC_")}
    env |= {"MAILPROC_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    # `init` creates the database (other commands refuse a folder without one: exit 78)
    subprocess.run([CONSOLE_SCRIPT, "init"], env=env, cwd=tmp_path, check=True, capture_output=True)
    ingest = subprocess.Popen(
        [CONSOLE_SCRIPT, "ingest", str(folder)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        pool: set[int] = set()
        while len(pool) < 3 and time.monotonic() < deadline:  # fork server and two workers
            assert ingest.poll() is None, "ingest ended before its parse pool started"
            pool = _descendants(ingest.pid)
            time.sleep(0.05)
        assert len(pool) >= 3, pool
        time.sleep(0.5)  # mid-run: the workers are parsing
        ingest.send_signal(signal.SIGKILL)
        ingest.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in pool if _alive(pid)] == []
    finally:
        ingest.kill()
        for pid in _descendants(os.getpid()) & pool:  # reparented here if a subreaper
            os.kill(pid, signal.SIGKILL)

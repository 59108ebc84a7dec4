"""Benchmark: mailproc end to end against django-helpdesk 2.6.1's ``get_email`` (issue 18).

Usage: python benchmarks/bench_helpdesk_compare.py [--count 5000] [--runs 3] [--postgres URL]
       [--venv .bench/helpdesk-venv]

The same generated corpus (``corpus_gen.generate``) goes, in every run, side by side:

* to django-helpdesk 2.6.1 (installed from PyPI into a separate virtualenv, ``--venv``, created
  on first use and not committed): a minimal Django project on SQLite, one queue reading the
  corpus as a local mailbox directory (``email_box_type='local'``), Django's file e-mail
  backend; ``manage.py get_email`` timed (``helpdesk_runner.py``);
* to mailproc on SQLite and on PostgreSQL: ``ingest`` + ``process`` + ``deliver_all_due`` of
  every reply into a Maildir, in a fresh database, in a fresh process.

Prints the medians of ``--runs`` and the ratio of mailproc's rate to helpdesk's (bar: 5).

No target pays for the files another one deleted: every output (helpdesk's mail folders and
database, mailproc's Maildirs) is kept until the end, and each timed target starts ``--settle``
seconds after the last one ended. On ext4 without a journal (as on the benchmark machines) a
new file scans past every inode freed in the last half minute or so: creating a file right
after 10,000 were deleted costs 1.1 ms instead of 36 us (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_gen import generate
from scratch import database

HERE = Path(__file__).resolve().parent

HELPDESK = "django-helpdesk==2.6.1"


def helpdesk_python(folder: Path) -> Path:
    """The interpreter of the helpdesk virtualenv, created with django-helpdesk on first use."""
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"creating {folder} with {HELPDESK} from PyPI", flush=True)
        venv.create(folder, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", HELPDESK], check=True)
    return python


def helpdesk_run(python: Path, corpus: Path, folder: Path) -> dict[str, float]:
    """One ``get_email`` over a fresh copy of the corpus directory (it deletes what it reads),
    working in the new directory ``folder``."""
    mail_dir, work_dir = folder / "mail", folder / "work"
    shutil.copytree(corpus, mail_dir)
    work_dir.mkdir()
    done = subprocess.run(
        [python, HERE / "helpdesk_runner.py", mail_dir, work_dir],
        check=True,
        capture_output=True,
        text=True,
        cwd=folder,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def mailproc_end_to_end(corpus: Path, url: str, out: Path) -> dict[str, float]:
    """ingest + process + deliver of the corpus into a Maildir in the new directory ``out``,
    in a fresh process."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_mailproc_child, args=(corpus, url, out, queue))
    process.start()
    result: dict[str, float] = queue.get()
    process.join()
    return result


def _mailproc_child(corpus: Path, url: str, out: Path, queue: multiprocessing.Queue) -> None:
    from mailproc.app import App
    from mailproc.config import Settings
    from mailproc.intake.sources import RawInput
    from mailproc.intake.store import Envelope
    from mailproc.outbound.deliver import deliver_all_due
    from mailproc.runtime import tune_gc

    tune_gc()  # as the mailproc command does when it starts
    mails = [path.read_bytes() for path in sorted(corpus.iterdir())]
    settings = Settings.model_validate(
        {"database": {"url": url}, "relay": {"url": f"maildir:{out}/md"}}
    )
    app = App(settings)
    try:
        app.upgrade_database()
        started = time.perf_counter()
        app.ingest((RawInput(raw, Envelope("file")) for raw in mails), processing_follows=True)
        summary = app.process()
        delivered = deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
        seconds = time.perf_counter() - started
    finally:
        app.close()
    assert len(summary.outcomes) == len(mails), "not every message was processed"
    assert delivered.failed == 0 and delivered.skipped == 0, str(delivered)
    files = len(os.listdir(Path(out, "md", "new")))
    queue.put({"seconds": seconds, "sent": delivered.sent, "files": files})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "MAILPROC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL URL, a scratch database is created ('' for SQLite only)",
    )
    parser.add_argument("--venv", type=Path, default=HERE.parent / ".bench" / "helpdesk-venv")
    parser.add_argument(
        "--settle",
        type=float,
        default=45.0,
        help="seconds between timed targets, so none pays for files freed before it (0: none)",
    )
    args = parser.parse_args()
    python = helpdesk_python(args.venv.resolve())
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    results: dict[str, list[dict[str, float]]] = {"helpdesk": [], **{k: [] for k in kinds}}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as folder:  # kept to the end
        corpus = Path(folder, "corpus")
        corpus.mkdir()
        for index, raw in enumerate(generate(args.count)):
            Path(corpus, f"{index:06d}.eml").write_bytes(raw)
        print(f"corpus: {args.count} generated support mails", flush=True)
        for run in range(args.runs):  # interleaved, so machine noise hits every target alike
            time.sleep(args.settle)
            helpdesk_folder = Path(folder, f"helpdesk-{run}")
            helpdesk_folder.mkdir()
            results["helpdesk"].append(helpdesk_run(python, corpus, helpdesk_folder))
            for kind in kinds:
                time.sleep(args.settle)
                with database(kind, args.postgres) as url:
                    out = Path(folder, f"{kind}-{run}")
                    results[kind].append(mailproc_end_to_end(corpus, url, out))
            line = ", ".join(
                f"{name} {args.count / runs[-1]['seconds']:,.0f}/s"
                for name, runs in results.items()
            )
            print(f"run {run + 1}: {line}", flush=True)
    helpdesk = results["helpdesk"]
    helpdesk_rate = args.count / statistics.median(r["seconds"] for r in helpdesk)
    last = helpdesk[-1]
    print(
        f"django-helpdesk get_email (SQLite): {helpdesk_rate:,.1f} mails/s"
        f" ({last['tickets']:.0f} tickets, {last['followups']:.0f} follow-ups,"
        f" {last['sent_files']:.0f} mails sent, {last['left']:.0f} left unprocessed)"
    )
    for kind in kinds:
        rate = args.count / statistics.median(r["seconds"] for r in results[kind])
        ratios = [
            h["seconds"] / ours["seconds"] for h, ours in zip(helpdesk, results[kind], strict=True)
        ]
        print(
            f"mailproc ingest+process+deliver ({kind}): {rate:,.1f} mails/s"
            f" ({results[kind][-1]['sent']:.0f} mails delivered);"
            f" ratio to helpdesk {statistics.median(ratios):.1f}x (per run:"
            f" {', '.join(f'{r:.1f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()

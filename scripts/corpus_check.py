"""Ingest a folder of real-world mail into a scratch database and print what became of it.

Usage: python scripts/corpus_check.py [CORPORA_DIR]   (default: ../shared/corpora)

Every file that looks like mail must end up stored and then either in a ticket (created,
appended, reopened), recognised as a repeated delivery, or quarantined with a reason. The
script exits non-zero on a crash or when any message is unaccounted for (lost).
"""

from __future__ import annotations

import collections
import logging
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from mailproc.app import App
from mailproc.config import Settings
from mailproc.intake.sources import read_path
from mailproc.store.db import transaction
from mailproc.store.models import Inbound, MessageRecord, Ticket

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def main(folder: Path) -> int:
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)  # it logs what it survives
    if not folder.is_dir():
        print(f"corpus folder {folder} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        app = App(Settings.model_validate({"database": {"url": f"sqlite:///{scratch}/c.db"}}))
        try:
            app.upgrade_database()
            inputs = [item for item in read_path(folder) if not _is_expectation(item)]
            candidates = [item for item in inputs if item.error is None]
            started = time.perf_counter()
            report = app.ingest(inputs)
            ingested = time.perf_counter()
            summary = app.process()
            finished = time.perf_counter()
            return _report(
                app,
                folder,
                len(inputs),
                len(candidates),
                report,
                summary,
                ingested - started,
                finished - ingested,
            )
        finally:
            app.close()


def _is_expectation(item: object) -> bool:
    ref = getattr(getattr(item, "envelope", None), "source_ref", "") or ""
    name = Path(ref).name
    return name.startswith("_") or name == "README.md"


def _report(
    app: App,
    folder: Path,
    files: int,
    candidates: int,
    report: object,
    summary: object,
    ingest_s: float,
    process_s: float,
) -> int:
    with transaction(app.sessions, commit=False) as session:
        stored = session.scalar(select(func.count()).select_from(Inbound)) or 0
        by_status = dict(
            session.execute(select(Inbound.status, func.count()).group_by(Inbound.status)).all()
        )
        tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
        inbound = MessageRecord.direction == "in"  # the thread also holds our outbound mail
        messages = session.scalar(select(func.count()).where(inbound)) or 0
        blank = func.trim(MessageRecord.body_text) == ""
        empty = session.scalar(select(func.count()).where(inbound, blank)) or 0
        sources = dict(
            session.execute(
                select(MessageRecord.body_source, func.count())
                .where(inbound)
                .group_by(MessageRecord.body_source)
            ).all()
        )
        kinds = dict(
            session.execute(select(Inbound.kind, func.count()).group_by(Inbound.kind)).all()
        )
        quarantined = session.execute(
            select(Inbound.source_ref, Inbound.last_error).where(Inbound.status == "quarantined")
        ).all()
        duplicates = (
            session.scalar(
                select(func.count()).select_from(Inbound).where(Inbound.kind == "duplicate")
            )
            or 0
        )
    rejected = getattr(report, "rejected", [])
    print(f"corpus: {folder}")
    print(f"files read: {files}; not mail (rejected with a reason): {len(rejected)}")
    print(
        f"stored: {stored} distinct messages (identical files: "
        f"{getattr(report, 'duplicates', 0)}); Message-ID conflicts flagged: "
        f"{getattr(report, 'message_id_conflicts', 0)}"
    )
    print(f"status: {dict(sorted(by_status.items()))}")
    print(f"tickets: {tickets}; inbound messages: {messages}; repeated deliveries: {duplicates}")
    print(f"kinds: {dict(sorted((k or '-', n) for k, n in kinds.items()))}")
    print(f"body from: {dict(sorted(sources.items()))}; empty bodies: {empty}")
    reasons = collections.Counter((error or "").split(":")[0] for _, error in quarantined)
    print(f"quarantined: {len(quarantined)} {dict(reasons)}")
    for ref, error in quarantined:
        print(f"  {ref}: {error}")
    rate = stored / (ingest_s + process_s) if stored else 0.0
    print(f"seconds: ingest {ingest_s:.2f}, process {process_s:.2f} ({rate:.0f} messages/s)")
    reasons_by_file = collections.Counter(reason for _, reason in rejected)
    print(f"rejected reasons: {dict(reasons_by_file)}")
    lost = candidates - stored - getattr(report, "duplicates", 0)
    unaccounted = by_status.get("pending", 0) + lost
    accounted = messages + duplicates + len(quarantined)
    if unaccounted or accounted != stored:
        print(
            f"FAIL: {unaccounted} message(s) lost or left pending; "
            f"{stored - accounted} stored but not accounted for",
            file=sys.stderr,
        )
        return 1
    print(
        "OK: every message is in a ticket, kept with its kind (bounce, auto-reply), "
        "recognised as a repeat, or quarantined with its reason"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))

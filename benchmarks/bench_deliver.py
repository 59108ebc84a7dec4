"""Benchmark: outbound delivery on SQLite and PostgreSQL (issue 18). Prints figures.

Usage: python benchmarks/bench_deliver.py [--postgres URL] [--runs 3] [--count 10000]

For each database, medians of ``--runs``:

* maildir: ``deliver_all_due`` of ``--count`` due rows of realistic templates (every sample
  template, customer and internal, rendered at delivery) into a Maildir; mails/s (bar: 1,000),
  and the CPU per mail of this process (what a free core would deliver). The Maildirs are kept
  until the end and each run starts ``--settle`` seconds after the last one, so that no run
  pays for files deleted before it (ext4 without a journal: bench_helpdesk_compare.py).
* smtp: ``deliver_all_due`` of 2,000 due rows to a no-op aiosmtpd relay on loopback, against a
  bare smtplib client sending the same bytes (the ones delivered) over one connection, side by
  side; the ratio (bar: 0.7).
* flat: per-mail cost of delivering 1,000 due rows with 1,000 rows in the outbox and with
  200,000 (199,000 of them sent); the ratio (bar: 1.2).
* latency: ``serve`` (worker + deliverer, tick 60 s) with a backlog of 3,000 due internal
  alerts; a new customer mail is ingested and its acknowledgment's file appears after x s,
  counted from the commit of the customer's mail (bar: 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
import smtplib
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiosmtpd.controller import Controller
from scratch import database
from sqlalchemy import insert, select

from mailproc.app import App
from mailproc.clock import SystemClock
from mailproc.config import Settings
from mailproc.core.model import Address
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope as IntakeEnvelope
from mailproc.outbound.compose import AutoSubmitted, Envelope
from mailproc.outbound.deliver import deliver_all_due, renderer_for
from mailproc.outbound.outbox import lane_of, queue_deferred, retry_deadline
from mailproc.outbound.samples import SAMPLES, ticket_number_of
from mailproc.store.db import transaction
from mailproc.store.models import Outbox, Ticket
from mailproc.store.staged import staging
from mailproc.supervisor import Components, Supervisor

SUPPORT = "support@dataflow.com"


def make_app(url: str, relay: str, batch_size: int = 200) -> App:
    settings = Settings.model_validate(
        {
            "database": {"url": url},
            "relay": {"url": relay},
            "outbox": {"batch_size": batch_size, "build_workers": int(os.environ.get("BW", "1"))},
            "serve": {"tick_interval_s": 60, "process_interval_s": 60},
        }
    )
    app = App(settings, SystemClock())
    warm_up(app)
    return app


def warm_up(app: App) -> None:
    """Compile every template in every locale once and start the build workers, as a
    long-running deliverer has."""
    renderer = renderer_for(app.settings)
    for context in SAMPLES.values():
        for locale in ("en", "es", "fr"):
            renderer.render(context, locale)
    app.build_pool.warm()
    assert app.build_pool.wait_ready(60), "the build workers did not start"


def deliver_pooled(app: App) -> None:
    """``deliver_all_due`` with the build workers, as ``deliver --once`` and ``serve`` run it."""
    deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)


def queue(app: App, count: int, templates: list[str], tag: str) -> None:
    """Queue ``count`` deferred mails, cycling through ``templates``, one ticket per 10."""
    now = app.clock.now()
    with transaction(app.sessions) as session:
        tickets = []
        for n in range(count // 10 + 1):
            ticket = Ticket(
                number=100_000 + n + hash(tag) % 1000 * 1000,
                status="new",
                subject=f"Sync fails {n}",
                received_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            tickets.append(ticket)
        session.flush()
        with staging(session):
            for n in range(count):
                template = templates[n % len(templates)]
                key = f"{tag}:{n}"
                envelope = Envelope(
                    sender=Address("DataFlow Support", SUPPORT),
                    to=(Address("Ana Lima", f"customer{n}@example.com"),),
                    reply_to=Address("DataFlow Support", SUPPORT),
                    message_id=f"{tag}.{n}@dataflow.com",
                    date=now,
                    auto_submitted=AutoSubmitted.AUTO_GENERATED,
                    ticket_number=ticket_number_of(SAMPLES[template]),
                )
                queue_deferred(
                    session,
                    key=key,
                    ticket_id=tickets[n // 10].id,
                    locale=("en", "es", "fr")[n % 3],
                    context=SAMPLES[template],
                    envelope=envelope,
                    envelope_from=SUPPORT,
                    now=now,
                    deadline=retry_deadline(now, app.settings.outbox),
                )


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def maildir_rate(url: str, count: int, folder: Path) -> tuple[float, float]:
    """(mails/s, this process's CPU seconds per mail) delivering into the new Maildir
    ``folder``: on a shared machine the CPU per mail says what a free core would deliver."""
    app = make_app(url, f"maildir:{folder}")
    queue(app, count, sorted(SAMPLES), "md")
    cpu = time.process_time()
    seconds = timed(
        lambda: deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
    )
    cpu = time.process_time() - cpu
    assert len(list(Path(folder, "new").iterdir())) == count
    app.close()
    return count / seconds, cpu / count


class NoOp:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def smtp_ratio(url: str, count: int = 2000) -> tuple[float, float]:
    """(mailproc mails/s, bare smtplib mails/s), measured one after the other."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(NoOp(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = make_app(url, f"smtp://127.0.0.1:{port}")
        queue(app, count, sorted(SAMPLES), f"smtp{time.monotonic_ns()}")
        ours = timed(
            lambda: deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
        )
        with transaction(app.sessions, commit=False) as session:
            mails = session.execute(select(Outbox.envelope_from, Outbox.raw)).all()
        app.close()

        def bare() -> None:
            client = smtplib.SMTP("127.0.0.1", port)
            for sender, raw in mails:
                client.sendmail(sender, ["customer@example.com"], raw)
            client.quit()

        theirs = timed(bare)
    finally:
        controller.stop()
    return count / ours, len(mails) / theirs


def per_mail_with(url: str, history: int, due: int = 1000) -> float:
    """Seconds per mail delivering ``due`` rows with ``history`` sent rows in the outbox."""
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(url, f"maildir:{folder}/out")
        now = app.clock.now()
        tag = f"h{time.monotonic_ns()}"
        rows = [
            {
                "key": f"{tag}:{n}",
                "template": "acknowledgment",
                "locale": "en",
                "message_id": f"{tag}.{n}@dataflow.com",
                "envelope_from": SUPPORT,
                "raw": b"Subject: old\r\n\r\nsent long ago\r\n",
                "auto_submitted": "auto-generated",
                "status": "sent",
                "lane": lane_of("acknowledgment"),
                "attempts": 1,
                "next_attempt_at": now - dt.timedelta(days=1),
                "deadline_at": now,
                "created_at": now - dt.timedelta(days=1),
                "sent_at": now - dt.timedelta(days=1),
            }
            for n in range(history)
        ]
        with transaction(app.sessions) as session:
            for start in range(0, len(rows), 20_000):
                session.execute(insert(Outbox), rows[start : start + 20_000])
        queue(app, due, sorted(SAMPLES), f"due{tag}")
        seconds = timed(
            lambda: deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
        )
        app.close()
    return seconds / due


NEW_MAIL = (
    "From: New Customer <newcomer@example.org>\r\nTo: support@dataflow.com\r\n"
    "Subject: Cannot log in\r\nMessage-ID: <{mid}@example.org>\r\n"
    "Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n\r\nI cannot log in since this morning.\r\n"
)


def ack_latency(url: str) -> float:
    """Seconds from the commit of a new customer's mail to its acknowledgment's file, with
    3,000 internal alerts due ahead of it, under serve (worker + deliverer)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "out", "new")
        app = make_app(url, f"maildir:{folder}/out", batch_size=50)
        # serve has been running: the worker has processed mail before (models loaded)
        app.ingest([RawInput(NEW_MAIL.format(mid="warm").encode(), IntakeEnvelope("file"))])
        app.process()
        deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
        for path in out.iterdir():
            path.unlink()
        internal = [name for name in sorted(SAMPLES) if lane_of(name)]
        queue(app, 3000, internal, f"alerts{time.monotonic_ns()}")
        supervisor = Supervisor(
            app, Components(listener=None, pollers=False, worker=True, deliver=True)
        )
        result: list[float] = []

        async def scenario() -> None:
            stop = asyncio.Event()
            serving = asyncio.create_task(supervisor.serve(stop))
            await asyncio.sleep(0.5)  # the deliverer is working through the backlog
            mail = NEW_MAIL.format(mid=time.monotonic_ns()).encode()
            await asyncio.to_thread(app.ingest, [RawInput(mail, IntakeEnvelope("file"))])
            committed = time.perf_counter()
            assert supervisor.worker is not None
            supervisor.worker.wake_up()
            while not any(out.glob("*-acknowledgment.*")):
                await asyncio.sleep(0.005)
            result.append(time.perf_counter() - committed)
            stop.set()
            await serving

        asyncio.run(scenario())
        app.close()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", help="PostgreSQL URL (a scratch database is created)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--parts", default="maildir,smtp,flat,latency")
    parser.add_argument(
        "--settle", type=float, default=45.0, help="seconds before each Maildir run (0: none)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as kept:  # Maildirs to the end
        measure_all(args, Path(kept))


def measure_all(args: argparse.Namespace, kept: Path) -> None:
    """Every part of ``args.parts`` on SQLite, then on PostgreSQL if given."""
    parts = set(args.parts.split(","))
    kinds = ["sqlite"] + (["postgresql"] if args.postgres else [])
    for kind in kinds:
        print(f"== {kind}")

        def fresh(measure: Callable[[str], Any], kind: str = kind) -> Any:
            with database(kind, args.postgres) as url:
                return measure(url)

        if "maildir" in parts:

            def settled(url: str, run: int, kind: str = kind) -> tuple[float, float]:
                time.sleep(args.settle)
                return maildir_rate(url, args.count, kept / f"{kind}-{run}")

            runs = [fresh(functools.partial(settled, run=n)) for n in range(args.runs)]
            rate = statistics.median(r for r, _ in runs)
            cpu_us = statistics.median(c for _, c in runs) * 1e6
            print(
                f"maildir: {rate:,.0f} mails/s ({args.count} due rows);"
                f" CPU {cpu_us:,.0f} us/mail (a free core: {1e6 / cpu_us:,.0f} mails/s)"
            )
        if "smtp" in parts:
            pairs = [fresh(lambda url: smtp_ratio(url, args.count)) for _ in range(args.runs)]
            ratios = [ours / bare for ours, bare in pairs]
            ours = statistics.median(p[0] for p in pairs)
            bare = statistics.median(p[1] for p in pairs)
            ratio = statistics.median(ratios)
            print(f"smtp: {ours:,.0f} mails/s vs bare smtplib {bare:,.0f}: ratio {ratio:.2f}")
        if "flat" in parts:
            flat = []
            for _ in range(args.runs):
                small = fresh(lambda url: per_mail_with(url, 0))
                large = fresh(lambda url: per_mail_with(url, 199_000))
                flat.append((small, large))
            small_us = statistics.median(s for s, _ in flat) * 1e6
            large_us = statistics.median(lg for _, lg in flat) * 1e6
            print(
                f"flat: {small_us:,.0f} us/mail with 1,000 rows, {large_us:,.0f} us/mail with"
                f" 200,000: ratio {statistics.median(lg / s for s, lg in flat):.2f}"
            )
        if "latency" in parts:
            latencies = [fresh(ack_latency) for _ in range(args.runs)]
            print(
                f"latency: acknowledgment written {statistics.median(latencies):.2f} s after commit"
            )


if __name__ == "__main__":
    main()

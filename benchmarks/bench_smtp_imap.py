"""Intake throughput: durable SMTP vs a no-op aiosmtpd, the IMAP poller vs a bare imap-tools fetch.

Prints figures (medians over ``--runs``); it is a script, not a test. Needs ``dovecot`` for the
IMAP part (scripts/install-test-deps.sh) and, for PostgreSQL figures, a server URL:

    .venv/bin/python benchmarks/bench_smtp_imap.py \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from imap_tools import MailBoxUnencrypted

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from adapters.support import Dovecot, free_port, make_message, port_open, wait_for  # noqa: E402
from scratch import database  # noqa: E402

from mailproc.adapters.imap import MailboxPoller  # noqa: E402
from mailproc.adapters.smtp import ListenerSMTP  # noqa: E402
from mailproc.app import App  # noqa: E402
from mailproc.config import Settings  # noqa: E402
from mailproc.config_transport import ImapMailboxSettings, ImapSettings  # noqa: E402

MAILPROC = str(Path(sys.executable).with_name("mailproc"))
SUPPORT = "support@dataflow.com"
MESSAGE_BYTES = 3400


# ----------------------------------------------------------------------------- databases


# ----------------------------------------------------------------------------- SMTP


class _NoOp:
    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        return "250 OK"


def noop_server(port: int, ours: bool) -> None:
    """aiosmtpd with the listener's options and a handler that only answers 250; with ``ours``,
    on the listener's session class (aiosmtpd with its address parse cached)."""

    def session(*args: Any, **kwargs: Any) -> SMTP:
        if ours:
            return ListenerSMTP(*args, sessions=set(), **kwargs)
        return SMTP(*args, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: session(
                _NoOp(),
                data_size_limit=25 * 1024 * 1024,
                enable_SMTPUTF8=True,
                hostname="bench",
                ident="ESMTP noop",
                loop=loop,
            ),
            "127.0.0.1",
            port,
        )
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class SmtpRun:
    """One client run: throughput and DATA-to-250 latencies."""

    rate: float
    latencies: list[float]


def drive(port: int, clients: int, total: int, tag: str) -> SmtpRun:
    """``clients`` threads, one connection each, send ``total`` messages between them."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    messages = [make_message(n, tag=tag, size=MESSAGE_BYTES) for n in range(total)]
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.ehlo("bench")
                for raw in messages[index::clients]:
                    smtp.mail("customer@example.com")
                    smtp.rcpt(SUPPORT)
                    started = time.perf_counter()
                    code, _ = smtp.data(raw)
                    latencies[index].append(time.perf_counter() - started)
                    if code != 250:
                        raise RuntimeError(f"answered {code}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return SmtpRun(total / elapsed, [x for per in latencies for x in per])


def serve_config(work: Path, url: str, port: int, extra: str = "") -> Path:
    """A ``serve.toml`` in ``work``: the database, a loopback listener on ``port``, no pollers,
    and ``extra`` TOML sections."""
    config = work / "serve.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[listener]\nlisten = "127.0.0.1:{port}"\nhostname = "bench"\n'
        f"[serve]\npollers = false\n{extra}"
    )
    return config


@contextlib.contextmanager
def process(args: list[str], port: int, log: Path) -> Iterator[None]:
    """A server subprocess, stopped with SIGTERM."""
    with log.open("ab") as output:
        proc = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 30, f"{args[0]} to listen")
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def bench_smtp(kind: str, postgres: str | None, runs: int, work: Path) -> list[list[str]]:
    """Rows of the SMTP table for one database kind."""
    rows = []
    with database(kind, postgres) as url:
        config = work / f"{kind}.toml"
        durable_port, noop_port, ours_port = free_port(), free_port(), free_port()
        config.write_text(
            f'[database]\nurl = "{url}"\n'
            f'[listener]\nlisten = "127.0.0.1:{durable_port}"\nhostname = "bench"\n'
            "[serve]\nworker = false\npollers = false\n"
        )
        durable = [MAILPROC, "--config", str(config), "serve"]
        noop = [sys.executable, __file__, "noop-server", str(noop_port)]
        ours = [sys.executable, __file__, "noop-server-ours", str(ours_port)]
        ports = {"noop": noop_port, "ours": ours_port, "durable": durable_port}
        with (
            process(durable, durable_port, work / f"serve-{kind}.log"),
            process(noop, noop_port, work / "noop.log"),
            process(ours, ours_port, work / "noop-ours.log"),
        ):
            for clients in (1, 4, 16):
                total = 600 if clients == 1 else 2000
                results: dict[str, list[SmtpRun]] = {name: [] for name in ports}
                for run in range(runs):
                    tag = f"{kind}-{clients}-{run}-{uuid.uuid4().hex[:6]}"
                    for name, port in ports.items():
                        results[name].append(drive(port, clients, total, f"{tag}{name}"))
                rate = {
                    name: statistics.median(r.rate for r in measured)
                    for name, measured in results.items()
                }
                rows.append(
                    [
                        kind,
                        str(clients),
                        f"{rate['noop']:.0f}",
                        f"{rate['ours']:.0f}",
                        f"{rate['durable']:.0f}",
                        f"{rate['durable'] / rate['noop']:.2f}",
                        f"{rate['durable'] / rate['ours']:.2f}",
                        _latency(results["noop"]),
                        _latency(results["durable"]),
                    ]
                )
    return rows


def _latency(runs: list[SmtpRun]) -> str:
    p50 = statistics.median(statistics.quantiles(r.latencies, n=100)[49] for r in runs)
    p99 = statistics.median(statistics.quantiles(r.latencies, n=100)[98] for r in runs)
    return f"{p50 * 1000:.1f} / {p99 * 1000:.1f}"


# ----------------------------------------------------------------------------- IMAP


def bare_fetch(dovecot: Dovecot, user: str) -> float:
    """imap-tools' bulk fetch of the whole INBOX (parsed into MailMessage, not stored)."""
    started = time.perf_counter()
    with MailBoxUnencrypted("127.0.0.1", dovecot.port).login(user, "secret") as box:
        count = sum(1 for _ in box.fetch(mark_seen=False, bulk=100))
    return count / (time.perf_counter() - started)


def poller_intake(dovecot: Dovecot, user: str, url: str) -> float:
    """The poller's pass: fetch, commit (store_batch + keys), move to Processed."""
    mailbox = ImapMailboxSettings.model_validate(
        {
            "name": user,
            "port": dovecot.port,
            "security": "plain",
            "user": user,
            "password": "secret",
        }
    )
    imap = ImapSettings.model_validate({"mailboxes": [mailbox.model_dump()]})
    app = App(Settings.model_validate({"database": {"url": url}}))
    try:
        poller = MailboxPoller(mailbox, imap, app.sessions, app.clock, holder="bench")
        started = time.perf_counter()
        result = poller.poll_once()
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    assert result is not None
    return result.stored / elapsed


def bench_imap(kinds: list[str], postgres: str | None, runs: int, size: int) -> list[list[str]]:
    """Rows of the IMAP table: the bare fetch and the poller on each database kind."""
    dovecot = Dovecot()
    dovecot.start()
    try:
        bare: list[float] = []
        intake: dict[str, list[float]] = {kind: [] for kind in kinds}
        for run in range(runs):
            for kind in kinds:
                user = dovecot.new_user()
                dovecot.deliver(
                    user, [make_message(n, tag=f"i{run}", size=MESSAGE_BYTES) for n in range(size)]
                )
                bare.append(bare_fetch(dovecot, user))
                with database(kind, postgres) as url:
                    intake[kind].append(poller_intake(dovecot, user, url))
    finally:
        dovecot.remove()
    bare_rate = statistics.median(bare)
    rows = [["imap-tools bulk fetch (100)", f"{bare_rate:.0f}", "1.00"]]
    for kind, rates in intake.items():
        rate = statistics.median(rates)
        rows.append([f"poller -> {kind}", f"{rate:.0f}", f"{rate / bare_rate:.2f}"])
    return rows


# ----------------------------------------------------------------------------- main


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode",
        nargs="?",
        default="all",
        choices=["all", "smtp", "imap", "noop-server", "noop-server-ours"],
    )
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--postgres", default=os.environ.get("MAILPROC_TEST_POSTGRES_URL"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--imap-messages", type=int, default=5000)
    args = parser.parse_args()
    if args.mode.startswith("noop-server"):
        noop_server(args.port, ours=args.mode == "noop-server-ours")
        return
    kinds = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    print(f"{os.cpu_count()} CPUs; {MESSAGE_BYTES}-byte messages; medians of {args.runs} runs")
    if args.mode in ("all", "smtp"):
        with tempfile.TemporaryDirectory(prefix="bench-smtp-") as folder:
            rows = [
                row
                for kind in kinds
                for row in bench_smtp(kind, args.postgres, args.runs, Path(folder))
            ]
        print("\nSMTP intake (msg/s; DATA-to-250 latency p50 / p99 in ms)")
        print("no-op: stock aiosmtpd; no-op ours: on the listener's session class")
        header = [
            "db",
            "clients",
            "no-op/s",
            "no-op ours/s",
            "durable/s",
            "ratio",
            "ratio to ours",
            "no-op ms",
            "durable ms",
        ]
        print(table(header, rows))
    if args.mode in ("all", "imap"):
        rows = bench_imap(kinds, args.postgres, args.runs, args.imap_messages)
        print(f"\nIMAP intake of a {args.imap_messages}-message mailbox (msg/s)")
        print(table(["path", "msg/s", "ratio"], rows))


if __name__ == "__main__":
    main()

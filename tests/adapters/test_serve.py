"""``mailproc serve``, ``poll`` and ``worker`` as real processes: start-up, kill -9, scale-out."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.conftest import ConfigWriter, to_toml
from adapters.support import (
    MAILPROC,
    Dovecot,
    free_port,
    make_message,
    message_ids,
    port_open,
    run_cli,
    start_cli,
    wait_for,
)
from mailproc.app import App
from mailproc.config_transport import ListenerSettings
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope, store_batch
from mailproc.store.db import transaction
from mailproc.store.models import Event, Inbound, MessageRecord, Ticket
from mailproc.supervisor import Components, Supervisor, Tick, Worker

SUPPORT = "support@dataflow.com"


def _serve(config: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    process = start_cli(["serve"], config, log)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, 20, "serve to listen")
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, log.read_text()
    return process


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def _count(app: App, model: type[object]) -> int:
    with transaction(app.sessions, commit=False) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# ----------------------------------------------------------------------------- start-up errors


@pytest.fixture
def migrated_sqlite(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "serve.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def _config(tmp_path: Path, url: str, **sections: dict[str, object]) -> Path:
    path = tmp_path / "startup.toml"
    path.write_text(to_toml({"database": {"url": url}, **sections}))
    return path


def test_port_taken_is_one_line_and_ex_unavailable(tmp_path: Path, migrated_sqlite: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = _config(tmp_path, migrated_sqlite, listener={"listen": f"127.0.0.1:{port}"})
        completed = run_cli(["serve"], config)
    assert completed.returncode == os.EX_UNAVAILABLE
    assert completed.stderr.strip().splitlines()[-1] == (
        f"mailproc: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_unreachable_database_is_one_line_and_ex_tempfail(tmp_path: Path) -> None:
    down = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    completed = run_cli(["serve"], _config(tmp_path, down))
    assert completed.returncode == os.EX_TEMPFAIL
    assert completed.stderr.startswith("mailproc: database unreachable: ")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_old_schema_and_bad_certificate_are_ex_config(tmp_path: Path, migrated_sqlite: str) -> None:
    (tmp_path / "empty.db").touch()  # a missing file is "no database here: run mailproc init"
    completed = run_cli(["serve"], _config(tmp_path, f"sqlite:///{tmp_path}/empty.db"))
    assert completed.returncode == os.EX_CONFIG
    assert "run `mailproc db upgrade`" in completed.stderr
    (tmp_path / "bad.pem").write_text("garbage")
    tls = {"tls_cert": str(tmp_path / "bad.pem"), "tls_key": str(tmp_path / "bad.pem")}
    completed = run_cli(["serve"], _config(tmp_path, migrated_sqlite, listener=tls))
    assert completed.returncode == os.EX_CONFIG
    assert completed.stderr.startswith("mailproc: cannot load TLS certificate")


def test_poll_without_mailboxes_is_ex_config(tmp_path: Path, migrated_sqlite: str) -> None:
    completed = run_cli(["poll", "--once"], _config(tmp_path, migrated_sqlite))
    assert completed.returncode == os.EX_CONFIG
    assert "no IMAP mailboxes configured" in completed.stderr


# ----------------------------------------------------------------------------- running


def test_ticks_run_periodically_and_stop_with_serve(app: App) -> None:
    calls: list[object] = []
    settings = app.settings.model_copy(
        update={"serve": app.settings.serve.model_copy(update={"tick_interval_s": 0.05})}
    )
    app.settings = settings
    supervisor = Supervisor(
        app,
        Components(listener=None, pollers=False, worker=True, ticks=[Tick("probe", calls.append)]),
    )

    async def scenario() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        await supervisor.serve(stop)

    asyncio.run(scenario())
    seen = len(calls)
    assert seen >= 3
    assert calls[0] == app.clock.now()
    threading.Event().wait(0.2)
    assert len(calls) == seen  # the scheduler thread has stopped


def test_the_worker_lets_the_listeners_commits_go_first(app: App) -> None:
    """SQLite has one writer: before each batch the worker waits while the listener has
    messages waiting for their commit, for a bounded time, and takes smaller batches."""
    worker = Worker(app, 60)
    answers = iter([3, 2, 1, 0, 7])
    asked: list[int] = []

    def in_flight() -> int:
        asked.append(next(answers))
        return asked[-1]

    worker.share_with_listener(in_flight)
    worker._listener_first()
    assert asked == [3, 2, 1, 0]  # it waited until nothing was waiting, then went on
    worker.LISTENER_FIRST_S = 0.05
    worker.share_with_listener(lambda: 1)  # a listener that never drains
    started = time.monotonic()
    worker._listener_first()
    assert 0.05 <= time.monotonic() - started < 5  # the wait is bounded
    app.ingest(
        RawInput(make_message(n, tag="first"), Envelope("file"))
        for n in range(Worker.LISTENER_BATCH + 20)
    )
    batches: list[int] = []
    worker.share_with_listener(lambda: batches.append(_count(app, Ticket)) or 0)
    worker.process_once()
    assert _count(app, Ticket) == Worker.LISTENER_BATCH + 20
    assert batches[:2] == [0, Worker.LISTENER_BATCH]  # batches of LISTENER_BATCH, not 250


def test_serve_shares_sqlite_with_its_listener_only(app: App) -> None:
    listener = ListenerSettings(listen=f"127.0.0.1:{free_port()}")
    supervisor = Supervisor(app, Components(listener=listener, pollers=False, worker=True))
    shared: list[bool] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def look() -> None:
            if supervisor.worker is None:  # still starting: the commit writer connects first
                loop.call_later(0.1, look)
                return
            shared.append(supervisor.worker._listener_in_flight is not None)
            stop.set()

        loop.call_later(0.3, look)
        await supervisor.serve(stop)

    asyncio.run(scenario())
    assert shared == [app.engine.dialect.name == "sqlite"]


def test_serve_takes_mail_by_smtp_and_imap_and_stops_on_sigterm(
    app: App, dovecot: Dovecot, imap_user: str, write_config: ConfigWriter, tmp_path: Path
) -> None:
    port = free_port()
    dovecot.deliver(imap_user, [make_message(1, tag="imap")])
    config = write_config(
        listener={"listen": f"127.0.0.1:{port}"},
        serve={"process_interval_s": 0.5},
        imap={
            "mailboxes": [
                {
                    "name": "support",
                    "port": dovecot.port,
                    "security": "plain",
                    "user": imap_user,
                    "password": "secret",
                }
            ]
        },
    )
    log = tmp_path / "serve.log"
    process = _serve(config, log, port)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("a@example.com", [SUPPORT], make_message(1, tag="smtp"))
        wait_for(lambda: _count(app, Ticket) == 2, 20, "both messages to become tickets")
    finally:
        code = _stop(process)
    output = log.read_text()
    assert code == 0, output
    assert "mailproc.adapters.imap: support: stored 1" in output
    assert "mailproc.supervisor: stopped" in output
    assert sorted(message_ids(app)) == ["imap-1@example.com", "smtp-1@example.com"]
    assert dovecot.folder_uids(imap_user, "INBOX") == []


@pytest.mark.slow
def test_kill_9_while_16_clients_send_loses_and_duplicates_nothing(
    app: App, write_config: ConfigWriter, tmp_path: Path
) -> None:
    total, clients = 2000, 16
    port = free_port()
    # Intake only: that processing happens exactly once is the scale-out test's subject.
    config = write_config(listener={"listen": f"127.0.0.1:{port}"}, serve={"worker": False})
    log = tmp_path / "serve.log"
    acked: set[int] = set()
    lock = threading.Lock()
    restarted = threading.Event()
    killed = threading.Event()

    def client(worker: int) -> None:
        todo = list(range(worker, total, clients))
        reserve = len(todo) // 10  # held back until the kill, so the run cannot finish first
        while todo:
            if killed.is_set() and not restarted.wait(60):
                return
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
                    while todo:
                        if len(todo) <= reserve:
                            killed.wait(60)
                        smtp.sendmail("a@example.com", [SUPPORT], make_message(todo[0], tag="k"))
                        with lock:
                            acked.add(todo.pop(0))
            except (OSError, smtplib.SMTPException):
                restarted.wait(0.05)  # refused or cut: the message was not acknowledged

    process = _serve(config, log, port)
    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acked) >= total // 3, 60, "a third of the mail to be accepted")
    finally:
        killed.set()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    with lock:
        acknowledged = set(acked)
    assert len(acknowledged) < total
    stored = message_ids(app)
    assert len(stored) == len(set(stored))  # nothing twice ...
    assert {f"k-{n}@example.com" for n in acknowledged} <= set(stored)  # ... nothing lost
    process = _serve(config, log, port)
    try:
        restarted.set()
        for thread in threads:
            thread.join(120)
        assert len(acked) == total
        stored = message_ids(app)
        assert sorted(stored) == sorted(f"k-{n}@example.com" for n in range(total))
    finally:
        assert _stop(process) == 0, log.read_text()


@pytest.mark.slow
def test_four_worker_processes_process_every_message_exactly_once(
    app: App, write_config: ConfigWriter, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out is PostgreSQL's job: SQLite has one writer at a time")
    total = 2000
    for start in range(0, total, 100):
        with transaction(app.sessions) as session:
            store_batch(
                session,
                [
                    (make_message(n, tag="w", size=800), Envelope("file"))
                    for n in range(start, start + 100)
                ],
                app.clock.now(),
            )
    config = write_config(processing={"batch_size": 50})
    workers = [
        subprocess.Popen(
            [MAILPROC, "--config", str(config), "worker", "--once"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], outputs
    counts = [int(re.search(r"processed (\d+):", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(counts) == total
    assert sum(1 for count in counts if count) >= 2, counts  # the work was shared
    with transaction(app.sessions, commit=False) as session:
        statuses = {
            status: count
            for status, count in session.execute(
                select(Inbound.status, func.count()).group_by(Inbound.status)
            )
        }
        created = session.execute(
            select(Event.inbound_id, func.count())
            .where(Event.kind == "ticket.created")
            .group_by(Event.inbound_id)
        ).all()
    assert statuses == {"processed": total}
    assert len(created) == total and {count for _, count in created} == {1}
    with transaction(app.sessions, commit=False) as session:
        inbound_messages = session.scalar(
            select(func.count()).select_from(MessageRecord).where(MessageRecord.direction == "in")
        )
    assert _count(app, Ticket) == inbound_messages == total

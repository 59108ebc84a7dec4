"""Issue 18: the next batch is built in worker processes while this one is sent; the claim
query walks the due index on both databases, whatever the planner's statistics say."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import T0
from sqlalchemy import event, select, text
from test_batches import queue_sample
from test_deliver import make_app
from test_outbox import add_ticket
from test_parsepool_orphans import process_parents

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.outbound import deliver
from mailproc.outbound.attempts import claim_due, due_unbuilt
from mailproc.outbound.build import build
from mailproc.outbound.deliver import deliver_all_due, renderer_for
from mailproc.outbound.samples import SAMPLES
from mailproc.store.db import transaction
from mailproc.store.models import MessageRecord, Outbox

TEMPLATES = sorted(SAMPLES)


def queue_mixed(app: App, count: int) -> None:
    """``count`` deferred mails of every sample template, one ticket."""
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        for n in range(count):
            queue_sample(session, TEMPLATES[n % len(TEMPLATES)], f"m:{n}", ticket_id=ticket_id)


def ready_app(db_url: str, clock: FixedClock, relay_url: str) -> App:
    """An app (batches of 10) whose build workers are running, as under ``serve``."""
    app = make_app(db_url, clock, relay_url)
    app.build_pool.warm()
    assert app.build_pool.wait_ready(60), "the build workers did not start"
    return app


def worker_pids() -> set[int]:
    """The pool workers of this process: its grandchildren (children of the fork server)."""
    parents = process_parents()
    children = {pid for pid, parent in parents.items() if parent == os.getpid()}
    return {pid for pid, parent in parents.items() if parent in children}


def test_mail_built_ahead_is_kept_before_it_is_sent_and_is_the_same_mail(
    db_url: str, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ready_app(db_url, clock, f"maildir:{tmp_path}/out")
    queue_mixed(app, 40)
    batches: list[int] = []

    def after_batch(count: int) -> None:
        batches.append(count)
        if len(batches) == 1:  # from now on nothing may be built in this process

            def in_process(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("built in the deliverer, not ahead")

            monkeypatch.setattr(deliver, "build", in_process)

    try:
        summary = deliver_all_due(
            app.sessions, app.settings, app.clock, pool=app.build_pool, progress=after_batch
        )
    finally:
        monkeypatch.undo()
    assert summary.sent == 40 and summary.failed == 0 and batches == [10, 10, 10, 10]
    assert len(list((tmp_path / "out" / "new").iterdir())) == 40
    renderer = renderer_for(app.settings)
    with transaction(app.sessions, commit=False) as session:
        for row in session.scalars(select(Outbox)):
            assert row.status == "sent" and row.raw is not None
            again = build(row.id, row.template, row.locale, row.context, row.envelope, renderer)
            assert again.raw == row.raw, f"{row.key}: the workers built other bytes"
            record = session.scalars(
                select(MessageRecord).where(MessageRecord.message_id == row.message_id)
            ).one()
            assert record.subject == again.subject and record.body_text == again.text
    app.close()


def test_a_build_worker_killed_mid_round_loses_and_doubles_nothing(
    db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    app = ready_app(db_url, clock, f"maildir:{tmp_path}/out")
    queue_mixed(app, 50)
    killed: list[int] = []

    def after_batch(count: int) -> None:
        if not killed:  # the next batch is being built ahead: kill its worker
            killed.extend(worker_pids())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    summary = deliver_all_due(
        app.sessions, app.settings, app.clock, pool=app.build_pool, progress=after_batch
    )
    assert killed, "no build worker was running"
    assert summary.sent == 50 and summary.failed == 0
    files = list((tmp_path / "out" / "new").iterdir())
    assert len(files) == 50
    with transaction(app.sessions, commit=False) as session:
        assert {row.status for row in session.scalars(select(Outbox))} == {"sent"}
    # the next round starts new workers and builds ahead again
    queue_more = [f"n:{n}" for n in range(30)]
    with transaction(app.sessions) as session:
        for key in queue_more:
            queue_sample(session, "acknowledgment", key)
    summary = deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
    assert app.build_pool.wait_ready(60), "no new build workers"
    assert summary.sent == 30
    assert len(list((tmp_path / "out" / "new").iterdir())) == 80
    app.close()


def test_a_round_stopped_with_a_batch_being_built_leaves_nothing_claimed(
    db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    app = ready_app(db_url, clock, f"maildir:{tmp_path}/out")
    queue_mixed(app, 35)
    stop = threading.Event()
    summary = deliver_all_due(
        app.sessions,
        app.settings,
        app.clock,
        pool=app.build_pool,
        stop=stop,
        progress=lambda count: stop.set(),
    )
    assert summary.sent == 10
    with transaction(app.sessions, commit=False) as session:
        statuses = [row.status for row in session.scalars(select(Outbox))]
        assert statuses.count("sent") == 10 and statuses.count("pending") == 25
        pending = session.scalars(select(Outbox).where(Outbox.status == "pending")).all()
        assert all(row.next_attempt_at <= T0 and row.attempts == 0 for row in pending)
    summary = deliver_all_due(app.sessions, app.settings, app.clock, pool=app.build_pool)
    assert summary.sent == 25
    assert len(list((tmp_path / "out" / "new").iterdir())) == 35
    app.close()


def test_the_claim_and_the_build_ahead_walk_the_due_index(app: App) -> None:
    """The statements the deliverer really runs, explained with their parameters, right after
    a burst of queued mail (on PostgreSQL: no statistics yet, the planner would sort)."""
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        for n in range(2000):
            queue_sample(session, "new_ticket_alert", f"alert:{n}", ticket_id=ticket_id)
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY outbox.lane" in statement or "set_config" in statement:
            seen.append((statement, parameters))

    engine = app.engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        now = T0 + dt.timedelta(minutes=1)
        with transaction(app.sessions) as session:
            assert len(due_unbuilt(session, now, 50)) == 50
            assert len(due_unbuilt(session, now, 50, offset=50)) == 50
            assert len(claim_due(session, now, dt.timedelta(minutes=5), 50)) == 50
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    plans = []
    with engine.connect() as connection:  # replayed in order, the deliverer's settings too
        for statement, parameters in seen:
            if "set_config" in statement:
                connection.exec_driver_sql(statement, parameters)
            else:
                found = connection.exec_driver_sql(explain + statement, parameters)
                plans.append([str(row[-1]) for row in found])
    assert len(plans) == 3
    for plan in plans:
        assert any("ix_outbox_due" in line for line in plan), plan
        assert not any("TEMP B-TREE" in line or "Sort" in line for line in plan), plan


def test_outbound_bytes_are_compressed_with_lz4_on_postgresql(app: App) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    with app.engine.connect() as connection:
        supported = connection.execute(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
        ).scalar()
        method = connection.execute(
            text(
                "SELECT attcompression FROM pg_attribute"
                " WHERE attrelid = 'outbox'::regclass AND attname = 'raw'"
            )
        ).scalar()
    assert method == ("l" if supported else "")


def test_the_rows_past_a_batch_are_the_ones_the_claim_after_it_takes(app: App) -> None:
    """What the workers build before a claim, in a stream of full batches, is the batch after
    it: customer mail first, then the oldest due."""
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        for n in range(25):
            template = "acknowledgment" if n % 3 == 0 else "new_ticket_alert"
            queue_sample(session, template, f"m:{n}", ticket_id=ticket_id)
    now, lease = T0 + dt.timedelta(minutes=1), dt.timedelta(minutes=5)
    with transaction(app.sessions, commit=False) as session:
        second = [job[0] for job in due_unbuilt(session, now, 10, offset=10)]
        third = [job[0] for job in due_unbuilt(session, now, 10, offset=20)]
    claimed = []
    for _ in range(3):
        with transaction(app.sessions) as session:
            claimed.append([claim.outbox_id for claim in claim_due(session, now, lease, 10)])
    assert [len(ids) for ids in claimed] == [10, 10, 5]
    assert second == claimed[1] and third == claimed[2]

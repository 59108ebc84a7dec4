"""Batched delivery: lanes (customer mail first), one relay session, one claim, named files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest
from adapters.support import MAILPROC, wait_for
from click.testing import CliRunner
from conftest import T0
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_deliver import Relay, make_app, run
from test_outbox import ANA, SUPPORT, add_ticket, rows

from mailproc.app import App
from mailproc.cli import cli
from mailproc.clock import FixedClock, SystemClock
from mailproc.config_transport import OutboxSettings
from mailproc.core.model import Address
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope as IntakeEnvelope
from mailproc.outbound.compose import AutoSubmitted, Envelope
from mailproc.outbound.contexts import TEMPLATES
from mailproc.outbound.deliver import DeliverySummary
from mailproc.outbound.outbox import Lane, lane_of, queue_deferred, retry_deadline
from mailproc.outbound.samples import SAMPLES
from mailproc.outbound.values import Audience
from mailproc.store.db import transaction
from mailproc.store.models import MessageRecord, Outbox
from mailproc.supervisor import Components, Supervisor


def queue_sample(
    session: Session,
    template: str,
    key: str,
    *,
    ticket_id: int | None = None,
    now: dt.datetime = T0,
) -> None:
    """Queue the sample mail of ``template`` to Ana, rendered at delivery."""
    envelope = Envelope(
        sender=Address("Support", SUPPORT),
        to=(Address("Ana", ANA),),
        reply_to=Address("Support", SUPPORT),
        message_id=f"{key.replace(':', '.')}@dataflow.test",
        date=now,
        auto_submitted=AutoSubmitted.AUTO_GENERATED,
        ticket_number=10001,
    )
    assert queue_deferred(
        session,
        key=key,
        ticket_id=ticket_id,
        locale="en",
        context=SAMPLES[template],
        envelope=envelope,
        envelope_from=SUPPORT,
        now=now,
        deadline=retry_deadline(now, OutboxSettings()),
    )


def test_every_template_has_an_audience_and_its_lane() -> None:
    lanes = {name: lane_of(name) for name in TEMPLATES}
    assert lanes["acknowledgment"] == lanes["agent_reply"] == Lane.CUSTOMER
    assert lanes["new_ticket_alert"] == lanes["breach_alert"] == Lane.INTERNAL
    for name, context in TEMPLATES.items():
        assert (context.audience == Audience.INTERNAL) == (lanes[name] == Lane.INTERNAL)
    assert lane_of("report_weekly") == Lane.INTERNAL  # reports are built without a context


def test_an_acknowledgment_goes_out_in_the_first_batch_behind_an_internal_backlog(
    db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    app = make_app(db_url, clock, f"maildir:{tmp_path}/out")  # batch_size 10
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        for n in range(25):
            queue_sample(session, "new_ticket_alert", f"alert:{n}", ticket_id=ticket_id)
        queue_sample(
            session, "acknowledgment", "ack:1", ticket_id=ticket_id, now=T0 + dt.timedelta(1)
        )
    clock.advance(dt.timedelta(days=1))
    assert run(app) == DeliverySummary(sent=10)
    names = sorted(path.name for path in (tmp_path / "out" / "new").iterdir())
    assert sum("10001-acknowledgment" in name for name in names) == 1
    assert sum("10001-new_ticket_alert" in name for name in names) == 9
    sent = [row.key for row in rows(app) if row.status == "sent"]
    assert sent == ["alert:0", *(f"alert:{n}" for n in range(1, 9)), "ack:1"]
    # the thread record of a mail built at delivery got its subject and text
    with transaction(app.sessions) as session:
        ack = session.scalars(
            select(MessageRecord).where(MessageRecord.message_id == "ack.1@dataflow.test")
        ).one()
        assert ack.subject.startswith("[Ticket #") and ack.body_text
    app.close()


def test_a_batch_goes_over_one_smtp_session(db_url: str, clock: FixedClock) -> None:
    relay = Relay()
    sessions: list[int] = []
    original = relay.handler.handle_DATA

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        sessions.append(id(session))
        return await original(server, session, envelope)

    relay.handler.handle_DATA = handle_data  # type: ignore[method-assign]
    relay.start()
    app = make_app(db_url, clock, relay.url)
    with transaction(app.sessions) as session:
        for n in range(10):
            queue_sample(session, "acknowledgment", f"ack:{n}")
    try:
        assert run(app) == DeliverySummary(sent=10)
    finally:
        relay.stop()
        app.close()
    assert len(sessions) == 10 and len(set(sessions)) == 1
    assert len({m.message_id for m in relay.received}) == 10


def test_a_mail_that_cannot_be_built_fails_and_the_rest_of_the_batch_goes(
    db_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    app = make_app(db_url, clock, f"maildir:{tmp_path}/out")
    with transaction(app.sessions) as session:
        queue_sample(session, "acknowledgment", "ack:1")
        queue_sample(session, "acknowledgment", "ack:2")
        broken = session.scalars(select(Outbox).where(Outbox.key == "ack:1")).one()
        broken.context = {**(broken.context or {}), "ticket": "not a ticket"}
    assert run(app) == DeliverySummary(sent=1, failed=1)
    first, second = rows(app)
    assert first.status == "failed" and "no longer fits acknowledgment" in (first.last_error or "")
    assert second.status == "sent" and second.raw is not None
    assert len(list((tmp_path / "out" / "new").iterdir())) == 1
    app.close()


def test_serve_sends_the_acknowledgment_as_soon_as_its_batch_commits(
    app: App, tmp_path: Path
) -> None:
    """The tick is an hour: the deliverer is woken by the worker's committed batch."""
    app.clock = SystemClock()
    app.settings = app.settings.model_copy(
        update={
            "relay": app.settings.relay.model_copy(update={"url": f"maildir:{tmp_path}/out"}),
            "serve": app.settings.serve.model_copy(update={"tick_interval_s": 3600}),
        }
    )
    supervisor = Supervisor(
        app, Components(listener=None, pollers=False, worker=True, deliver=True)
    )
    mail = (
        b"From: Ana <ana@example.com>\r\nTo: support@dataflow.com\r\nSubject: Sync fails\r\n"
        b"Message-ID: <m1@example.com>\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n\r\n"
        b"Our nightly sync stopped with an error.\r\n"
    )
    found: list[str] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(supervisor.serve(stop))
        await asyncio.sleep(1.0)  # the start-up runs are over; the next delivery is an hour away
        app.ingest([RawInput(mail, IntakeEnvelope("file"))])
        assert supervisor.worker is not None
        supervisor.worker.wake_up()

        def acknowledged() -> bool:
            found[:] = [p.name for p in (tmp_path / "out" / "new").glob("*-acknowledgment.*")]
            return bool(found)

        await asyncio.to_thread(wait_for, acknowledged, 20, "the acknowledgment")
        stop.set()
        await serving

    asyncio.run(scenario())
    assert len(found) == 1


def test_outbox_list_and_show(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app(db_url, FixedClock(T0), "maildir:out")
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        queue_sample(session, "acknowledgment", "ack:1", ticket_id=ticket_id)
        queue_sample(session, "new_ticket_alert", "alert:1")
    environment = {"MAILPROC_DATABASE_URL": db_url, "MAILPROC_RELAY_URL": "maildir:out"}

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(invoke("outbox", "list", "--json"))
    assert [(m["template"], m["lane"], m["ticket"]) for m in listed] == [
        ("new_ticket_alert", "internal", None),
        ("acknowledgment", "customer", 10001),
    ]
    [ack] = json.loads(invoke("outbox", "list", "--ticket", "10001", "--json"))
    assert json.loads(invoke("outbox", "list", "--status", "sent", "--json")) == []
    preview = invoke("outbox", "show", str(ack["id"]), "--raw")
    assert run(app) == DeliverySummary(sent=2)
    [written] = (tmp_path / "out" / "new").glob("*.10001-acknowledgment.*")
    assert written.read_text() == preview.replace("\r\n", "\n")
    shown = json.loads(invoke("outbox", "show", str(ack["id"])))
    assert shown["status"] == "sent" and shown["results"] == {ANA: {"status": "sent", "reason": ""}}
    assert [e["kind"] for e in shown["events"]] == ["outbound.sent"]
    assert "2 mail(s)" in invoke("outbox", "list")
    missing = CliRunner().invoke(cli, ["outbox", "show", "999999"], env=environment)
    assert missing.exit_code == 65 and "no outbound mail 999999" in missing.output
    app.close()


def test_deliver_once_shows_a_progress_bar_on_a_terminal_only(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url, FixedClock(SystemClock().now()), "maildir:out")
    with transaction(app.sessions) as session:
        for n in range(30):
            queue_sample(session, "acknowledgment", f"ack:{n}", now=app.clock.now())
    app.close()
    environment = {
        **os.environ,
        "MAILPROC_DATABASE_URL": db_url,
        "MAILPROC_RELAY_URL": "maildir:out",
        "MAILPROC_OUTBOX_BATCH_SIZE": "10",
    }
    controller, terminal = pty.openpty()
    try:
        completed = subprocess.run(
            [MAILPROC, "deliver", "--once"],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
            check=True,
        )
        os.close(terminal)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once everything written was read
            while chunk := os.read(controller, 4096):
                shown += chunk
    finally:
        os.close(controller)
    assert completed.stdout == b"sent 30, retried 0, failed 0, skipped 0\n"
    assert b"delivering" in shown and b"100%" in shown

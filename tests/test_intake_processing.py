"""Durable intake and the worker on a real database: duplicates, threading, quarantine, replay."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from conftest import GOLDEN
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.core.refunds import MAX_AMOUNT
from mailproc.core.understand import PrepareRules
from mailproc.intake import store as intake
from mailproc.intake.sources import RawInput, read_path
from mailproc.intake.store import Envelope, store_batch
from mailproc.processing import parsepool, readahead
from mailproc.processing.parsepool import Job, PrepareResult, prepare_all
from mailproc.processing.replay import ReplaySelection
from mailproc.processing.worker import release
from mailproc.store import repo
from mailproc.store.db import transaction
from mailproc.store.models import (
    AttachmentRecord,
    Blob,
    Event,
    Inbound,
    MessageRecord,
    RefundCaseRecord,
    Ticket,
    TicketParticipant,
)
from mailproc.store.repo import peek_pending
from mailproc.tickets.views import ticket_detail


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def ingest(app: App, *raws: bytes) -> None:
    report = app.ingest(RawInput(raw, Envelope(source="file")) for raw in raws)
    assert not report.rejected


def count(app: App, model: type) -> int:
    with transaction(app.sessions, commit=False) as session:
        query = select(func.count()).select_from(model)
        if model is MessageRecord:  # the thread also holds our outbound mail
            query = query.where(MessageRecord.direction == "in")
        return int(session.scalar(query) or 0)


def load_sample_customers(app: App) -> None:
    from mailproc.resources import resource_path

    report = app.import_customers((resource_path("data") / "customers_sample.csv").read_text())
    assert report.created == 50 and not report.errors


def test_raw_bytes_and_envelope_are_stored_exactly(app: App) -> None:
    raw = golden("attachments.eml")
    envelope = Envelope(
        "smtp",
        "127.0.0.1:5555",
        "daniel@streamwise.example",
        ("support@dataflow.com", "billing@dataflow.com"),
    )
    with transaction(app.sessions) as session:
        [stored] = store_batch(session, [(raw, envelope)], app.clock.now())
    with transaction(app.sessions, commit=False) as session:
        row = session.get(Inbound, stored.inbound_id)
        assert row is not None
        blob = session.get(Blob, row.raw_sha256)
        assert blob is not None and blob.data == raw
        assert row.envelope_from == "daniel@streamwise.example"
        assert row.envelope_to == ["support@dataflow.com", "billing@dataflow.com"]
        assert row.source == "smtp" and row.source_ref == "127.0.0.1:5555"
        assert row.received_at == app.clock.now()
        assert row.message_id == "20261126111542.GA4021@streamwise.example"
        assert row.status == "pending"


def test_same_bytes_twice_stored_once(app: App) -> None:
    raw = golden("multipart_alternative.eml")
    first = app.ingest([RawInput(raw, Envelope("file"))])
    second = app.ingest([RawInput(raw, Envelope("stdin")), RawInput(raw, Envelope("stdin"))])
    assert (first.stored, first.duplicates) == (1, 0)
    assert (second.stored, second.duplicates) == (0, 2)
    assert count(app, Inbound) == 1


def test_same_message_id_with_other_content_is_kept_and_flagged(app: App) -> None:
    raw = golden("multipart_alternative.eml")
    altered = raw.replace(b"Could you help us", b"Can you please help us")
    ingest(app, raw)
    report = app.ingest([RawInput(altered, Envelope("file"))])
    assert report.stored == 1 and report.message_id_conflicts == 1
    summary = app.process()
    # A reused Message-ID is no proof of belonging (anyone on Cc knows it): the second
    # message is processed on its own merits, not attached to the first one's ticket.
    assert summary.count("created") == 2 and summary.count("duplicate") == 0
    assert count(app, Inbound) == 2 and count(app, MessageRecord) == 2
    with transaction(app.sessions, commit=False) as session:
        flags = session.scalars(select(Inbound.message_id_conflict).order_by(Inbound.id)).all()
        assert flags == [False, True]
        kinds = session.scalars(select(Event.kind)).all()
        assert "inbound.message_id_conflict" in kinds


def test_one_batch_across_statement_chunks_dedups_and_flags(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch larger than a statement chunk behaves as one: later chunks see earlier ones."""
    monkeypatch.setattr(intake, "_CHUNK", 2)
    raw = golden("multipart_alternative.eml")
    altered = raw.replace(b"Could you help us", b"Can you please help us")
    other = golden("reply.eml")
    with transaction(app.sessions) as session:
        stored = store_batch(
            session,
            [
                (raw, Envelope("file")),
                (other, Envelope("file")),
                (raw, Envelope("stdin")),
                (altered, Envelope("file")),
                (altered, Envelope("file")),
            ],
            app.clock.now(),
        )
    assert [s.duplicate for s in stored] == [False, False, True, False, True]
    assert [s.message_id_conflict for s in stored] == [False, False, False, True, False]
    assert stored[2].inbound_id == stored[0].inbound_id
    assert stored[4].inbound_id == stored[3].inbound_id != stored[0].inbound_id
    assert count(app, Inbound) == 3


def test_same_mail_by_two_routes_makes_one_ticket(app: App) -> None:
    raw = golden("multipart_alternative.eml")
    via_imap = (
        b"Received: from imap.dataflow.com by mailproc; Thu, 26 Nov 2026 14:03:00 +0000\r\n" + raw
    )
    ingest(app, raw, via_imap)
    summary = app.process()
    assert summary.count("created") == 1 and summary.count("duplicate") == 1
    assert count(app, Ticket) == 1 and count(app, MessageRecord) == 1


def test_new_mail_opens_ticket_with_customer_and_reply_threads(app: App) -> None:
    load_sample_customers(app)
    ingest(app, golden("multipart_alternative.eml"))
    app.process()
    ingest(app, golden("reply.eml"))
    summary = app.process()
    assert summary.count("appended") == 1
    with transaction(app.sessions, commit=False) as session:
        detail = ticket_detail(session, 10001)
    assert detail is not None
    assert detail["customer_id"] == 1001 and detail["plan"] == "Professional"
    assert detail["status"] == "new" and not detail["unknown_customer"]
    assert [m["message_id"] for m in detail["messages"] if m["direction"] == "in"] == [
        "CAF8x2kN-7d1@mail.northwind-analytics.example",
        "CAF8x2kN-reply-2@mail.northwind-analytics.example",
    ]
    kinds = [e["kind"] for e in detail["events"]]
    # intake decisions first; acknowledgment and timers follow (tests/test_notifications.py)
    assert kinds[:4] == ["ticket.created", "message.received", "ticket.classified", "ticket.sla"]
    assert kinds[-2:] == ["message.received", "notify.reply_alert"]  # the agents are told
    assert "customer 1001" in detail["events"][0]["reason"]


def test_unknown_sender_still_gets_a_ticket(app: App) -> None:
    ingest(app, golden("multipart_alternative.eml"))
    app.process()
    with transaction(app.sessions, commit=False) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.unknown_customer and ticket.customer_id is None
        assert ticket.requester == "laura@northwind-analytics.example"


def test_attachments_stored_by_hash_and_participants_recorded(app: App) -> None:
    ingest(app, golden("attachments.eml"))
    app.process()
    with transaction(app.sessions, commit=False) as session:
        rows = session.scalars(select(AttachmentRecord).order_by(AttachmentRecord.id)).all()
        assert [r.filename for r in rows] == ["api-log.csv", "invoicefdp.exe"]
        for row in rows:
            blob = session.get(Blob, row.sha256)
            assert blob is not None and blob.size == row.size
        participants = dict(
            session.execute(select(TicketParticipant.address, TicketParticipant.role)).all()
        )
    assert participants == {
        "daniel@streamwise.example": "requester",
        "dev-team@streamwise.example": "cc",
    }


def test_limit_breach_is_quarantined_then_released_after_a_fix(app: App, clock: FixedClock) -> None:
    raw = golden("attachments.eml")
    ingest(app, raw)
    strict = App(
        app.settings.model_copy(
            update={"intake": app.settings.intake.model_copy(update={"max_message_bytes": 1024})}
        ),
        clock,
    )
    try:
        summary = strict.process()
    finally:
        strict.close()
    assert summary.count("quarantined") == 1
    assert "limit is 1024" in summary.quarantined[0].reason
    with transaction(app.sessions, commit=False) as session:
        row = session.scalars(select(Inbound)).one()
        assert row.status == "quarantined" and row.attempts == 1
        assert row.last_error is not None and "limit is 1024" in row.last_error
        row_id = row.id
    assert count(app, Ticket) == 0
    clock.advance(dt.timedelta(minutes=5))
    with transaction(app.sessions) as session:
        assert release(session, [row_id], clock.now()) == [row_id]
    summary = app.process()
    assert summary.count("created") == 1
    with transaction(app.sessions, commit=False) as session:
        row = session.scalars(select(Inbound)).one()
        assert row.status == "processed" and row.attempts == 2 and row.last_error is None


def test_replay_is_idempotent_and_dry_run_changes_nothing(app: App) -> None:
    names = ["multipart_alternative.eml", "reply.eml", "html_only.eml", "spanish.eml"]
    ingest(app, *(golden(n) for n in names))
    app.process()
    before = (count(app, Ticket), count(app, MessageRecord), count(app, Event))
    ids = app.replay_ids(ReplaySelection(everything=True))
    assert len(ids) == 4
    assert {r.action for r in app.replay(ids, dry_run=True)} == {"unchanged"}
    assert {r.action for r in app.replay(ids, dry_run=False)} == {"unchanged"}
    assert (count(app, Ticket), count(app, MessageRecord), count(app, Event)) == before


def test_replay_updates_a_stale_row_and_dry_run_reports_it(app: App) -> None:
    ingest(app, golden("spanish.eml"))
    app.process()
    with transaction(app.sessions) as session:
        message = session.scalars(
            select(MessageRecord).where(MessageRecord.direction == "in")
        ).one()
        message.body_text = "stale text from an older parser"
    ids = app.replay_ids(ReplaySelection(ticket_number=10001))
    [dry] = app.replay(ids, dry_run=True)
    assert dry.action == "updated" and "body_text" in dry.detail
    with transaction(app.sessions, commit=False) as session:
        assert (
            session.scalars(select(MessageRecord.body_text).where(MessageRecord.direction == "in"))
            .one()
            .startswith("stale")
        )
    [real] = app.replay(ids, dry_run=False)
    assert real.action == "updated"
    with transaction(app.sessions, commit=False) as session:
        assert (
            "sección de comentarios"
            in session.scalars(
                select(MessageRecord.body_text).where(MessageRecord.direction == "in")
            ).one()
        )
    [again] = app.replay(ids, dry_run=False)
    assert again.action == "unchanged"


def test_replay_of_quarantined_processes_it_once(app: App, clock: FixedClock) -> None:
    ingest(app, golden("french.eml"))
    with transaction(app.sessions) as session:
        inbound = session.scalars(select(Inbound)).one()
        from mailproc.processing.context import quarantine

        quarantine(session, inbound, "simulated earlier failure", clock.now())
    ids = app.replay_ids(ReplaySelection(quarantined=True))
    assert [r.action for r in app.replay(ids, dry_run=True)] == ["created"]
    assert count(app, Ticket) == 0
    assert [r.action for r in app.replay(ids, dry_run=False)] == ["created"]
    assert app.replay_ids(ReplaySelection(quarantined=True)) == []
    assert [r.action for r in app.replay(ids, dry_run=False)] == ["unchanged"]
    assert count(app, Ticket) == 1


def test_replay_selection_by_message_id_and_since(app: App, clock: FixedClock) -> None:
    ingest(app, golden("french.eml"))
    clock.advance(dt.timedelta(days=1))
    ingest(app, golden("spanish.eml"))
    app.process()
    by_id = app.replay_ids(ReplaySelection(message_id="<5f2e.riviere@banqueriviere.example>"))
    assert len(by_id) == 1
    since = app.replay_ids(ReplaySelection(since=clock.now() - dt.timedelta(hours=1)))
    assert len(since) == 1 and since != by_id


def test_golden_folder_ingests_completely(app: App) -> None:
    report = app.ingest(read_path(GOLDEN))
    assert report.stored == len(list(GOLDEN.glob("*.eml"))) and not report.rejected
    summary = app.process()
    assert summary.count("quarantined") == 0
    assert summary.count("created") + summary.count("appended") == report.stored


@pytest.mark.parametrize(("byte_cap", "read_before_first_write"), [(64 << 20, 3), (1, 2)])
def test_parse_pool_reads_ahead_and_processes_each_message_once(
    settings: Settings,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    byte_cap: int,
    read_before_first_write: int,
) -> None:
    """Every batch, the first included, is parsed in the workers (read ahead), none here.

    75 messages in batches of 20, each read once (4 reads): before the first batch is
    written, the two batches behind it are read ahead too (3 reads), but only one once the
    batches ahead hold ``READ_AHEAD_BYTES`` of raw mail (2).
    """
    parsed_here: list[int] = []
    peeked: list[int] = []

    def prepare_here(jobs: Sequence[Job], rules: PrepareRules) -> list[PrepareResult]:
        parsed_here.append(len(jobs))
        return prepare_all(jobs, rules)

    def peek(session: Session, after_id: int, limit: int) -> Sequence[tuple[Inbound, bytes]]:
        peeked.append(after_id)
        return peek_pending(session, after_id, limit)

    monkeypatch.setattr(parsepool, "prepare_all", prepare_here)
    monkeypatch.setattr(repo, "peek_pending", peek)
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", byte_cap)
    pooled = settings.model_copy(
        update={
            "processing": settings.processing.model_copy(
                update={"parse_workers": 1, "batch_size": 20}
            )
        }
    )
    application = App(pooled, clock)
    try:
        raws = [
            f"From: user{i}@customer.example\r\nTo: support@dataflow.com\r\n"
            f"Subject: Dashboard problem {i}\r\nMessage-ID: <ahead-{i}@customer.example>\r\n\r\n"
            f"The dashboard number {i} does not load.\r\n".encode()
            for i in range(75)
        ]
        ingest(application, *raws)
        reads_at_writes: list[int] = []
        summary = application.process(lambda _count: reads_at_writes.append(len(peeked)))
        assert reads_at_writes[0] == read_before_first_write
        assert len(summary.outcomes) == 75 and summary.count("created") == 75
        assert len({o.inbound_id for o in summary.outcomes}) == 75
        assert count(application, Ticket) == 75 and count(application, MessageRecord) == 75
        assert sum(parsed_here) == 0
        assert peeked == [0, 20, 40, 60]
    finally:
        application.close()


def test_hostile_date_and_huge_refund_are_ticketed_not_quarantined(app: App) -> None:
    load_sample_customers(app)
    raw = (
        b"From: Laura <laura@northwind-analytics.example>\r\nTo: support@dataflow.com\r\n"
        b"Subject: Refund request\r\nDate: Fri, 31 Dec 9999 23:59:59 -1200\r\n"
        b"Message-ID: <huge-refund@northwind-analytics.example>\r\n\r\n"
        b"Please refund $10000000000000 to our account.\r\n"
    )
    ingest(app, raw)
    summary = app.process()
    assert summary.count("created") == 1 and summary.count("quarantined") == 0
    with transaction(app.sessions, commit=False) as session:
        record = session.scalars(select(MessageRecord).where(MessageRecord.direction == "in")).one()
        assert record.sent_at is None
        assert any(d.startswith("Date: ") for d in record.defects)
        amounts = list(session.scalars(select(RefundCaseRecord.amount)))
    assert amounts == [MAX_AMOUNT]

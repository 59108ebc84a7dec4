"""A large message never holds the write lock while it is parsed, and is written in a
transaction of its own, so the SMTP listener's commits go on between (issue 20, item 8)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import pairwise

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.core.model import InboundStatus
from mailproc.core.understand import PrepareRules
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope
from mailproc.processing import parsepool
from mailproc.processing.parsepool import Ahead, Job, ParsePool, PrepareResult, prepare_all
from mailproc.processing.readahead import LARGE_BYTES
from mailproc.store.db import transaction
from mailproc.store.models import Inbound, RefundCaseRecord, Ticket

LINES = b"> a\r\nb\r\n" * (LARGE_BYTES // 8 + 1)  # short lines, over LARGE_BYTES


def mail(number: int, body: bytes = b"The export does not start.\r\n") -> bytes:
    return (
        f"From: user{number}@customer.example\r\nTo: support@dataflow.com\r\n"
        f"Subject: Export problem {number}\r\nMessage-ID: <large-{number}@customer.example>\r\n"
        "\r\n"
    ).encode() + body


def ingest(app: App, raws: Sequence[bytes]) -> list[int]:
    """Store the mail unprocessed; the inbound ids in order."""
    assert not app.ingest(RawInput(raw, Envelope("file")) for raw in raws).rejected
    with transaction(app.sessions, commit=False) as session:
        return list(session.scalars(select(Inbound.id).order_by(Inbound.id)))


def with_processing(settings: Settings, **values: object) -> Settings:
    processing = settings.processing.model_copy(update=values)
    return settings.model_copy(update={"processing": processing})


def done_ids(app: App) -> set[int]:
    with transaction(app.sessions, commit=False) as session:
        query = select(Inbound.id).where(Inbound.status != InboundStatus.PENDING)
        return set(session.scalars(query))


def test_a_large_message_is_written_in_a_transaction_of_its_own(
    settings: Settings, clock: FixedClock
) -> None:
    app = App(with_processing(settings, parse_workers=0), clock)
    try:
        ids = ingest(app, [mail(1), mail(2, LINES), mail(3), mail(4)])
        seen: list[set[int]] = []  # what was written before each transaction
        summary = app.process(before_batch=lambda: seen.append(done_ids(app)))
        seen.append(done_ids(app))
        assert summary.count("created") == 4
        written = [after - before for before, after in pairwise(seen)]
        assert written == [{ids[0]}, {ids[1]}, {ids[2], ids[3]}]
    finally:
        app.close()


def can_write(settings: Settings) -> bool:
    """Whether another connection can take the SQLite write lock at once."""
    other = sqlite3.connect(str(make_url(settings.database.url).database), timeout=0)
    other.isolation_level = None
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        other.close()


def test_another_writer_can_commit_while_a_large_message_is_parsed(
    settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener's commit writer is such a writer: on SQLite it waits for the write lock.
    Starting the pool's workers (seconds on a busy machine) does not hold it either."""
    if make_url(settings.database.url).get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL's writers do not wait for one another's transactions")
    writable: list[bool] = []

    def prepare_checking(jobs: Sequence[Job], rules: PrepareRules) -> list[PrepareResult]:
        if any(len(raw) >= LARGE_BYTES for raw, _ in jobs):
            writable.append(can_write(settings))
        return prepare_all(jobs, rules)

    def start_checking(pool: ParsePool, jobs: Sequence[tuple[int, Job]]) -> Ahead | None:
        writable.append(can_write(settings))
        return start(pool, jobs)

    start = ParsePool.start
    monkeypatch.setattr(parsepool, "prepare_all", prepare_checking)
    monkeypatch.setattr(ParsePool, "start", start_checking)
    for workers, checks in ((0, 1), (1, 1)):  # parsed here; started in the pool
        writable.clear()
        app = App(with_processing(settings, parse_workers=workers), clock)
        try:
            ingest(app, [mail(10 * workers + 1), mail(10 * workers + 2, LINES)])
            assert app.process().count("created") == 2
        finally:
            app.close()
        assert writable == [True] * checks


def test_a_large_message_is_parsed_by_the_pool_not_here(
    settings: Settings, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In ``serve`` this process is the listener's too: a long parse here would hold its
    interpreter. Small mail that is not worth the round trip is parsed here."""
    parsed_here: list[int] = []

    def prepare_here(jobs: Sequence[Job], rules: PrepareRules) -> list[PrepareResult]:
        parsed_here.extend(len(raw) for raw, _ in jobs)
        return prepare_all(jobs, rules)

    monkeypatch.setattr(parsepool, "prepare_all", prepare_here)
    app = App(with_processing(settings, parse_workers=1), clock)
    try:
        ingest(app, [mail(1), mail(2, LINES), mail(3)])
        assert app.process().count("created") == 3
    finally:
        app.close()
    assert len(parsed_here) == 2 and max(parsed_here) < LARGE_BYTES


def test_a_reduced_mail_is_searched_for_a_refund_request_in_its_understood_part_only(
    settings: Settings, clock: FixedClock
) -> None:
    """Like its classification: the search ran over all of a huge text in the transaction."""
    intake = settings.intake.model_copy(update={"max_understood_chars": 1024})
    app = App(
        with_processing(settings.model_copy(update={"intake": intake}), parse_workers=0), clock
    )
    filler = b"The export stops halfway. " * 60
    try:
        ingest(app, [mail(1, filler + b"\r\nPlease refund $50.\r\n")])
        ingest(app, [mail(2, b"Please refund $50.\r\n" + filler)])
        assert app.process().count("created") == 2
        with transaction(app.sessions, commit=False) as session:
            refunds = session.execute(
                select(Ticket.subject).join(
                    RefundCaseRecord, RefundCaseRecord.ticket_id == Ticket.id
                )
            ).all()
    finally:
        app.close()
    assert [subject for (subject,) in refunds] == ["Export problem 2"]

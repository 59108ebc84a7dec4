"""The outbox store: idempotent queueing, thread records, the auto-reply budget, claims, backoff."""

from __future__ import annotations

import datetime as dt
import secrets
from email.message import EmailMessage
from functools import cache

import pytest
from conftest import T0
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailproc.app import App
from mailproc.config_transport import OutboxSettings
from mailproc.core.model import Address
from mailproc.intake.sources import RawInput
from mailproc.intake.store import Envelope as IntakeEnvelope
from mailproc.outbound.attempts import backoff_delay, claim_due, record_results, release
from mailproc.outbound.compose import AutoSubmitted, Envelope, HeaderError, compose, make_message_id
from mailproc.outbound.outbox import (
    OutboxStatus,
    materialize,
    queue_mail,
    recent_auto_replies,
    retry_deadline,
)
from mailproc.outbound.render import Renderer, RenderError
from mailproc.outbound.samples import SAMPLES
from mailproc.store.db import transaction
from mailproc.store.models import Event, MessageRecord, Outbox, OutboxRecipient, Ticket
from mailproc.store.staged import staging

SUPPORT = "support@dataflow.com"
ANA = "ana.garcia@example.com"


@cache
def renderer() -> Renderer:
    return Renderer()


def make_mail(
    key: str,
    to: tuple[str, ...] = (ANA,),
    *,
    when: dt.datetime = T0,
    auto_submitted: AutoSubmitted = AutoSubmitted.AUTO_REPLIED,
    in_reply_to: str | None = None,
) -> EmailMessage:
    """An acknowledgment composed the way the application does it, with a fresh Message-ID."""
    mail = renderer().render(SAMPLES["acknowledgment"], "en")
    envelope = Envelope(
        sender=Address("DataFlow Support", SUPPORT),
        to=tuple(Address("", address) for address in to),
        reply_to=Address("", "support+12345-k7x2q9@dataflow.com"),
        message_id=make_message_id(key, secrets.token_hex(8), "dataflow.com"),
        date=when,
        auto_submitted=auto_submitted,
        ticket_number=12345,
        in_reply_to=in_reply_to,
    )
    return compose(mail, envelope)


def queue(
    session: Session,
    key: str,
    to: tuple[str, ...] = (ANA,),
    *,
    ticket_id: int | None = None,
    now: dt.datetime = T0,
    deadline: dt.datetime | None = None,
    message: EmailMessage | None = None,
) -> bool:
    """Queue an acknowledgment to ``to`` under ``key``."""
    message = message or make_mail(key, to, when=now)
    return queue_mail(
        session,
        key=key,
        ticket_id=ticket_id,
        template="acknowledgment",
        locale="en",
        message=message,
        envelope_from=SUPPORT,
        recipients=to,
        auto_submitted=str(message.get("Auto-Submitted", "no")),
        now=now,
        deadline=deadline or retry_deadline(now, OutboxSettings()),
    )


def add_ticket(session: Session, number: int = 10001) -> int:
    ticket = Ticket(
        number=number,
        status="new",
        subject="Sync fails",
        received_at=T0,
        created_at=T0,
        updated_at=T0,
    )
    session.add(ticket)
    session.flush()
    return ticket.id


def rows(app: App) -> list[Outbox]:
    """Every outbox row with its recipients, loaded (a commit keeps them loaded)."""
    with transaction(app.sessions) as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_the_same_key_twice_queues_one_mail_and_one_thread_message(app: App) -> None:
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        assert queue(session, "ack:10001", ticket_id=ticket_id)
    with transaction(app.sessions) as session:
        assert not queue(session, "ack:10001", ticket_id=ticket_id)
    [row] = rows(app)
    assert (row.key, row.ticket_id) == ("ack:10001", ticket_id)
    assert (row.status, row.attempts) == ("pending", 0)
    assert (row.next_attempt_at, row.deadline_at) == (T0, T0 + dt.timedelta(hours=48))
    assert row.auto_submitted == "auto-replied" and row.envelope_from == SUPPORT
    assert [(r.address, r.status) for r in row.recipients] == [(ANA, "pending")]
    with transaction(app.sessions) as session:
        records = session.scalars(select(MessageRecord)).all()
        assert [(m.direction, m.message_id, m.ticket_id) for m in records] == [
            ("out", row.message_id, ticket_id)
        ]


def test_staged_mail_is_queued_once_and_counts_for_the_budget_before_it_is_written(
    app: App,
) -> None:
    """Inside a staging scope (a processing batch) rows are written at the end: a key seen
    earlier in the scope is refused, a key already stored is skipped with its recipients and
    thread record, and the auto-reply budget sees staged mail at once."""
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        assert queue(session, "ack:10001", ticket_id=ticket_id)
    with transaction(app.sessions) as session, staging(session):
        assert queue(session, "ack:10002", ("bob@example.com",), ticket_id=ticket_id)
        assert not queue(session, "ack:10002", ("bob@example.com",), ticket_id=ticket_id)
        assert recent_auto_replies(session, "bob@example.com", T0) == [T0]
        assert recent_auto_replies(session, ANA, T0) == [T0]  # stored before the scope
        queue(session, "ack:10001", ("carol@example.com",), ticket_id=ticket_id)  # stored key
        assert queue(session, "ack:10003", ("dan@example.com", ANA), ticket_id=ticket_id)
        assert session.scalar(select(func.count()).select_from(Outbox)) == 1  # nothing yet
    assert [(row.key, sorted(r.address for r in row.recipients)) for row in rows(app)] == [
        ("ack:10001", [ANA]),
        ("ack:10002", ["bob@example.com"]),
        ("ack:10003", sorted((ANA, "dan@example.com"))),
    ]
    with transaction(app.sessions, commit=False) as session:
        threads = session.scalars(
            select(MessageRecord.message_id).where(MessageRecord.direction == "out")
        ).all()
    assert sorted(threads) == sorted(row.message_id for row in rows(app))


def test_the_thread_record_shows_the_mail_and_finds_its_ticket(app: App) -> None:
    message = make_mail("ack:10001", in_reply_to="CAF=abc123@mail.example.com")
    with transaction(app.sessions) as session:
        ticket_id = add_ticket(session)
        queue(session, "ack:10001", ticket_id=ticket_id, message=message)
    [row] = rows(app)
    assert row.raw == message.as_bytes().replace(b"\n", b"\r\n")
    assert f"<{row.message_id}>" == message["Message-ID"]
    with transaction(app.sessions) as session:
        record = session.scalars(select(MessageRecord)).one()
        threaded = session.scalars(
            select(MessageRecord.ticket_id).where(MessageRecord.message_id == row.message_id)
        ).all()
        assert threaded == [ticket_id]
    assert (record.from_address, record.from_name) == (SUPPORT, "DataFlow Support")
    assert record.to == [["", ANA]]
    assert record.subject == "[Ticket #12345] Your Support Request"
    assert record.in_reply_to == ["CAF=abc123@mail.example.com"]
    assert record.references == ["CAF=abc123@mail.example.com"]
    assert record.sent_at == T0 and record.created_at == T0
    assert record.content_language == "en" and record.body_source == "plain"
    assert "12345" in record.body_text and record.body_text == record.new_text


def test_a_customer_reply_threads_into_the_ticket_by_in_reply_to(app: App) -> None:
    question = (
        b"From: Ana Garcia <ana.garcia@example.com>\r\nTo: support@dataflow.com\r\n"
        b"Subject: Sync fails\r\nMessage-ID: <q1@example.com>\r\n"
        b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n\r\nOur nightly sync fails.\r\n"
    )
    app.ingest([RawInput(question, IntakeEnvelope("file"))])
    app.process()
    with transaction(app.sessions) as session:
        ticket = session.scalars(select(Ticket)).one()
        queue(session, "test:reply-target", ticket_id=ticket.id)
    [row] = [row for row in rows(app) if row.key == "test:reply-target"]
    reply = (
        b"From: Ana Garcia <ana.garcia@example.com>\r\nTo: support@dataflow.com\r\n"
        b"Subject: thanks, one more thing\r\nMessage-ID: <q2@example.com>\r\n"
        b"In-Reply-To: <" + row.message_id.encode() + b">\r\n"
        b"Date: Fri, 27 Nov 2026 10:05:00 +0000\r\n\r\nIt also fails at noon.\r\n"
    )
    app.ingest([RawInput(reply, IntakeEnvelope("file"))])
    app.process()
    with transaction(app.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1
        answer = session.scalars(
            select(MessageRecord).where(MessageRecord.message_id == "q2@example.com")
        ).one()
        assert answer.ticket_id == ticket.id


def test_mail_that_could_never_be_sent_is_refused_at_queue_time(app: App) -> None:
    with transaction(app.sessions) as session:
        with pytest.raises(HeaderError, match="not an address"):
            queue(session, "ack:1", ("not an address",), message=make_mail("ack:1"))
        with pytest.raises(HeaderError, match="not an address"):
            queue(session, "ack:2", ("josé@example.com",), message=make_mail("ack:2"))  # SMTPUTF8
        message = make_mail("ack:3")
        with pytest.raises(ValueError, match="auto-replied"):
            queue_mail(
                session,
                key="ack:3",
                ticket_id=None,
                template="acknowledgment",
                locale="en",
                message=message,
                envelope_from=SUPPORT,
                recipients=[ANA],
                auto_submitted="no",
                now=T0,
                deadline=T0,
            )
        with pytest.raises(ValueError, match="1 to 200"):
            queue(session, "k" * 201)
    assert rows(app) == []


def test_recent_auto_replies_counts_automatic_mail_to_one_address(app: App) -> None:
    human = make_mail("reply:1")
    del human["Auto-Submitted"]
    with transaction(app.sessions) as session:
        queue(session, "ack:1", now=T0 - dt.timedelta(hours=2))
        queue(session, "ack:2", now=T0 - dt.timedelta(minutes=30))
        queue(session, "ack:3", (ANA, "bob@example.com"), now=T0)
        queue(session, "ack:4", ("bob@example.com",), now=T0)
        queue(session, "reply:1", message=human, now=T0)
    with transaction(app.sessions) as session:
        since = T0 - dt.timedelta(hours=1)
        assert recent_auto_replies(session, "Ana.Garcia@EXAMPLE.com", since) == [
            T0 - dt.timedelta(minutes=30),
            T0,
        ]
        assert recent_auto_replies(session, "bob@example.com", since) == [T0, T0]
        assert recent_auto_replies(session, "nobody@example.com", since) == []
        assert recent_auto_replies(session, "not an address", since) == []


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    settings = OutboxSettings(backoff_initial_s=30, backoff_max_s=3600)
    delays = [backoff_delay(n, settings).total_seconds() for n in (1, 2, 3, 4, 7, 8, 10_000)]
    assert delays == [30, 60, 120, 240, 1920, 3600, 3600]


def test_a_lease_that_ran_out_hands_the_mail_to_the_next_attempt(app: App) -> None:
    lease = dt.timedelta(minutes=10)
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
    with transaction(app.sessions) as session:
        [first] = claim_due(session, T0, lease)
        assert first.attempt == 1 and first.recipients == (ANA,)
    with transaction(app.sessions) as session:
        assert claim_due(session, T0 + lease - dt.timedelta(seconds=1), lease) == []
    with transaction(app.sessions) as session:
        [second] = claim_due(session, T0 + lease, lease)
        assert second.attempt == 2
    later = T0 + lease + dt.timedelta(seconds=5)
    with transaction(app.sessions) as session:
        assert record_results(session, [(first, {})], later, OutboxSettings()) == [None]
    with transaction(app.sessions) as session:
        assert record_results(session, [(second, {})], later, OutboxSettings()) == [
            OutboxStatus.SENT
        ]
    [row] = rows(app)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, later)
    with transaction(app.sessions) as session:
        events = session.execute(select(Event.kind, Event.reason).order_by(Event.id)).all()
        statuses = session.scalars(select(OutboxRecipient.status)).all()
    assert [kind for kind, _ in events] == ["outbound.retry", "outbound.sent"]
    assert "attempt 1 left no result" in events[0][1]
    assert statuses == ["sent"]


def test_a_released_claim_is_due_again_as_it_was_unless_superseded(app: App) -> None:
    lease = dt.timedelta(minutes=10)
    with transaction(app.sessions) as session:
        queue(session, "ack:1")
    with transaction(app.sessions) as session:
        [first] = claim_due(session, T0, lease)
    with transaction(app.sessions) as session:
        release(session, [first])
    [row] = rows(app)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, first.due_at)
    with transaction(app.sessions) as session:
        [first] = claim_due(session, T0, lease)
    with transaction(app.sessions) as session:
        [second] = claim_due(session, T0 + lease, lease)
    with transaction(app.sessions) as session:
        release(session, [first])  # too late: the next attempt holds the row
    [row] = rows(app)
    assert (row.status, row.attempts, row.next_attempt_at) == ("sending", 2, T0 + 2 * lease)
    assert second.attempt == 2


def test_a_stored_row_naming_no_known_template_is_refused_before_rendering() -> None:
    row = Outbox(id=7, raw=None, template="../../etc/passwd", locale="en", context={}, envelope={})
    with pytest.raises(RenderError, match="neither bytes nor a template context"):
        materialize(None, row, renderer())  # type: ignore[arg-type]  # refused before any query

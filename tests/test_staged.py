"""Staged rows (written in bulk when their scope ends, gone with a refused savepoint) and
PostgreSQL ticket numbers fetched several at a time."""

from __future__ import annotations

import pytest
from conftest import T0
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailproc.app import App
from mailproc.config import Settings
from mailproc.core.events import EventKind
from mailproc.store.db import transaction
from mailproc.store.models import Event, MessageRecord, Ticket, TicketParticipant
from mailproc.store.repo import TicketKeys, record_event
from mailproc.store.staged import stage, staging, write_staged


def events(session: Session) -> list[tuple[int | None, str]]:
    return [(e.ticket_id, e.kind) for e in session.scalars(select(Event).order_by(Event.id))]


def new_ticket(number: int) -> Ticket:
    return Ticket(
        number=number, status="new", subject="s", received_at=T0, created_at=T0, updated_at=T0
    )


def test_staged_rows_are_written_when_the_scope_ends_with_their_tickets_ids(app: App) -> None:
    with transaction(app.sessions) as session:
        ticket = new_ticket(10001)
        session.add(ticket)  # not flushed: the staged rows learn its id when written
        with staging(session) as staged:
            record_event(session, T0, EventKind.TICKET_NOTE)
            stage(
                session,
                TicketParticipant,
                {"ticket_id": None, "address": "a@example.com", "role": "requester"},
                ticket,
            )
            assert len(staged) == 2 and events(session) == []
        assert ticket.id is not None
        assert events(session) == [(None, EventKind.TICKET_NOTE)]
        assert session.scalars(select(TicketParticipant.ticket_id)).all() == [ticket.id]


def test_a_refused_savepoint_takes_its_staged_rows_with_it(app: App) -> None:
    with transaction(app.sessions) as session:
        record_event(session, T0, EventKind.AGENT_COMMAND)  # outside a scope: written at once
        with pytest.raises(RuntimeError), session.begin_nested(), staging(session):
            record_event(session, T0, EventKind.TIMER_VOID)
            raise RuntimeError("the batch is refused")
        with session.begin_nested(), staging(session):
            record_event(session, T0, EventKind.CREDIT_RECORDED)
            write_staged(session)  # a query that must see them
            assert events(session)[-1] == (None, EventKind.CREDIT_RECORDED)
    with transaction(app.sessions, commit=False) as session:
        assert events(session) == [
            (None, EventKind.AGENT_COMMAND),
            (None, EventKind.CREDIT_RECORDED),
        ]


def test_postgresql_ticket_keys_come_in_chunks_and_never_twice(postgres_url: str) -> None:
    application = App(Settings.model_validate({"database": {"url": postgres_url}}))
    try:
        first, second = TicketKeys(), TicketKeys()
        with transaction(application.sessions) as session:
            start = session.scalar(select(func.nextval("ticket_number_seq")))
            start_id = session.scalar(select(func.nextval("tickets_id_seq")))
            assert start is not None and start_id is not None
            taken = [first.take(session, 5) for _ in range(5)]  # one chunk of five
            other = [second.take(session, 100) for _ in range(3)]  # a chunk of CHUNK
            more = [first.take(session, 1) for _ in range(2)]  # one, then one more
        numbers = [number for _, number in taken + other + more]
        ids = [ticket_id for ticket_id, _ in taken + other + more]
        assert numbers[:8] == list(range(start + 1, start + 9))
        assert numbers[8:] == [start + 6 + TicketKeys.CHUNK, start + 7 + TicketKeys.CHUNK]
        assert [ticket_id - start_id for ticket_id in ids] == [n - start for n in numbers]
    finally:
        application.close()


def test_many_staged_rows_keep_their_values_on_either_database(app: App) -> None:
    """Many rows of one statement go in one go (PostgreSQL: COPY) with the same values an
    INSERT would store: JSON, aware times, reserved-word columns, NULLs, non-ASCII text."""
    rows = [
        {
            "ticket_id": None,
            "direction": "out",
            "message_id": f"m{n}@example.com",
            "references": [f"r{n}@example.com", "x@example.com"],
            "to": [["Zoë", f"zoe{n}@example.com"]],
            "subject": f"Réponse n°{n}\ttab",
            "sent_at": T0 if n % 2 else None,
            "created_at": T0,
        }
        for n in range(5)
    ]
    with transaction(app.sessions) as session, staging(session):
        for row in rows:
            stage(session, MessageRecord, row)
    with transaction(app.sessions, commit=False) as session:
        stored = session.scalars(select(MessageRecord).order_by(MessageRecord.id)).all()
        assert [(m.message_id, m.references, m.to, m.subject, m.sent_at) for m in stored] == [
            (r["message_id"], r["references"], r["to"], r["subject"], r["sent_at"]) for r in rows
        ]
        assert {m.body_text for m in stored} == {""}  # column defaults still apply

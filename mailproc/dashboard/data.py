"""What the dashboard's pages show, read through a read-only engine.

On SQLite every writer transaction of mailproc begins with ``BEGIN IMMEDIATE``; the dashboard
reads in deferred transactions on connections with ``query_only`` set, so a page (a WAL
snapshot) never takes the write lock the listener and the worker queue for.
"""

from __future__ import annotations

import datetime as dt
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailproc.config import DatabaseSettings
from mailproc.store.db import make_engine
from mailproc.store.models import (
    Blob,
    Credit,
    Customer,
    Inbound,
    Outbox,
    RefundCaseRecord,
    Ticket,
)

PAGE_ROWS = 200


def reader_engine(settings: DatabaseSettings) -> Engine:
    """An engine for reads only: deferred, ``query_only`` transactions on SQLite."""
    if not settings.url.startswith("sqlite"):
        return make_engine(
            settings.url,
            settings.busy_timeout_ms,
            execution_options={"postgresql_readonly": True},
        )
    engine = create_engine(
        settings.url,
        connect_args={"timeout": settings.busy_timeout_ms / 1000, "check_same_thread": False},
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is ours, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
        cursor.execute("PRAGMA query_only = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no write lock

    return engine


def reader_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the read-only engine."""
    return sessionmaker(engine, expire_on_commit=False)


def customer_page(session: Session, customer_id: int) -> dict[str, Any] | None:
    """A customer with their tickets, survey answers, credits and refund cases."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    tickets = session.execute(
        select(
            Ticket.number,
            Ticket.status,
            Ticket.priority,
            Ticket.subject,
            Ticket.received_at,
            Ticket.survey_score,
            Ticket.survey_answered_at,
        )
        .where(Ticket.customer_id == customer_id)
        .order_by(Ticket.number.desc())
    ).all()
    numbers = {
        ticket_id: number
        for ticket_id, number in session.execute(
            select(Ticket.id, Ticket.number).where(Ticket.customer_id == customer_id)
        )
    }
    credits = session.scalars(
        select(Credit).where(Credit.customer_id == customer_id).order_by(Credit.id)
    ).all()
    refunds = session.scalars(
        select(RefundCaseRecord)
        .where(RefundCaseRecord.ticket_id.in_(numbers))
        .order_by(RefundCaseRecord.id)
    ).all()
    answers = sorted(
        (t for t in tickets if t.survey_score is not None and t.survey_answered_at is not None),
        key=lambda t: t.survey_answered_at,
    )
    return {
        "customer": customer,
        "tickets": tickets,
        "scores": [(f"{t.survey_answered_at:%d %b}", float(t.survey_score)) for t in answers],
        "credits": [(c, numbers.get(c.ticket_id or 0)) for c in credits],
        "refunds": [(r, numbers.get(r.ticket_id)) for r in refunds],
    }


def outbox_page(session: Session, now: dt.datetime) -> dict[str, Any]:
    """Mail that is stuck (failed, or retried and still waiting) and the latest mail."""
    recent = session.scalars(
        select(Outbox)
        .options(selectinload(Outbox.recipients))
        .order_by(Outbox.id.desc())
        .limit(PAGE_ROWS)
    ).all()
    stuck = session.scalars(
        select(Outbox)
        .options(selectinload(Outbox.recipients))
        .where(
            or_(
                Outbox.status == "failed",
                (Outbox.status != "sent") & (Outbox.attempts > 0),
                (Outbox.status == "pending")
                & (Outbox.next_attempt_at < now - dt.timedelta(minutes=15)),
            )
        )
        .order_by(Outbox.id.desc())
        .limit(PAGE_ROWS)
    ).all()
    ids = {row.ticket_id for row in (*recent, *stuck) if row.ticket_id}
    numbers = dict(
        session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids))).all()
    )
    return {"recent": recent, "stuck": stuck, "numbers": numbers}


def quarantine_page(session: Session) -> list[dict[str, Any]]:
    """Quarantined mail, newest first, with its sender, subject and why it failed."""
    rows = session.execute(
        select(Inbound, Blob.data)
        .join(Blob, Blob.sha256 == Inbound.raw_sha256)
        .where(Inbound.status == "quarantined")
        .order_by(Inbound.id.desc())
        .limit(PAGE_ROWS)
    ).all()
    parser = BytesHeaderParser(policy=default_policy)
    result = []
    for inbound, data in rows:
        try:
            headers = parser.parsebytes(data[:65536])
            subject, sender = str(headers.get("Subject", "")), str(headers.get("From", ""))
        except Exception:  # a header that cannot even be read is shown as missing
            subject = sender = ""
        result.append({"inbound": inbound, "subject": subject, "from": sender})
    return result

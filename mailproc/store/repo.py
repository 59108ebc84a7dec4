"""Queries and writes the application needs, so that SQL stays in the store layer."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from mailproc.core import model
from mailproc.core.events import EventKind
from mailproc.store.models import (
    AppSecret,
    Blob,
    Customer,
    CustomerAddress,
    Event,
    Inbound,
    Ticket,
    UndeliverableAddress,
)
from mailproc.store.staged import insert_new_only, stage

TICKET_NUMBER_START = 10001


def to_core_customer(row: Customer) -> model.Customer:
    """The core view of a customer row."""
    return model.Customer(
        id=row.id,
        company=row.company,
        contact_name=row.contact_name,
        emails=tuple(a.address for a in row.addresses),
        plan=model.Plan(row.plan),
        country=row.country,
        language=row.language,
        timezone=row.timezone,
        satisfaction_score=row.satisfaction_score,
        churn_risk=row.churn_risk,
        last_support_ticket=row.last_support_ticket,
        signup_date=row.signup_date,
        business_hours=row.business_hours,
        price_lock_until=row.price_lock_until,
    )


def customer_by_address(session: Session, address: str | None) -> Customer | None:
    """The customer owning a normalized address, if any."""
    if not address:
        return None
    return session.scalars(
        select(Customer).join(CustomerAddress).where(CustomerAddress.address == address)
    ).first()


def claim_pending(session: Session, limit: int) -> Sequence[tuple[Inbound, bytes]]:
    """Lock up to ``limit`` pending rows that no other worker holds; return them with raw bytes."""
    ids = session.scalars(
        select(Inbound.id)
        .where(Inbound.status == model.InboundStatus.PENDING)
        .order_by(Inbound.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return load_with_raw(session, ids)


def peek_pending(session: Session, after_id: int, limit: int) -> Sequence[tuple[Inbound, bytes]]:
    """The next pending rows after ``after_id`` with their raw bytes, without locking them."""
    ids = session.scalars(
        select(Inbound.id)
        .where(Inbound.status == model.InboundStatus.PENDING, Inbound.id > after_id)
        .order_by(Inbound.id)
        .limit(limit)
    ).all()
    return load_with_raw(session, ids)


def load_with_raw(session: Session, ids: Iterable[int]) -> Sequence[tuple[Inbound, bytes]]:
    """Inbound rows with their raw bytes, in id order."""
    id_list = list(ids)
    if not id_list:
        return []
    rows = session.execute(
        select(Inbound, Blob.data)
        .join(Blob, Blob.sha256 == Inbound.raw_sha256)
        .where(Inbound.id.in_(id_list))
        .order_by(Inbound.id)
    ).all()
    return list(rows)


def next_ticket_number(session: Session) -> int:
    """The number after the highest ticket number (SQLite: one writer at a time)."""
    highest = session.execute(select(func.max(Ticket.number))).scalar_one()
    return TICKET_NUMBER_START if highest is None else int(highest) + 1


class TicketKeys:
    """Hands out PostgreSQL ticket ids and numbers, fetched from their sequences in chunks.

    With its id known up front a new ticket is inserted without RETURNING, so the ORM sends
    a batch's tickets as one prepared ``executemany`` (psycopg re-parses a long multi-row
    ``INSERT … RETURNING`` every time). A worker keeps its chunk for its lifetime, so a busy
    batch costs one round trip per ``CHUNK`` new tickets. Keys still held when the process
    ends are never used: a small gap, as a sequence may leave after any rollback.
    """

    CHUNK = 64

    def __init__(self) -> None:
        self._spare: deque[tuple[int, int]] = deque()

    def take(self, session: Session, at_most: int) -> tuple[int, int]:
        """The next (id, number); when none is held, fetch up to ``at_most`` (the batch's need)."""
        if not self._spare:
            count = max(1, min(at_most, self.CHUNK))
            self._spare.extend(
                (int(ticket_id), int(number))
                for ticket_id, number in session.execute(
                    text(
                        "SELECT nextval(pg_get_serial_sequence('tickets', 'id')), "
                        "nextval('ticket_number_seq') FROM generate_series(1, :n)"
                    ),
                    {"n": count},
                )
            )
        return self._spare.popleft()


def ticket_by_number(session: Session, number: int) -> Ticket | None:
    """The ticket with this number."""
    return session.scalars(select(Ticket).where(Ticket.number == number)).first()


def record_event(
    session: Session,
    at: dt.datetime,
    kind: EventKind,
    reason: str = "",
    *,
    ticket: Ticket | None = None,
    ticket_id: int | None = None,
    inbound_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one event to the audit log: the one way every module records what happened.

    ``ticket`` may still lack its id (a ticket opened in this batch): the id is filled in
    when the staged row is written (in bulk inside a ``staging`` scope, at once outside one).
    """
    stage(
        session,
        Event,
        {
            "ticket_id": ticket_id,
            "inbound_id": inbound_id,
            "at": at,
            "kind": str(kind),
            "reason": reason,
            "detail": dict(detail or {}),
        },
        ticket,
    )


def shared_secret(session: Session, name: str, now: dt.datetime) -> str:
    """A random secret stored once in the database and shared by every process."""
    session.execute(
        insert_new_only(session, AppSecret).values(
            name=name, value=secrets.token_urlsafe(32), created_at=now
        )
    )
    return session.scalars(select(AppSecret.value).where(AppSecret.name == name)).one()


def clear_undeliverable(session: Session, addresses: Collection[str]) -> None:
    """Forget that our mail bounced from these addresses (mail from them, or to them, got
    through since)."""
    if addresses:
        session.execute(
            delete(UndeliverableAddress).where(UndeliverableAddress.address.in_(sorted(addresses)))
        )

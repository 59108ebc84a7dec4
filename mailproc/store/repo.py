"""Queries and writes the application needs, so that SQL stays in the store layer."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from mailproc.core import model
from mailproc.intake import insert_ignoring_duplicates
from mailproc.store.models import (
    AppSecret,
    Blob,
    Customer,
    CustomerAddress,
    Event,
    Inbound,
    MessageRecord,
    Ticket,
    TicketParticipant,
)

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


def tickets_by_message_ids(session: Session, message_ids: Iterable[str]) -> dict[str, int]:
    """Map each known Message-ID (inbound or outbound) to the ticket id it belongs to."""
    wanted = list(dict.fromkeys(message_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(MessageRecord.message_id, MessageRecord.ticket_id).where(
            MessageRecord.message_id.in_(wanted), MessageRecord.ticket_id.is_not(None)
        )
    ).all()
    return {mid: tid for mid, tid in rows if mid is not None and tid is not None}


def message_by_message_id(session: Session, message_id: str) -> MessageRecord | None:
    """The first inbound message stored with this Message-ID."""
    return session.scalars(
        select(MessageRecord)
        .where(MessageRecord.message_id == message_id, MessageRecord.direction == "in")
        .order_by(MessageRecord.id)
    ).first()


def next_ticket_number(session: Session) -> int:
    """A new human-friendly ticket number (a sequence on PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(text("SELECT nextval('ticket_number_seq')")).scalar_one())
    highest = session.execute(select(func.max(Ticket.number))).scalar_one()
    return TICKET_NUMBER_START if highest is None else int(highest) + 1


def ticket_by_number(session: Session, number: int) -> Ticket | None:
    """The ticket with this number."""
    return session.scalars(select(Ticket).where(Ticket.number == number)).first()


def add_participants(session: Session, ticket_id: int, addresses: dict[str, str]) -> None:
    """Record addresses (address → role) on a ticket, keeping roles already recorded."""
    if not addresses:
        return
    known = set(
        session.scalars(
            select(TicketParticipant.address).where(
                TicketParticipant.ticket_id == ticket_id,
                TicketParticipant.address.in_(list(addresses)),
            )
        )
    )
    for address, role in addresses.items():
        if address not in known:
            session.add(TicketParticipant(ticket_id=ticket_id, address=address, role=role))


def record_event(
    session: Session,
    at: dt.datetime,
    kind: str,
    reason: str = "",
    *,
    ticket_id: int | None = None,
    inbound_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event to the audit log."""
    session.add(
        Event(
            ticket_id=ticket_id,
            inbound_id=inbound_id,
            at=at,
            kind=kind,
            reason=reason,
            detail=detail or {},
        )
    )


def shared_secret(session: Session, name: str, now: dt.datetime) -> str:
    """A random secret stored once in the database and shared by every process."""
    session.execute(
        insert_ignoring_duplicates(session, AppSecret).values(
            name=name, value=secrets.token_urlsafe(32), created_at=now
        )
    )
    return session.scalars(select(AppSecret.value).where(AppSecret.name == name)).one()

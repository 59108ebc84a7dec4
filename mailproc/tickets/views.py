"""Read models for the CLI: tickets, their messages and events, inbound and quarantine rows."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailproc.core.parse import header_summary
from mailproc.store import repo
from mailproc.store.models import (
    AttachmentRecord,
    Blob,
    Event,
    Inbound,
    Incident,
    MessageRecord,
    Ticket,
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def zone_of(name: str) -> ZoneInfo:
    """The time zone ``name``, or UTC when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """The fields a ticket listing shows."""
    customer = ticket.customer
    return {
        "id": ticket.id,
        "number": ticket.number,
        "status": ticket.status,
        "assignee": ticket.assignee,
        "subject": ticket.subject,
        "customer_id": customer.id if customer else None,
        "company": customer.company if customer else None,
        "plan": customer.plan if customer else None,
        "requester": ticket.requester,
        "unknown_customer": ticket.unknown_customer,
        "priority": ticket.priority,
        "intent": ticket.intent,
        "needs_triage": ticket.needs_triage,
        "locale": ticket.locale,
        "translation_requested": ticket.translation_requested,
        "received_at": _iso(ticket.received_at),
        "first_response_due": _iso(ticket.first_response_due),
        "resolution_due": _iso(ticket.resolution_due),
        "updated_at": _iso(ticket.updated_at),
    }


def ticket_detail(session: Session, number: int) -> dict[str, Any] | None:
    """Everything about one ticket: summary, messages with attachments, events."""
    ticket = repo.ticket_by_number(session, number)
    if ticket is None:
        return None
    parent_number = (
        session.scalar(select(Ticket.number).where(Ticket.id == ticket.parent_ticket_id))
        if ticket.parent_ticket_id
        else None
    )
    messages = session.scalars(
        select(MessageRecord)
        .where(MessageRecord.ticket_id == ticket.id)
        .options(selectinload(MessageRecord.attachments))
        .order_by(MessageRecord.id)
    ).all()
    events = session.scalars(
        select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id)
    ).all()
    detail = ticket_summary(ticket)
    zone = zone_of(ticket.customer.timezone if ticket.customer else "UTC")
    detail["timezone"] = zone.key
    detail["local_times"] = {
        name: _iso(value.astimezone(zone)) if value else None
        for name, value in (
            ("received_at", ticket.received_at),
            ("first_response_due", ticket.first_response_due),
            ("resolution_due", ticket.resolution_due),
            ("triage_due", ticket.triage_due),
        )
    }
    detail["triage_reason"] = ticket.triage_reason
    detail["triage_due"] = _iso(ticket.triage_due)
    detail["classified_at"] = _iso(ticket.classified_at)
    detail["classification"] = ticket.classification
    detail["sla"] = ticket.sla
    detail["parent_ticket"] = parent_number
    detail["messages"] = [
        {
            "id": m.id,
            "direction": m.direction,
            "message_id": m.message_id,
            "inbound_id": m.inbound_id,
            "from": m.from_address,
            "from_name": m.from_name,
            "subject": m.subject,
            "sent_at": _iso(m.sent_at),
            "body_source": m.body_source,
            "new_text": m.new_text,
            "defects": m.defects,
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                }
                for a in m.attachments
            ],
        }
        for m in messages
    ]
    detail["events"] = [event_view(e) for e in events]
    return detail


def ticket_attachments(session: Session, number: int) -> list[tuple[str, bytes]] | None:
    """Every stored attachment of a ticket's mail (filename, bytes), oldest first; None when
    there is no such ticket."""
    ticket = session.scalars(select(Ticket.id).where(Ticket.number == number)).first()
    if ticket is None:
        return None
    rows = session.execute(
        select(AttachmentRecord.filename, Blob.data)
        .join(MessageRecord, MessageRecord.id == AttachmentRecord.message_pk)
        .join(Blob, Blob.sha256 == AttachmentRecord.sha256)
        .where(MessageRecord.ticket_id == ticket)
        .order_by(AttachmentRecord.id)
    ).all()
    return [(filename, data) for filename, data in rows]


def event_view(event: Event) -> dict[str, Any]:
    """One audit-log entry."""
    return {
        "at": _iso(event.at),
        "kind": event.kind,
        "reason": event.reason,
        "detail": event.detail,
    }


def inbound_view(row: Inbound) -> dict[str, Any]:
    """One stored raw message with its envelope and processing state."""
    return {
        "id": row.id,
        "status": row.status,
        "message_id": row.message_id,
        "message_id_conflict": row.message_id_conflict,
        "source": row.source,
        "source_ref": row.source_ref,
        "envelope_from": row.envelope_from,
        "envelope_to": row.envelope_to,
        "received_at": _iso(row.received_at),
        "size": row.size,
        "sha256": row.raw_sha256,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "kind": row.kind,
        "kind_reason": row.kind_reason,
        "quarantined_at": _iso(row.quarantined_at),
        "imported_at": _iso(row.imported_at),  # a history import (``ingest --history``)
        "promoted_at": _iso(row.promoted_at),  # bulk or spam promoted (``inbound promote``)
    }


def list_inbound(
    session: Session, status: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    """Stored raw messages, newest first, filtered by status and kind."""
    query = select(Inbound).order_by(Inbound.id.desc())
    if status:
        query = query.where(Inbound.status == status)
    if kind:
        query = query.where(Inbound.kind == kind)
    return [inbound_view(row) for row in session.scalars(query)]


def inbound_headlines(session: Session, inbound_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Sender address and subject of stored messages: as parsed, else from their raw header."""
    found: dict[int, tuple[str, str]] = {}
    for inbound_id, name, address, subject in session.execute(
        select(
            MessageRecord.inbound_id,
            MessageRecord.from_name,
            MessageRecord.from_address,
            MessageRecord.subject,
        ).where(MessageRecord.inbound_id.in_(inbound_ids))
    ):
        if inbound_id is not None:
            found[inbound_id] = (address or name, subject)
    unparsed = [i for i in inbound_ids if i not in found]
    for row, raw in repo.load_with_raw(session, unparsed):
        sender, subject = header_summary(raw)
        found[row.id] = (parseaddr(sender)[1] or sender, subject)
    return found


def inbound_events(session: Session, inbound_id: int) -> list[dict[str, Any]]:
    """The audit-log entries of one inbound message."""
    events = session.scalars(
        select(Event).where(Event.inbound_id == inbound_id).order_by(Event.id)
    ).all()
    return [event_view(e) for e in events]


def list_incidents(session: Session) -> list[dict[str, Any]]:
    """Incidents, newest first, with the numbers of their tickets."""
    incidents = session.scalars(select(Incident).order_by(Incident.id.desc())).all()
    numbers: dict[int, list[int]] = {}
    for incident_id, number in session.execute(
        select(Ticket.incident_id, Ticket.number).where(Ticket.incident_id.is_not(None))
    ).all():
        if incident_id is not None:
            numbers.setdefault(incident_id, []).append(number)
    return [
        {
            "id": i.id,
            "code": i.code,
            "status": i.status,
            "started_at": _iso(i.started_at),
            "resolved_at": _iso(i.resolved_at),
            "tickets": sorted(numbers.get(i.id, [])),
        }
        for i in incidents
    ]

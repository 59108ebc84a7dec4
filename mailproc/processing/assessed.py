"""A new ticket's assessment written down: priority, intent, triage and due times on the ticket,
and the events that explain them (the rules that fired, the SLA row and calendar)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from mailproc.core.assess import Assessment, sla_record
from mailproc.core.classify import Classification
from mailproc.core.events import EventKind
from mailproc.store.models import Ticket
from mailproc.store.repo import record_event


def record_assessment(
    session: Session, ticket: Ticket, inbound_id: int, assessment: Assessment, now: dt.datetime
) -> Classification:
    """Set the ticket's classification and due times from ``assessment``; log why."""
    found, deadlines = assessment.classification, assessment.deadlines
    ticket.priority = found.priority.value
    ticket.intent = found.intent.value
    ticket.needs_triage = found.needs_triage
    ticket.triage_reason = found.triage_reason
    ticket.triage_due = assessment.triage_due
    ticket.classified_at = now
    ticket.first_response_due = deadlines.first_response_due
    ticket.resolution_due = deadlines.resolution_due
    ticket.classification = assessment.classification_record()
    ticket.sla = sla_record(deadlines)
    seconds = (now - ticket.received_at).total_seconds()
    record_event(
        session,
        now,
        EventKind.TICKET_CLASSIFIED,
        assessment.explain_priority(),
        ticket=ticket,
        inbound_id=inbound_id,
        detail={**ticket.classification, "seconds_after_receipt": seconds},
    )
    record_event(
        session,
        now,
        EventKind.TICKET_SLA,
        "; ".join(deadlines.explanation),
        ticket=ticket,
        inbound_id=inbound_id,
        detail={
            "sla_row": deadlines.sla_row,
            "calendar": deadlines.calendar_description,
            "first_response_due": deadlines.first_response_due.isoformat(),
            "resolution_due": deadlines.resolution_due.isoformat()
            if deadlines.resolution_due
            else None,
        },
    )
    if found.needs_triage and assessment.triage_due is not None:
        record_event(
            session,
            now,
            EventKind.TICKET_TRIAGE_NEEDED,
            f"{found.triage_reason}; Support Manager escalation due by "
            f"{assessment.triage_due.isoformat()}",
            ticket=ticket,
            inbound_id=inbound_id,
            detail={"triage_due": assessment.triage_due.isoformat()},
        )
    return found


def record_history_assessment(
    session: Session, ticket: Ticket, inbound_id: int, assessment: Assessment, now: dt.datetime
) -> None:
    """A history ticket's priority and intent, for the record: no SLA clock, no triage."""
    found = assessment.classification
    ticket.priority = found.priority.value
    ticket.intent = found.intent.value
    ticket.classified_at = now
    ticket.classification = assessment.classification_record()
    record_event(
        session,
        now,
        EventKind.TICKET_CLASSIFIED,
        f"{assessment.explain_priority()}; history import: already handled, no SLA clock",
        ticket=ticket,
        inbound_id=inbound_id,
        detail=ticket.classification,
    )

"""Incidents (§4.3): P0 tickets of several customers with the same error code linked into one
incident (DevOps alerted); resolving it resolves every linked ticket and tells its customer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.escalation import P0Report, incident_decision
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.model import Priority
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.contexts import (
    IncidentAlertContext,
    IncidentNoticeContext,
    IncidentResolvedContext,
    IncidentTicket,
)
from mailproc.store.models import Incident, Ticket
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only
from mailproc.tickets.ops import OPEN_STATUSES, resolve
from mailproc.workflows.context import CheckSummary, WorkflowContext

INCIDENT_LOOKBACK = dt.timedelta(hours=24)


def detect_incidents(
    ctx: WorkflowContext,
    session: Session,
    now: dt.datetime,
    dry_run: bool = False,
    summary: CheckSummary | None = None,
) -> None:
    """Link P0 tickets of several customers with the same error code into one incident.

    The look-back period's P0 tickets are read as plain columns; an incident already
    recorded with every ticket linked to it (an earlier batch's work) is left alone.
    """
    rows = session.execute(
        select(
            Ticket.number,
            Ticket.customer_id,
            Ticket.classification,
            Ticket.received_at,
            Ticket.incident_id,
        )
        .where(
            Ticket.priority == Priority.P0,
            Ticket.received_at >= now - INCIDENT_LOOKBACK,
            Ticket.imported_at.is_(None),  # history imports: no incident, no notices
        )
        .order_by(Ticket.received_at)
    ).all()
    reports = [
        P0Report(row.number, row.customer_id, code, row.received_at)
        for row in rows
        for code in (row.classification.get("error_codes") or [])[:1]
    ]
    incident_of = {row.number: row.incident_id for row in rows}
    settings = ctx.settings.incidents
    decided = incident_decision(
        reports, dt.timedelta(minutes=settings.window_minutes), settings.min_customers
    )
    found = [(incident, keys.timed(incident.devops_key)) for incident in decided]
    if not found:
        return
    stored: dict[str, int] = {
        key: id_
        for key, id_ in session.execute(
            select(Incident.key, Incident.id).where(Incident.key.in_([k for _, k in found]))
        )
    }
    for incident, key in found:
        if summary is not None:
            summary.incidents.append(
                f"incident {incident.code}: tickets {', '.join(map(str, incident.tickets))}"
            )
        if dry_run or (
            key in stored and all(incident_of[n] == stored[key] for n in incident.tickets)
        ):
            continue
        session.execute(
            insert_new_only(session, Incident),
            {
                "key": key,
                "code": incident.code,
                "started_at": incident.started_at,
                "status": "open",
                "summary": "",
            },
        )
        record = session.scalars(select(Incident).where(Incident.key == key)).one()
        by_number = {
            t.number: t
            for t in session.scalars(select(Ticket).where(Ticket.number.in_(incident.tickets)))
        }
        linked = [by_number[n] for n in incident.tickets if n in by_number]
        for ticket in linked:
            if ticket.incident_id is None:
                ticket.incident_id = record.id
                record_event(
                    session,
                    now,
                    EventKind.INCIDENT_LINKED,
                    f"linked to incident {record.id} ({incident.code}): {incident.reason}",
                    ticket=ticket,
                )
                _tell_customer(ctx, session, record, ticket, now)
        entry = ctx.notifier.catalog.get(incident.code)
        devops = ctx.notifier.role_recipients(AgentRole.DEVOPS)
        if devops and linked:
            ctx.notifier.queue(
                session,
                key=keys.incident_alert(incident.devops_key),
                ticket=linked[0],
                locale="en",
                to=devops,
                automatic=AutoSubmitted.AUTO_GENERATED,
                now=now,
                context=IncidentAlertContext(
                    code=incident.code,
                    title=entry.title("en") if entry else None,
                    started_at=incident.started_at,
                    tickets=tuple(
                        IncidentTicket(
                            t.number,
                            t.customer.company if t.customer else t.requester or "",
                            t.received_at,
                        )
                        for t in linked
                    ),
                    customer_count=len({t.customer_id for t in linked if t.customer_id}),
                    devops_due=incident.started_at + dt.timedelta(minutes=30),
                ),
            )


def resolve_incident(
    ctx: WorkflowContext, session: Session, incident: Incident, summary_text: str, now: dt.datetime
) -> list[int]:
    """Resolve an incident: every linked ticket is resolved and its customer updated."""
    incident.status, incident.resolved_at, incident.summary = "resolved", now, summary_text
    tickets = session.scalars(
        select(Ticket).where(Ticket.incident_id == incident.id).order_by(Ticket.number)
    ).all()
    status_page = ctx.settings.incidents.status_page
    for ticket in tickets:
        if ticket.status in OPEN_STATUSES:
            resolve(ticket, now)
        told = ctx.notifier.customer_mail(
            session,
            ticket,
            key=keys.incident_resolved(incident.id, customer_key(ticket)),
            now=now,
            context_for=lambda c, t: IncidentResolvedContext(
                c, t, incident.code, now, summary_text, status_page=status_page
            ),
        )
        record_event(
            session,
            now,
            EventKind.INCIDENT_RESOLVED,
            f"incident {incident.id} ({incident.code}) resolved; "
            + ("customer updated" if told else "customer already updated on another ticket"),
            ticket=ticket,
        )
    return [t.number for t in tickets]


def customer_key(ticket: Ticket) -> str:
    """Who an incident's customer mail goes to once: the customer, or an unknown requester."""
    return f"customer-{ticket.customer_id}" if ticket.customer_id else (ticket.requester or "")


def _tell_customer(
    ctx: WorkflowContext, session: Session, incident: Incident, ticket: Ticket, now: dt.datetime
) -> None:
    """A ticket joined an incident: its customer learns we know, once per incident (§4.3)."""
    status_page = ctx.settings.incidents.status_page
    if ctx.notifier.customer_mail(
        session,
        ticket,
        key=keys.incident_notice(incident.id, customer_key(ticket)),
        now=now,
        context_for=lambda c, t: IncidentNoticeContext(
            c, t, incident.code, incident.started_at, status_page
        ),
    ):
        record_event(
            session,
            now,
            EventKind.INCIDENT_NOTICE,
            f"customer told of incident {incident.id} ({incident.code}); updates on {status_page}",
            ticket=ticket,
        )

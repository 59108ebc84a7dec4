"""Changes to existing tickets that move their SLA clock, each explained in the event log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core.assess import recompute, sla_record
from mailproc.core.events import EventKind
from mailproc.core.model import Priority, TicketStatus
from mailproc.core.sla import Pause, SlaPolicy
from mailproc.store import repo
from mailproc.store.models import Ticket

OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.WAITING)


def pauses_of(ticket: Ticket) -> tuple[Pause, ...]:
    """The ticket's waiting-on-customer periods, from its stored history."""
    return tuple(
        Pause(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end) if end else None)
        for start, end in ticket.sla_pauses
        if start
    )


def recompute_deadlines(
    session: Session, ticket: Ticket, policy: SlaPolicy, now: dt.datetime, why: str
) -> None:
    """Recompute a ticket's due times from its receipt, priority, plan and pauses; log why."""
    customer = repo.to_core_customer(ticket.customer) if ticket.customer else None
    deadlines = recompute(
        ticket.received_at, Priority(ticket.priority or "P3"), customer, policy, pauses_of(ticket)
    )
    before = (ticket.first_response_due, ticket.resolution_due)
    ticket.first_response_due = deadlines.first_response_due
    ticket.resolution_due = deadlines.resolution_due
    ticket.sla = sla_record(deadlines)
    ticket.updated_at = now
    repo.record_event(
        session,
        now,
        EventKind.TICKET_SLA_RECOMPUTED,
        f"{why}; " + "; ".join(deadlines.explanation),
        ticket_id=ticket.id,
        detail={
            "before": [v.isoformat() if v else None for v in before],
            "first_response_due": deadlines.first_response_due.isoformat(),
            "resolution_due": deadlines.resolution_due.isoformat()
            if deadlines.resolution_due
            else None,
            "sla_row": deadlines.sla_row,
        },
    )


def change_priority(
    session: Session,
    ticket: Ticket,
    priority: Priority,
    policy: SlaPolicy,
    now: dt.datetime,
    actor: str,
) -> bool:
    """Set a new priority and recompute the due times; False when nothing changed."""
    if ticket.priority == priority.value:
        return False
    old = ticket.priority or "none"
    ticket.priority = priority.value
    recompute_deadlines(session, ticket, policy, now, f"priority {old} → {priority} by {actor}")
    return True


def recompute_for_plan_change(
    session: Session,
    customer_id: int,
    old_plan: str,
    new_plan: str,
    policy: SlaPolicy,
    now: dt.datetime,
) -> int:
    """Recompute the open tickets of a customer whose plan changed; return how many."""
    tickets = session.scalars(
        select(Ticket).where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_STATUSES))
    ).all()
    for ticket in tickets:
        recompute_deadlines(
            session, ticket, policy, now, f"customer {customer_id} plan {old_plan} → {new_plan}"
        )
    return len(tickets)


def start_waiting(session: Session, ticket: Ticket, policy: SlaPolicy, now: dt.datetime) -> None:
    """The ticket waits on the customer from now: status, an open pause, the clock held."""
    ticket.status = TicketStatus.WAITING
    if not ticket.sla_pauses or ticket.sla_pauses[-1][1] is not None:
        ticket.sla_pauses = [*ticket.sla_pauses, [now.isoformat(), None]]
        if policy.pause_resolution and ticket.priority:
            recompute_deadlines(session, ticket, policy, now, "waiting on the customer")


def end_waiting(session: Session, ticket: Ticket, policy: SlaPolicy, now: dt.datetime) -> None:
    """The customer answered: back to open, the pause closed and the due times re-timed."""
    ticket.status = TicketStatus.OPEN
    if ticket.sla_pauses and ticket.sla_pauses[-1][1] is None:
        start = ticket.sla_pauses[-1][0]
        ticket.sla_pauses = [*ticket.sla_pauses[:-1], [start, now.isoformat()]]
        if policy.pause_resolution and ticket.priority:
            recompute_deadlines(session, ticket, policy, now, "the customer replied: pause ended")


def resolve(ticket: Ticket, now: dt.datetime, status: TicketStatus = TicketStatus.RESOLVED) -> None:
    """Mark a ticket resolved (or closed); an open waiting pause ends with it."""
    ticket.status = status
    ticket.resolved_at = ticket.resolved_at or now
    if status is TicketStatus.CLOSED:
        ticket.closed_at = now
    if ticket.sla_pauses and ticket.sla_pauses[-1][1] is None:
        start = ticket.sla_pauses[-1][0]
        ticket.sla_pauses = [*ticket.sla_pauses[:-1], [start, now.isoformat()]]

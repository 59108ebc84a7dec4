"""What customers are promised (§3.1, §5.2): due times with durations that agree with them,
and promised updates kept (each starts a timer; the Support Manager is told if none came).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.assess import unknown_customer
from mailproc.core.escalation import TimerKind
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.model import Priority
from mailproc.core.sla import ClockMode, Promise, customer_calendar, sla_promise, update_promise
from mailproc.outbound.contexts import UpdateOverdueAlertContext
from mailproc.store.models import Outbox, Ticket, Timer
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only, stage_statement
from mailproc.workflows.context import WorkflowContext
from mailproc.workflows.mail import core_customer

# Mail in which our staff (not a machine) writes to the customer: what keeps a promised update.
STAFF_MAIL = ("agent_reply", "resolved_notice", "incident_resolved")


def _hours(ticket: Ticket, name: str, default: float) -> dt.timedelta:
    return dt.timedelta(hours=float(ticket.sla.get(name, default)))


def _clock(ticket: Ticket) -> tuple[str, dt.datetime]:
    """The clock the ticket was timed with and its start (tickets timed before clock modes
    counted working hours)."""
    start = ticket.sla.get("clock_start")
    return (
        str(ticket.sla.get("clock", ClockMode.BUSINESS_HOURS.value)),
        dt.datetime.fromisoformat(start) if start else ticket.received_at,
    )


def first_response_promise(ticket: Ticket, made_at: dt.datetime) -> Promise:
    """The first response as Template 1 states it (and Template 3 recalls it)."""
    clock, start = _clock(ticket)
    target = _hours(ticket, "first_response_target_hours", 24)
    return sla_promise(clock, made_at, start, target, ticket.first_response_due or made_at)


def resolution_promise(ticket: Ticket, made_at: dt.datetime) -> Promise:
    """The estimated resolution time Template 1 states (§3.1)."""
    clock, start = _clock(ticket)
    target = _hours(ticket, "resolution_target_hours", 72)
    return sla_promise(clock, made_at, start, target, ticket.resolution_due or made_at)


def next_update(
    ctx: WorkflowContext, ticket: Ticket, now: dt.datetime, within: dt.timedelta
) -> Promise:
    """An update promised ``within`` from now, on the customer's calendar for the ticket."""
    customer = core_customer(ticket) or unknown_customer(ctx.sla)
    calendar, _notes = customer_calendar(customer, Priority(ticket.priority or "P3"), ctx.sla)
    return update_promise(calendar, ctx.sla, now, within)


def keep_promise(
    session: Session, ticket: Ticket, promise: Promise, what: str, now: dt.datetime
) -> None:
    """Start the timer of a promised update: it alerts the manager if no staff mail came."""
    reason = f"{what} promised an update by {promise.due.isoformat()}"
    stage_statement(
        session,
        insert_new_only(session, Timer),
        {
            "key": keys.timed((ticket.number, TimerKind.UPDATE.value, promise.due)),
            "ticket_id": ticket.id,
            "kind": TimerKind.UPDATE.value,
            "due_at": promise.due,
            "team": AgentRole.SUPPORT_MANAGER.value,
            "notify_roles": [],
            "priority": ticket.priority or "P3",
            "reason": reason,
            "status": "pending",
            "made_at": now,
        },
    )
    record_event(
        session,
        now,
        EventKind.TIMER_SCHEDULED,
        reason,
        ticket=ticket,
        detail={"timer": TimerKind.UPDATE.value, "due_at": promise.due.isoformat()},
    )


def customer_updated_at(session: Session, ticket: Ticket) -> dt.datetime | None:
    """When our staff last wrote to the customer of ``ticket`` (queued), if ever."""
    return session.scalar(
        select(func.max(Outbox.created_at)).where(
            Outbox.ticket_id == ticket.id, Outbox.template.in_(STAFF_MAIL)
        )
    )


def update_overdue(
    ctx: WorkflowContext, session: Session, ticket: Ticket, timer: Timer, now: dt.datetime
) -> None:
    """A promised update did not come: the Support Manager is told, once per promise."""
    made_at = timer.made_at or timer.due_at
    sent = ctx.notifier.internal_mail(
        session,
        ticket,
        key=keys.update_overdue(timer.key),
        to=ctx.notifier.role_recipients(AgentRole.SUPPORT_MANAGER),
        now=now,
        context_for=lambda c, t: UpdateOverdueAlertContext(
            c, t, made_at, timer.due_at, timezone=c.timezone
        ),
    )
    if sent:
        record_event(
            session,
            now,
            EventKind.SLA_UPDATE_OVERDUE,
            f"no staff mail since the promise of {made_at.isoformat()}; the manager is told",
            ticket=ticket,
        )

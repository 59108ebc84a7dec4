"""The breach notifier (§3.2): a missed first response gets the customer an apology (and a
credit), and the Support Manager an alert; a missed resolution, an alert.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.breach import BreachKind, SlaState, breach_notices
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.model import TicketStatus
from mailproc.outbound.contexts import (
    BreachAlertContext,
    ResolutionAlertContext,
    SlaBreachApologyContext,
)
from mailproc.store.models import Ticket
from mailproc.store.repo import record_event
from mailproc.tickets.ops import OPEN_STATUSES
from mailproc.workflows.context import CheckSummary, WorkflowContext
from mailproc.workflows.mail import ContextFor


def send_breach_notices(
    ctx: WorkflowContext, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
) -> None:
    """First response or resolution overdue: apology + credit, and manager alerts (§3.2)."""
    tickets = session.scalars(
        select(Ticket).where(
            Ticket.status.in_(OPEN_STATUSES),
            (
                (Ticket.first_responded_at.is_(None) & (Ticket.first_response_due < now))
                | (Ticket.resolution_due < now)
            ),
        )
    ).all()
    credit = Decimal(str(ctx.settings.credits.sla_breach))
    for ticket in tickets:
        assert ticket.first_response_due is not None
        state = SlaState(
            ticket.number,
            TicketStatus(ticket.status),
            ticket.first_response_due,
            ticket.first_responded_at,
            ticket.resolution_due,
            ticket.resolved_at,
        )
        for notice in breach_notices(state, now, apology_credit=credit or None):
            key = keys.timed(notice.key)
            line = f"#{ticket.number} {notice.kind}: {notice.reason}"
            if dry_run:
                summary.breaches.append(line)
                continue
            sent = _breach(
                ctx,
                session,
                ticket,
                notice.kind,
                key,
                notice.due_at,
                notice.overdue_by,
                notice.credit,
                now,
            )
            if sent:  # a notice sent by an earlier run is not listed again
                summary.breaches.append(line)


def _breach(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    kind: BreachKind,
    key: str,
    due_at: dt.datetime,
    overdue_by: dt.timedelta,
    credit: Decimal | None,
    now: dt.datetime,
) -> bool:
    """Queue one breach notice; False when ``key`` was sent before (by an earlier run)."""
    target = dt.timedelta(hours=float(ticket.sla.get("first_response_target_hours", 24)))
    resolution = dt.timedelta(hours=float(ticket.sla.get("resolution_target_hours", 72)))
    money = ctx.notifier.money(credit) if credit is not None else None
    manager = ctx.settings.company.support_manager_name
    if kind is BreachKind.SLA_BREACH_APOLOGY:
        sent = ctx.notifier.customer_mail(
            session,
            ticket,
            key=key,
            now=now,
            context_for=lambda c, t: SlaBreachApologyContext(
                c, t, target, now + dt.timedelta(hours=4), manager, money
            ),
        )
        if sent and credit is not None and ticket.customer is not None:
            ctx.credit(
                session,
                ticket,
                ticket.customer,
                credit,
                key,
                "first-response SLA missed (§5.2, Template 3)",
                now,
            )
    else:
        context_for: ContextFor
        if kind is BreachKind.BREACH_ALERT:
            context_for = lambda c, t: BreachAlertContext(  # noqa: E731
                c, t, target, due_at, overdue_by, money, c.timezone
            )
        else:
            context_for = lambda c, t: ResolutionAlertContext(  # noqa: E731
                c, t, resolution, due_at, overdue_by, c.timezone
            )
        sent = ctx.notifier.internal_mail(
            session,
            ticket,
            key=key,
            to=ctx.notifier.role_recipients(AgentRole.SUPPORT_MANAGER),
            now=now,
            context_for=context_for,
        )
    if sent:
        record_event(
            session,
            now,
            EventKind.for_breach(kind),
            f"deadline {due_at.isoformat()} missed by {overdue_by}",
            ticket=ticket,
            detail={"key": key},
        )
    return sent

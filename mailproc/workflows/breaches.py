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
from mailproc.outbound.values import Money
from mailproc.store.models import Credit, Outbox, Ticket
from mailproc.store.repo import record_event
from mailproc.store.staged import write_staged
from mailproc.tickets.ops import OPEN_STATUSES
from mailproc.workflows.context import CheckSummary, WorkflowContext
from mailproc.workflows.mail import ContextFor
from mailproc.workflows.promises import first_response_promise, keep_promise, next_update

APOLOGY_UPDATE_WITHIN = dt.timedelta(hours=4)


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
            if notice.due_at < ticket.seen_at:
                continue  # missed before mailproc had the mail (a history import): not ours
            if notice.kind is BreachKind.SLA_BREACH_APOLOGY and queued(
                session, keys.sla_breach_apology(ticket.number)
            ):
                continue  # one apology (and credit) in a ticket's life: later misses are internal
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
    manager = ctx.settings.company.support_manager_name
    apology_key = keys.sla_breach_apology(ticket.number)
    if kind is BreachKind.SLA_BREACH_APOLOGY:
        missed = first_response_promise(ticket, ticket.received_at)
        update = next_update(ctx, ticket, now, APOLOGY_UPDATE_WITHIN)
        money = ctx.notifier.money(credit) if credit is not None else None
        if ticket.customer is None:
            money = None  # nobody to credit: the apology promises none
        sent = ctx.notifier.customer_mail(
            session,
            ticket,
            key=apology_key,
            now=now,
            context_for=lambda c, t: SlaBreachApologyContext(c, t, missed, update, manager, money),
        )
        if sent:
            keep_promise(session, ticket, update, "Template 3 (SLA breach apology)", now)
            if money is not None and ticket.customer is not None:
                ctx.credit(
                    session,
                    ticket,
                    ticket.customer,
                    money.amount,
                    apology_key,
                    "first-response SLA missed (§5.2, Template 3)",
                    now,
                )
    else:
        context_for: ContextFor
        if kind is BreachKind.BREACH_ALERT:
            given = _apology_credit(ctx, session, apology_key)
            apologized = queued(session, apology_key)
            context_for = lambda c, t: BreachAlertContext(  # noqa: E731
                c, t, target, due_at, overdue_by, given, c.timezone, apologized
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


def _apology_credit(ctx: WorkflowContext, session: Session, key: str) -> Money | None:
    """The credit the ticket's apology gave, as recorded (None when it gave none)."""
    amount = session.scalar(select(Credit.amount).where(Credit.key == key))
    return ctx.notifier.money(amount) if amount is not None else None


def queued(session: Session, key: str) -> bool:
    """Whether the mail of ``key`` was queued (staged rows are written first)."""
    write_staged(session)
    return session.scalar(select(Outbox.id).where(Outbox.key == key)) is not None

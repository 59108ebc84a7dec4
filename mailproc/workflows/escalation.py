"""Escalation (§4): timers scheduled for a new ticket, fired when due (or voided, with the
reason), a P0 escalated at once, and escalation to a team with its alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.classify import Intent
from mailproc.core.escalation import TicketState, TimerKind, escalation_timers, timer_void_reason
from mailproc.core.escalation import Timer as CoreTimer
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.model import Priority, TicketStatus
from mailproc.outbound.contexts import (
    EscalationAlertContext,
    EscalationNote,
    EscalationNoticeContext,
    EscalationTeam,
    TriageRequestContext,
)
from mailproc.store.models import MessageRecord, Ticket, Timer
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only, stage_statement, write_staged
from mailproc.workflows.context import CheckSummary, Notices, WorkflowContext
from mailproc.workflows.mail import EXCERPT_CHARS

ESCALATION_UPDATE_WITHIN = dt.timedelta(hours=24)
_TEAMS = {
    AgentRole.DEVOPS: EscalationTeam.DEVOPS,
    AgentRole.ENGINEERING: EscalationTeam.ENGINEERING,
    AgentRole.PRODUCT: EscalationTeam.PRODUCT,
}


def schedule_timers(
    ctx: WorkflowContext, session: Session, ticket: Ticket, now: dt.datetime
) -> None:
    """Schedule a new ticket's escalation timers (staged in a batch, with the others')."""
    codes = ticket.classification.get("error_codes") or []
    entry = ctx.notifier.catalog.get(codes[0]) if codes else None
    timers = escalation_timers(
        ticket.number,
        Priority(ticket.priority or "P3"),
        Intent(ticket.intent or "other"),
        ticket.received_at,
        code_team=entry.team if entry else None,
        triage_within=(ticket.triage_due - ticket.received_at) if ticket.triage_due else None,
    )
    insert_timer = insert_new_only(session, Timer)
    for timer in timers:  # staged in a batch: written with the other tickets' timers
        stage_statement(
            session,
            insert_timer,
            {
                "key": keys.timed(timer.key),
                "ticket_id": ticket.id,
                "kind": timer.kind.value,
                "due_at": timer.due_at,
                "team": timer.team.value,
                "notify_roles": [r.value for r in timer.notify_roles],
                "priority": timer.priority.value,
                "reason": timer.reason,
                "status": "pending",
            },
        )
    for timer in timers:
        record_event(
            session,
            now,
            EventKind.TIMER_SCHEDULED,
            timer.reason,
            ticket=ticket,
            detail={"timer": timer.kind.value, "due_at": timer.due_at.isoformat()},
        )


def escalate(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    role: AgentRole,
    reason: str,
    now: dt.datetime,
    by: str | None = None,
    notify_roles: Sequence[AgentRole] = (),
    notices: Notices | None = None,
) -> None:
    """Escalate to a team now: alert it (and the roles to notify), tell the customer
    (in ``notices`` when given: an agent's reply carries it)."""
    if role.value in ticket.escalated_to:
        return
    ticket.escalated_to = [*ticket.escalated_to, role.value]
    recipients = list(
        {a.addr: a for r in (role, *notify_roles) for a in ctx.notifier.role_recipients(r)}.values()
    )
    text = _first_text(session, ticket)[:EXCERPT_CHARS]
    team = _TEAMS.get(role)
    key = keys.escalation_alert(ticket.number, role)
    if team is None:  # the Support Manager decides: a triage request, not a team hand-over
        due = now + dt.timedelta(minutes=30)
        ctx.notifier.internal_mail(
            session,
            ticket,
            key=key,
            to=recipients,
            now=now,
            context_for=lambda c, t: TriageRequestContext(
                c, t, reason, due, text, timezone=c.timezone
            ),
        )
    else:
        ctx.notifier.internal_mail(
            session,
            ticket,
            key=key,
            to=recipients,
            now=now,
            context_for=lambda c, t: EscalationAlertContext(
                c, t, team, reason, now + dt.timedelta(hours=1), text, by, c.timezone
            ),
        )
        if notices is not None:
            notices.escalation = EscalationNote(
                team, ESCALATION_UPDATE_WITHIN, now + ESCALATION_UPDATE_WITHIN
            )
        else:
            ctx.notifier.customer_mail(
                session,
                ticket,
                key=keys.escalation_notice(ticket.number, role),
                now=now,
                context_for=lambda c, t: EscalationNoticeContext(
                    c, t, team, ESCALATION_UPDATE_WITHIN, now + ESCALATION_UPDATE_WITHIN, by
                ),
            )
    record_event(
        session,
        now,
        EventKind.TICKET_ESCALATED,
        f"to {role.value}: {reason}",
        ticket=ticket,
        detail={"team": role.value, "notified": [a.addr for a in recipients]},
    )


def _first_text(session: Session, ticket: Ticket) -> str:
    return (
        session.scalar(
            select(MessageRecord.new_text)
            .where(MessageRecord.ticket_id == ticket.id)
            .order_by(MessageRecord.id)
        )
        or ""
    )


def escalate_outages(
    ctx: WorkflowContext, session: Session, ticket_ids: Sequence[int], now: dt.datetime
) -> None:
    """New P0 tickets do not wait for their timers: what falls due within the hour fires
    now (one query for a batch's P0s; their timers are staged, so written first)."""
    write_staged(session)
    fire_due_timers(ctx, session, now, ticket_ids=ticket_ids, until=now + dt.timedelta(hours=1))


def fire_due_timers(
    ctx: WorkflowContext,
    session: Session,
    now: dt.datetime,
    *,
    ticket_ids: Sequence[int] | None = None,
    until: dt.datetime | None = None,
    dry_run: bool = False,
    summary: CheckSummary | None = None,
) -> None:
    """Fire (or void, with the reason) every pending timer due by ``until`` (default now)."""
    query = (
        select(Timer)
        .where(Timer.status == "pending", Timer.due_at <= (until or now))
        .order_by(Timer.due_at)
        .with_for_update(skip_locked=True)
    )
    if ticket_ids is not None:
        query = query.where(Timer.ticket_id.in_(ticket_ids))
    for timer in session.scalars(query).all():
        ticket = session.get(Ticket, timer.ticket_id)
        if ticket is None:
            continue
        state = TicketState(
            TicketStatus(ticket.status),
            Priority(ticket.priority or "P3"),
            frozenset(AgentRole(r) for r in ticket.escalated_to),
            triaged=not ticket.needs_triage,
        )
        void = timer_void_reason(_core_timer(timer, ticket.number), state)
        line = f"#{ticket.number} {timer.kind}: " + (
            f"void ({void})" if void else f"escalated to {timer.team}"
        )
        if summary is not None:
            (summary.voided if void else summary.escalations).append(line)
        if dry_run:
            continue
        timer.status, timer.done_at, timer.outcome = ("void" if void else "fired"), now, void
        if void:
            record_event(session, now, EventKind.TIMER_VOID, f"{timer.kind}: {void}", ticket=ticket)
        else:
            escalate(
                ctx,
                session,
                ticket,
                AgentRole(timer.team),
                timer.reason,
                now,
                notify_roles=[AgentRole(r) for r in timer.notify_roles],
            )


def _core_timer(row: Timer, number: int) -> CoreTimer:
    return CoreTimer(
        number,
        TimerKind(row.kind),
        row.due_at,
        AgentRole(row.team),
        tuple(AgentRole(r) for r in row.notify_roles),
        Priority(row.priority),
        row.reason,
    )

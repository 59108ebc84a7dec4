"""Escalation (§4): timers scheduled for a new ticket, fired when due (or voided, with the
reason), a P0 escalated at once, and escalation to a team with its alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

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
    P0AlertContext,
    TriageRequestContext,
)
from mailproc.outbound.values import EscalationTeam
from mailproc.store.models import MessageRecord, Ticket, Timer
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only, stage_statement, write_staged
from mailproc.tickets.ops import change_priority
from mailproc.workflows.context import CheckSummary, Notices, WorkflowContext
from mailproc.workflows.mail import EXCERPT_CHARS, Notifier
from mailproc.workflows.promises import (
    customer_updated_at,
    keep_promise,
    next_update,
    update_overdue,
)

ESCALATION_UPDATE_WITHIN = dt.timedelta(hours=24)
_TEAMS = {
    AgentRole.DEVOPS: EscalationTeam.DEVOPS,
    AgentRole.ENGINEERING: EscalationTeam.ENGINEERING,
    AgentRole.PRODUCT: EscalationTeam.PRODUCT,
}


def schedule_timers(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    now: dt.datetime,
    since: dt.datetime | None = None,
) -> None:
    """Schedule a ticket's escalation timers (staged in a batch, with the others'): a new
    ticket's from receipt, or those of a new priority from ``since`` (no triage timer)."""
    codes = ticket.classification.get("error_codes") or []
    entry = ctx.notifier.catalog.get(codes[0]) if codes else None
    triage = (ticket.triage_due - ticket.received_at) if ticket.triage_due else None
    timers = escalation_timers(
        ticket.number,
        Priority(ticket.priority or "P3"),
        Intent(ticket.intent or "other"),
        since or ticket.received_at,
        code_team=entry.team if entry else None,
        triage_within=triage if since is None else None,
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
                "made_at": None,
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
        update = next_update(ctx, ticket, now, _update_within(ticket))
        if notices is not None:
            notices.escalation = EscalationNote(team, update)
            keep_promise(session, ticket, update, "Template 2 (in an agent's reply)", now)
        elif ctx.notifier.customer_mail(
            session,
            ticket,
            key=keys.escalation_notice(ticket.number, role),
            now=now,
            context_for=lambda c, t: EscalationNoticeContext(c, t, team, update, by),
        ):
            keep_promise(session, ticket, update, "Template 2 (escalation notice)", now)
    record_event(
        session,
        now,
        EventKind.TICKET_ESCALATED,
        f"to {role.value}: {reason}",
        ticket=ticket,
        detail={"team": role.value, "notified": [a.addr for a in recipients]},
    )


def _update_within(ticket: Ticket) -> dt.timedelta:
    """Template 2's update delay: a P0's is its first-response target, as Template 1 said."""
    if ticket.priority == Priority.P0:
        return dt.timedelta(hours=float(ticket.sla.get("first_response_target_hours", 1)))
    return ESCALATION_UPDATE_WITHIN


def alert_leaders(
    notifier: Notifier, session: Session, ticket: Ticket, excerpt: str, now: dt.datetime
) -> None:
    """A P0: the CTO and the Support Director are told, once per ticket (§4.1)."""
    leaders = (
        *notifier.role_recipients(AgentRole.CTO),
        *notifier.role_recipients(AgentRole.SUPPORT_DIRECTOR),
    )
    sent = notifier.internal_mail(
        session,
        ticket,
        key=keys.p0_alert(ticket.number),
        to=leaders,
        now=now,
        context_for=lambda c, t: P0AlertContext(
            customer=c,
            ticket=t,
            reported_at=ticket.received_at,
            devops_due=ticket.received_at + dt.timedelta(minutes=30),
            first_response_due=ticket.first_response_due or now,
            excerpt=excerpt,
            timezone=c.timezone,
        ),
    )
    if sent:
        record_event(
            session,
            now,
            EventKind.NOTIFY_P0_ALERT,
            "P0: the CTO and the Support Director are told (§4.1)",
            ticket=ticket,
            detail={"to": [a.addr for a in leaders]},
        )


def set_priority(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    priority: Priority,
    now: dt.datetime,
    by: str,
) -> bool:
    """Change a ticket's priority after intake (due times recomputed) and start the new
    priority's chain as at intake, each step once: a P0 is escalated to DevOps with the
    leaders told and Template 2 sent, all now; a P1 gets the 2-hour Engineering timer
    counted from the change. False when the priority was already ``priority``."""
    if not change_priority(session, ticket, priority, ctx.sla, now, by):
        return False
    if ticket.priority == Priority.P0:
        alert_leaders(
            ctx.notifier, session, ticket, _first_text(session, ticket)[:EXCERPT_CHARS], now
        )
        escalate(
            ctx,
            session,
            ticket,
            AgentRole.DEVOPS,
            f"P0 outage (priority set by {by}): escalated to DevOps at once (§4.1)",
            now,
            notify_roles=(AgentRole.CTO, AgentRole.SUPPORT_DIRECTOR),
        )
    else:
        schedule_timers(ctx, session, ticket, now, since=now)
    return True


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
        update = timer.kind == TimerKind.UPDATE
        if update:
            state = replace(state, customer_updated_at=customer_updated_at(session, ticket))
        void = timer_void_reason(_core_timer(timer, ticket.number), state, timer.made_at)
        if void is None and timer.due_at < ticket.seen_at:
            void = "due before mailproc had the ticket's mail (a history import)"
        done = "manager told: promised update not sent" if update else f"escalated to {timer.team}"
        line = f"#{ticket.number} {timer.kind}: " + (f"void ({void})" if void else done)
        if summary is not None:
            (summary.voided if void else summary.escalations).append(line)
        if dry_run:
            continue
        timer.status, timer.done_at, timer.outcome = ("void" if void else "fired"), now, void
        if void:
            record_event(session, now, EventKind.TIMER_VOID, f"{timer.kind}: {void}", ticket=ticket)
        elif update:
            update_overdue(ctx, session, ticket, timer, now)
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

"""Agents by mail (§7): their commands applied, the rest of their reply relayed to the
customer; an invalid or unauthorized command changes nothing and gets an error mail.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.commands import (
    AssignCommand,
    Command,
    EscalateCommand,
    NoteCommand,
    PriorityCommand,
    RefundApproveCommand,
    RefundDenyCommand,
    StatusCommand,
    check_commands,
    parse_commands,
)
from mailproc.core.events import EventKind
from mailproc.core.identity import UNCONFIGURED, Agent
from mailproc.core.kb import KbCommand
from mailproc.core.model import Address, TicketStatus
from mailproc.core.quotes import cut_at_included
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.contexts import AgentReplyContext, CommandErrorContext, ResolvedNoticeContext
from mailproc.store.models import Outbox, RefundCaseRecord, Ticket
from mailproc.store.repo import record_event
from mailproc.tickets.ops import resolve, start_waiting
from mailproc.workflows import kb
from mailproc.workflows.context import WorkflowContext
from mailproc.workflows.escalation import escalate, set_priority
from mailproc.workflows.refunds import approve_refund, deny_refund, requested_case

_MAX_OWN_MAILS = 20  # the newest mails of a ticket an agent's reply may include


@dataclass(frozen=True, slots=True)
class AgentMail:
    """An agent's inbound mail on a ticket: its id (what its answers are keyed by) and text."""

    inbound_id: int
    new_text: str


def agent_mail(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    mail: AgentMail,
    now: dt.datetime,
) -> str:
    """Apply an agent's commands and relay the rest to the customer; return a summary.

    An invalid or unauthorized command changes nothing and relays nothing: the agent gets
    an error mail listing every problem and sends a corrected reply.
    """
    parsed = parse_commands(cut_at_included(mail.new_text, _our_mail_texts(session, ticket)))
    case_row, case = requested_case(session, ticket)
    kb_commands = [c for c in parsed.commands if isinstance(c, KbCommand)]
    planned, kb_problems = kb.check(ctx, session, kb_commands, parsed.remaining_text, ticket=ticket)
    problems = (*check_commands(parsed, agent, case), *kb_problems)
    if problems:
        for index, problem in enumerate(problems):
            context = CommandErrorContext(
                agent.name, problem.source, problem.problem, ticket.number, problem.usage
            )
            _error_mail(ctx, session, ticket, agent, mail, index, context, now)
        reasons = "; ".join(f"{p.source}: {p.problem}" for p in problems)
        record_event(
            session,
            now,
            EventKind.AGENT_COMMANDS_REFUSED,
            f"{agent.name}: nothing applied, nothing relayed ({reasons})",
            ticket=ticket,
        )
        return "refused"
    status_set = False
    for command in parsed.commands:
        status_set |= isinstance(command, StatusCommand)
        _apply_command(ctx, session, ticket, agent, command, case_row, mail, now)
    for step in planned:
        kb.apply(ctx, session, agent, step, now, ticket)
    if parsed.remaining_text.strip():
        _relay(ctx, session, ticket, agent, mail.inbound_id, parsed.remaining_text, now)
        if not status_set:
            start_waiting(session, ticket, ctx.sla, now)
    return "applied"


def _our_mail_texts(session: Session, ticket: Ticket) -> list[str]:
    """The plain text of the mail we sent about ``ticket`` (alerts, notices), newest first:
    what an agent's client may paste below the reply without quoting it."""
    raws = session.scalars(
        select(Outbox.raw)
        .where(Outbox.ticket_id == ticket.id, Outbox.raw.is_not(None))
        .order_by(Outbox.id.desc())
        .limit(_MAX_OWN_MAILS)
    )
    texts = []
    for raw in raws:
        message = email.message_from_bytes(raw or b"", policy=email.policy.default)
        body = message.get_body(("plain",)) if isinstance(message, EmailMessage) else None
        if isinstance(body, EmailMessage):
            texts.append(str(body.get_content()))
    return texts


def refuse_unauthenticated(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    mail: AgentMail,
    now: dt.datetime,
) -> None:
    """Mail from an agent's address while agent authentication is not configured: nothing
    applied, nothing relayed; the agent (at the configured address) is told why."""
    first_line = next((line.strip() for line in mail.new_text.splitlines() if line.strip()), "")
    context = CommandErrorContext(agent.name, first_line[:200], UNCONFIGURED, ticket.number)
    _error_mail(ctx, session, ticket, agent, mail, 0, context, now)
    record_event(
        session,
        now,
        EventKind.AGENT_COMMANDS_REFUSED,
        f"{agent.name}: nothing applied, nothing relayed ({UNCONFIGURED})",
        ticket=ticket,
    )


def _error_mail(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    mail: AgentMail,
    index: int,
    context: CommandErrorContext,
    now: dt.datetime,
) -> None:
    """Queue one error mail about the agent's mail, to the agent's configured address."""
    ctx.notifier.queue(
        session,
        key=keys.command_error(ticket.number, mail.inbound_id, index),
        ticket=ticket,
        locale="en",
        to=(Address(agent.name, agent.addresses[0]),),
        automatic=AutoSubmitted.AUTO_REPLIED,
        now=now,
        context=context,
    )


def _relay(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    inbound_id: int,
    text: str,
    now: dt.datetime,
) -> None:
    ctx.notifier.customer_mail(
        session,
        ticket,
        key=keys.agent_reply(ticket.number, inbound_id),
        now=now,
        automatic=AutoSubmitted.AUTO_REPLIED,
        context_for=lambda c, t: AgentReplyContext(c, t, agent.name, text),
    )
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
        due = ticket.first_response_due
        met = due is None or now <= due
        record_event(
            session,
            now,
            EventKind.SLA_FIRST_RESPONSE,
            f"first response by {agent.name}: SLA {'met' if met else 'breached'}"
            + (f" (due {due.isoformat()})" if due else ""),
            ticket=ticket,
            detail={"met": met},
        )
    record_event(
        session, now, EventKind.AGENT_REPLY_RELAYED, f"{agent.name} answered", ticket=ticket
    )


def _apply_command(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    command: Command,
    case_row: RefundCaseRecord | None,
    mail: AgentMail,
    now: dt.datetime,
) -> None:
    who = f"{agent.name} by mail"
    if isinstance(command, StatusCommand):
        if command.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            resolve(ticket, now, command.status)
            ctx.notifier.customer_mail(
                session,
                ticket,
                key=keys.resolved_notice(ticket.number, mail.inbound_id),
                now=now,
                context_for=lambda c, t: ResolvedNoticeContext(c, t, agent.name),
            )
        elif command.status is TicketStatus.WAITING:
            start_waiting(session, ticket, ctx.sla, now)
        else:
            ticket.status = command.status
    elif isinstance(command, PriorityCommand):
        ticket.needs_triage = False
        set_priority(ctx, session, ticket, command.priority, now, who)
    elif isinstance(command, EscalateCommand):
        escalate(
            ctx,
            session,
            ticket,
            command.team,
            f"{command.reason or 'by an agent'}",
            now,
            by=agent.name,
        )
    elif isinstance(command, NoteCommand):
        record_event(
            session,
            now,
            EventKind.TICKET_NOTE,
            command.text,
            ticket=ticket,
            detail={"by": agent.name},
        )
    elif isinstance(command, AssignCommand):
        ticket.assignee = command.assignee
    elif isinstance(command, RefundApproveCommand) and case_row is not None:
        approve_refund(ctx, session, ticket, agent, command, case_row, now)
    elif isinstance(command, RefundDenyCommand) and case_row is not None:
        deny_refund(case_row, agent, command.reason, now)
    record_event(session, now, EventKind.AGENT_COMMAND, f"{command.source} ({who})", ticket=ticket)

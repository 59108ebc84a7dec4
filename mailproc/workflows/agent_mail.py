"""Agents by mail (§7): their commands applied, the rest of their reply relayed to the
customer; an invalid or unauthorized command changes nothing and gets one error mail.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.commands import (
    AssignCommand,
    CancelConfirmCommand,
    CancelDenyCommand,
    Command,
    CommandError,
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
from mailproc.core.quotes import cut_at_included, split_sign_off
from mailproc.outbound.compose import AttachmentRef, AutoSubmitted
from mailproc.outbound.contexts import (
    AgentReplyContext,
    CommandErrorContext,
    CommandProblem,
    ResolvedNoticeContext,
)
from mailproc.store.models import Outbox, RefundCaseRecord, Ticket
from mailproc.store.repo import record_event
from mailproc.tickets.ops import resolve, start_waiting
from mailproc.workflows import kb
from mailproc.workflows.context import Notices, WorkflowContext
from mailproc.workflows.escalation import escalate, set_priority
from mailproc.workflows.refunds import (
    approve_refund,
    confirm_cancellation,
    deny_cancellation,
    deny_refund,
    requested_case,
    send_confirmation,
)

_MAX_OWN_MAILS = 20  # the newest mails of a ticket an agent's reply may include


@dataclass(frozen=True, slots=True)
class AgentMail:
    """An agent's inbound mail on a ticket: its id (what its answers are keyed by), its new
    text and the rest (signature and quotes: the agent's sign-off may open it)."""

    inbound_id: int
    new_text: str
    rest: str = ""
    attachments: tuple[AttachmentRef, ...] = ()  # relayed to the customer


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
    one error mail listing every problem and sends a corrected reply. When the reply has
    text for the customer, the notices its commands cause (resolved, escalated, refund
    processed) go in the same mail instead of mails of their own.
    """
    parsed = parse_commands(cut_at_included(mail.new_text, _our_mail_texts(session, ticket)))
    case_row, case, cancellation = requested_case(session, ticket, now.date())
    kb_commands = [c for c in parsed.commands if isinstance(c, KbCommand)]
    planned, kb_problems = kb.check(ctx, session, kb_commands, parsed.remaining_text, ticket=ticket)
    problems = (
        *check_commands(parsed, agent, case, cancellation=cancellation),
        *kb_problems,
        *_check_state(ctx, ticket, parsed.commands),
    )
    if problems:
        to = Address(agent.name, agent.addresses[0])
        refuse(ctx, session, ticket, to, problems, mail.inbound_id, now)
        reasons = "; ".join(f"{p.source}: {p.problem}" for p in problems)
        record_event(
            session,
            now,
            EventKind.AGENT_COMMANDS_REFUSED,
            f"{agent.name}: nothing applied, nothing relayed ({reasons})",
            ticket=ticket,
        )
        return "refused"
    relayed = parsed.remaining_text.strip()
    notices = Notices() if relayed else None
    told = notices if notices is not None else Notices()  # Template 4: in the reply or alone
    status_set = False
    for command in parsed.commands:
        status_set |= isinstance(command, StatusCommand)
        _apply_command(ctx, session, ticket, agent, command, case_row, mail, notices, told, now)
    for step in planned:
        kb.apply(ctx, session, agent, step, now, ticket)
    if notices is None:
        send_confirmation(ctx, session, ticket, agent, mail.inbound_id, told, now)
    else:
        _relay(ctx, session, ticket, agent, mail, parsed.remaining_text, notices, now)
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
    to = Address(agent.name, agent.addresses[0])
    refuse(
        ctx,
        session,
        ticket,
        to,
        [CommandError(first_line[:200], UNCONFIGURED)],
        mail.inbound_id,
        now,
    )
    record_event(
        session,
        now,
        EventKind.AGENT_COMMANDS_REFUSED,
        f"{agent.name}: nothing applied, nothing relayed ({UNCONFIGURED})",
        ticket=ticket,
    )


def refuse(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    to: Address,
    problems: Sequence[CommandError],
    inbound_id: int,
    now: dt.datetime,
    *,
    from_agent: bool = True,
) -> None:
    """One error mail for an inbound mail's commands, listing every problem."""
    ctx.notifier.queue(
        session,
        key=keys.command_error(ticket.number, inbound_id),
        ticket=ticket,
        locale="en",
        to=(to,),
        automatic=AutoSubmitted.AUTO_REPLIED,
        now=now,
        context=CommandErrorContext(
            to.name or to.addr,
            tuple(CommandProblem(p.source, p.problem, p.usage) for p in problems),
            ticket.number,
            from_agent,
        ),
    )


def commands_not_from_agent(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    sender: Address,
    lines: Sequence[str],
    inbound_id: int,
    now: dt.datetime,
) -> None:
    """Command lines from a mailbox that is not a configured agent: one reply saying so."""
    why = "commands are taken only from a configured agent's address"
    problems = [CommandError(line, why) for line in lines]
    refuse(ctx, session, ticket, sender, problems, inbound_id, now, from_agent=False)
    record_event(
        session,
        now,
        EventKind.COMMANDS_NOT_FROM_AGENT,
        f"{sender.addr} is not a configured agent: nothing applied, mail not added to the "
        f"ticket ({'; '.join(lines)})",
        ticket=ticket,
        inbound_id=inbound_id,
    )


def _check_state(
    ctx: WorkflowContext, ticket: Ticket, commands: Sequence[Command]
) -> list[CommandError]:
    """Problems the ticket's state or the staff list find: a closed ticket takes no command,
    ``#assign`` names a configured agent."""
    if commands and ticket.status == TicketStatus.CLOSED:
        return [
            CommandError(c.source, f"ticket #{ticket.number} is closed: nothing can be changed")
            for c in commands
        ]
    return [
        CommandError(c.source, f"no configured agent is named {c.assignee!r}", "#assign NAME")
        for c in commands
        if isinstance(c, AssignCommand) and ctx.notifier.agent_named(c.assignee) is None
    ]


def _reopen_within(ctx: WorkflowContext) -> dt.timedelta:
    """How long a reply reopens a resolved ticket (``[threading] reopen_window_days``)."""
    return dt.timedelta(days=ctx.settings.threading.reopen_window_days)


def _relay(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    mail: AgentMail,
    text: str,
    notices: Notices,
    now: dt.datetime,
) -> None:
    body, sign_off = split_sign_off(text, mail.rest)
    ctx.notifier.customer_mail(
        session,
        ticket,
        key=keys.agent_reply(ticket.number, mail.inbound_id),
        now=now,
        automatic=AutoSubmitted.NO,
        sender=ctx.notifier.agent_sender(agent),
        cc=ctx.notifier.cc_of(session, ticket),
        attachments=mail.attachments,
        context_for=lambda c, t: AgentReplyContext(
            c,
            t,
            agent.name,
            body,
            sign_off,
            notices.resolved_within,
            notices.escalation,
            notices.refund,
            notices.cancellation,
        ),
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
    notices: Notices | None,
    told: Notices,
    now: dt.datetime,
) -> None:
    who = f"{agent.name} by mail"
    if isinstance(command, StatusCommand):
        if command.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            resolve(ticket, now, command.status)
            if notices is not None:
                notices.resolved_within = _reopen_within(ctx)
            else:
                ctx.notifier.customer_mail(
                    session,
                    ticket,
                    key=keys.resolved_notice(ticket.number, mail.inbound_id),
                    now=now,
                    context_for=lambda c, t: ResolvedNoticeContext(
                        c, t, agent.name, reopen_within=_reopen_within(ctx)
                    ),
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
            notices=notices,
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
        assignee = ctx.notifier.agent_named(command.assignee)
        ticket.assignee = assignee.name if assignee is not None else command.assignee
    elif isinstance(command, RefundApproveCommand) and case_row is not None:
        approve_refund(ctx, session, ticket, agent, command, case_row, now, told)
    elif isinstance(command, RefundDenyCommand) and case_row is not None:
        deny_refund(session, ticket, case_row, agent, command.reason, now)
    elif isinstance(command, CancelConfirmCommand) and case_row is not None:
        confirm_cancellation(session, ticket, agent, command, case_row, now, told)
    elif isinstance(command, CancelDenyCommand) and case_row is not None:
        deny_cancellation(session, ticket, case_row, agent, command.reason, now)
    record_event(session, now, EventKind.AGENT_COMMAND, f"{command.source} ({who})", ticket=ticket)

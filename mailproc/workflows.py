"""The procedures' workflows run by mail (§4, §6, §7, §8): escalation timers, agents' replies
and commands, refunds, surveys, incidents and the breach notifier.

Decisions come from the pure core (commands, escalation, refunds, survey, breach); this
module loads the facts, applies the decisions in the caller's transaction and queues mail
through the Notifier. Every mail has an idempotency key, so repeated runs send nothing twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import model
from mailproc.core.breach import BreachKind, SlaState, breach_notices
from mailproc.core.classify import Intent
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
from mailproc.core.escalation import (
    P0Report,
    TicketState,
    TimerKind,
    escalation_timers,
    incident_decision,
    timer_void_reason,
)
from mailproc.core.escalation import (
    Timer as CoreTimer,
)
from mailproc.core.identity import Agent, AgentRole
from mailproc.core.model import Address, Priority, TicketStatus
from mailproc.core.refunds import (
    DEFAULT_REFUND_POLICY,
    AuthorizationLevel,
    RefundCase,
    RefundKind,
    detect_refund_request,
    required_level,
)
from mailproc.core.sla import SlaPolicy
from mailproc.core.survey import (
    ChurnRisk,
    low_score_actions,
    parse_survey_reply,
    survey_due,
    updated_customer_metrics,
)
from mailproc.core.tokens import reply_address
from mailproc.notify import EXCERPT_CHARS, Notifier, Thread
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.render import (
    AgentReplyContext,
    Approver,
    BreachAlertContext,
    CommandErrorContext,
    CustomerInfo,
    EscalationAlertContext,
    EscalationNoticeContext,
    EscalationTeam,
    IncidentAlertContext,
    IncidentResolvedContext,
    IncidentTicket,
    LowSatisfactionFollowUpContext,
    LowScoreAlertContext,
    Money,
    RefundApprovalRequestContext,
    RefundConfirmationContext,
    ResolutionAlertContext,
    ResolvedNoticeContext,
    SlaBreachApologyContext,
    SurveyRequestContext,
    TemplateContext,
    TicketInfo,
    TriageRequestContext,
)
from mailproc.store import repo
from mailproc.store.models import (
    Credit,
    Customer,
    Incident,
    MessageRecord,
    RefundCaseRecord,
    Ticket,
    Timer,
)
from mailproc.store.staged import insert_new_only, stage_statement, write_staged
from mailproc.tickets.ops import OPEN_STATUSES, change_priority, resolve, start_waiting

log = logging.getLogger(__name__)

ESCALATION_UPDATE_WITHIN = dt.timedelta(hours=24)
INCIDENT_LOOKBACK = dt.timedelta(hours=24)
_RISK = (ChurnRisk.LOW, ChurnRisk.MEDIUM, ChurnRisk.HIGH)  # rising order
ContextFor = Callable[[CustomerInfo, TicketInfo], TemplateContext]
_TEAMS = {
    AgentRole.DEVOPS: EscalationTeam.DEVOPS,
    AgentRole.ENGINEERING: EscalationTeam.ENGINEERING,
    AgentRole.PRODUCT: EscalationTeam.PRODUCT,
}


@dataclass
class CheckSummary:
    """What one run of the scheduler did (or would do, in a dry run)."""

    breaches: list[str] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    surveys: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per action."""
        return [
            *self.breaches,
            *self.escalations,
            *self.voided,
            *self.surveys,
            *self.incidents,
            *self.reports,
        ]


class Workflows:
    """Applies the workflow decisions to tickets and queues the mail they call for."""

    def __init__(self, notifier: Notifier, sla: SlaPolicy) -> None:
        self.notifier = notifier
        self.sla = sla
        self.settings = notifier.settings

    # -- shared --------------------------------------------------------------------------

    def _customer(self, ticket: Ticket) -> model.Customer | None:
        return repo.to_core_customer(ticket.customer) if ticket.customer is not None else None

    def _event(
        self,
        session: Session,
        ticket: Ticket,
        now: dt.datetime,
        kind: str,
        reason: str,
        **detail: object,
    ) -> None:
        self.notifier.record(session, ticket, now, kind, reason, **detail)

    def _to_customer(self, ticket: Ticket) -> tuple[Address, ...]:
        customer = ticket.customer
        return (
            (Address(customer.contact_name if customer else "", ticket.requester),)
            if ticket.requester
            else ()
        )

    def _customer_thread(self, session: Session, ticket: Ticket) -> Thread:
        """The customer's latest mail on the ticket, so our mail threads in their client."""
        row = session.execute(
            select(MessageRecord.message_id, MessageRecord.references)
            .where(
                MessageRecord.ticket_id == ticket.id,
                MessageRecord.direction == "in",
                MessageRecord.sender_kind != "agent",
            )
            .order_by(MessageRecord.id.desc())
        ).first()
        if row is None:
            return Thread(None)
        return Thread(row[0], tuple(row[1] or ()))

    def _customer_mail(
        self,
        session: Session,
        ticket: Ticket,
        *,
        key: str,
        template: str,
        context_for: ContextFor,
        now: dt.datetime,
        automatic: AutoSubmitted = AutoSubmitted.AUTO_GENERATED,
    ) -> bool:
        """Queue a mail to the ticket's customer in their language."""
        to = self._to_customer(ticket)
        if not to:
            return False
        customer = self._customer(ticket)
        locale = self.notifier.locale(customer).locale
        context = context_for(
            self.notifier.customer_info(ticket, customer),
            self.notifier.ticket_info(ticket, customer, locale),
        )
        return self.notifier.queue(
            session,
            key=key,
            ticket=ticket,
            template=template,
            locale=locale,
            context=context,
            to=to,
            automatic=automatic,
            now=now,
            thread=self._customer_thread(session, ticket),
        )

    def _internal_mail(
        self,
        session: Session,
        ticket: Ticket,
        *,
        key: str,
        template: str,
        to: Sequence[Address],
        context_for: ContextFor,
        now: dt.datetime,
    ) -> bool:
        """Queue an internal notification (English) about a ticket."""
        if not to:
            return False
        customer = self._customer(ticket)
        context = context_for(
            self.notifier.customer_info(ticket, customer),
            self.notifier.ticket_info(ticket, customer, "en"),
        )
        return self.notifier.queue(
            session,
            key=key,
            ticket=ticket,
            template=template,
            locale="en",
            context=context,
            to=to,
            automatic=AutoSubmitted.AUTO_GENERATED,
            now=now,
        )

    # -- intake --------------------------------------------------------------------------

    def ticket_opened(
        self, session: Session, ticket: Ticket, first_text: str, now: dt.datetime
    ) -> None:
        """Schedule the escalation timers and open a refund case.

        Left to the caller, once per batch rather than per ticket: incident detection for new
        P0s and their immediate escalation (``escalate_outages``).
        """
        codes = ticket.classification.get("error_codes") or []
        entry = self.notifier.catalog.get(codes[0]) if codes else None
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
                    "key": _key(*timer.key),
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
            self._event(
                session,
                ticket,
                now,
                "timer.scheduled",
                timer.reason,
                timer=timer.kind.value,
                due_at=timer.due_at.isoformat(),
            )
        if ticket.customer is not None:
            ticket.customer.last_support_ticket = ticket.received_at.date()
        self._open_refund_case(session, ticket, first_text, now)

    def _open_refund_case(
        self, session: Session, ticket: Ticket, text: str, now: dt.datetime
    ) -> None:
        request = detect_refund_request(ticket.subject, text)
        if request is None:
            return
        customer = self._customer(ticket)
        plan = customer.plan if customer else model.Plan.STARTER
        price = DEFAULT_REFUND_POLICY.plan_prices.get(plan)
        amount = request.amount.value if request.amount else (price or Decimal(0))
        currency = (
            request.amount.currency
            if request.amount and request.amount.currency
            else self.settings.credits.currency
        )
        days = (
            (ticket.received_at.date() - customer.signup_date).days
            if customer and customer.signup_date
            else 0
        )
        kind = (
            RefundKind.CANCELLATION
            if request.cancellation and not request.refund
            else RefundKind.REFUND
        )
        case = RefundCase(amount, currency, plan, days, kind)
        needed = required_level(case)
        session.execute(
            insert_new_only(session, RefundCaseRecord),
            {
                "ticket_id": ticket.id,
                "amount": amount,
                "currency": currency,
                "plan": plan.value,
                "days_since_purchase": days,
                "kind": kind.value,
                "required_level": needed.level.value,
                "level_reason": needed.reason,
                "status": "requested",
                "requested_at": now,
            },
        )
        self._event(
            session,
            ticket,
            now,
            "refund.requested",
            f"{kind.value} of {amount} {currency} needs {needed.level.label}: {needed.reason}",
            level=needed.level.value,
        )
        if needed.level is AuthorizationLevel.AGENT:
            return
        approver = Approver(needed.level.value)
        self._internal_mail(
            session,
            ticket,
            key=f"refund-approval:{ticket.number}",
            template="refund_approval_request",
            to=self.notifier.role_recipients(approver.value),
            now=now,
            context_for=lambda c, t: RefundApprovalRequestContext(
                c,
                t,
                amount=self.notifier.money(amount),
                approver=approver,
                requested_by=c.name or ticket.requester or "",
                reason=needed.reason,
                days_since_payment=days,
            ),
        )

    # -- agents by mail --------------------------------------------------------------------

    def agent_mail(
        self, session: Session, ticket: Ticket, agent: Agent, new_text: str, now: dt.datetime
    ) -> str:
        """Apply an agent's commands and relay the rest to the customer; return a summary.

        An invalid or unauthorized command changes nothing and relays nothing: the agent gets
        an error mail listing every problem and sends a corrected reply.
        """
        parsed = parse_commands(new_text)
        case_row = session.scalars(
            select(RefundCaseRecord).where(RefundCaseRecord.ticket_id == ticket.id)
        ).first()
        case = (
            _case_of(case_row) if case_row is not None and case_row.status == "requested" else None
        )
        problems = check_commands(parsed, agent, case)
        if problems:
            for index, problem in enumerate(problems):
                self.notifier.queue(
                    session,
                    key=f"cmd-error:{ticket.number}:{now.isoformat()}:{index}",
                    ticket=ticket,
                    template="command_error",
                    locale="en",
                    to=(Address(agent.name, agent.addresses[0]),),
                    automatic=AutoSubmitted.AUTO_REPLIED,
                    now=now,
                    context=CommandErrorContext(
                        agent.name, problem.source, problem.problem, ticket.number, problem.usage
                    ),
                )
            reasons = "; ".join(f"{p.source}: {p.problem}" for p in problems)
            self._event(
                session,
                ticket,
                now,
                "agent.commands_refused",
                f"{agent.name}: nothing applied, nothing relayed ({reasons})",
            )
            return "refused"
        status_set = False
        for command in parsed.commands:
            status_set |= isinstance(command, StatusCommand)
            self._apply(session, ticket, agent, command, case_row, now)
        if parsed.remaining_text.strip():
            self._relay(session, ticket, agent, parsed.remaining_text, now)
            if not status_set:
                start_waiting(session, ticket, self.sla, now)
        return "applied"

    def _relay(
        self, session: Session, ticket: Ticket, agent: Agent, text: str, now: dt.datetime
    ) -> None:
        self._customer_mail(
            session,
            ticket,
            key=f"reply:{ticket.number}:{now.isoformat()}",
            template="agent_reply",
            now=now,
            automatic=AutoSubmitted.AUTO_REPLIED,
            context_for=lambda c, t: AgentReplyContext(c, t, agent.name, text),
        )
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
            due = ticket.first_response_due
            met = due is None or now <= due
            self._event(
                session,
                ticket,
                now,
                "sla.first_response",
                f"first response by {agent.name}: SLA {'met' if met else 'breached'}"
                + (f" (due {due.isoformat()})" if due else ""),
                met=met,
            )
        self._event(session, ticket, now, "agent.reply_relayed", f"{agent.name} answered")

    def _apply(
        self,
        session: Session,
        ticket: Ticket,
        agent: Agent,
        command: Command,
        case_row: RefundCaseRecord | None,
        now: dt.datetime,
    ) -> None:
        who = f"{agent.name} by mail"
        if isinstance(command, StatusCommand):
            if command.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                resolve(ticket, now, command.status)
                self._customer_mail(
                    session,
                    ticket,
                    key=f"resolved:{ticket.number}:{now.isoformat()}",
                    template="resolved_notice",
                    now=now,
                    context_for=lambda c, t: ResolvedNoticeContext(c, t, agent.name),
                )
            elif command.status is TicketStatus.WAITING:
                start_waiting(session, ticket, self.sla, now)
            else:
                ticket.status = command.status
        elif isinstance(command, PriorityCommand):
            change_priority(session, ticket, command.priority, self.sla, now, who)
            ticket.needs_triage = False
        elif isinstance(command, EscalateCommand):
            self._escalate(
                session,
                ticket,
                command.team,
                f"{command.reason or 'by an agent'}",
                now,
                by=agent.name,
            )
        elif isinstance(command, NoteCommand):
            self._event(session, ticket, now, "ticket.note", command.text, by=agent.name)
        elif isinstance(command, AssignCommand):
            ticket.assignee = command.assignee
        elif isinstance(command, RefundApproveCommand) and case_row is not None:
            self._approve_refund(session, ticket, agent, command, case_row, now)
        elif isinstance(command, RefundDenyCommand) and case_row is not None:
            case_row.status, case_row.decided_by, case_row.decided_at = "denied", agent.name, now
            case_row.decision_reason = command.reason
        self._event(session, ticket, now, "agent.command", f"{command.source} ({who})")

    def _approve_refund(
        self,
        session: Session,
        ticket: Ticket,
        agent: Agent,
        command: RefundApproveCommand,
        case_row: RefundCaseRecord,
        now: dt.datetime,
    ) -> None:
        case_row.status, case_row.decided_by, case_row.decided_at = "approved", agent.name, now
        case_row.approved_amount = command.amount
        self._customer_mail(
            session,
            ticket,
            key=f"refund:{ticket.number}",
            template="refund_confirmation",
            now=now,
            context_for=lambda c, t: RefundConfirmationContext(
                c,
                t,
                Money(command.amount, case_row.currency),
                agent.name,
                *self.settings.credits.refund_settlement_days,
                cancellation=case_row.kind == RefundKind.CANCELLATION,
            ),
        )
        self._event(
            session,
            ticket,
            now,
            "refund.approved",
            f"{command.amount} {case_row.currency} approved by {agent.name}; Template 4 sent",
        )

    # -- escalation ------------------------------------------------------------------------

    def _escalate(
        self,
        session: Session,
        ticket: Ticket,
        role: AgentRole,
        reason: str,
        now: dt.datetime,
        by: str | None = None,
        notify_roles: Sequence[str] = (),
    ) -> None:
        """Escalate to a team now: alert it (and the roles to notify), tell the customer."""
        if role.value in ticket.escalated_to:
            return
        ticket.escalated_to = [*ticket.escalated_to, role.value]
        recipients = list(
            {
                a.addr: a
                for r in (role.value, *notify_roles)
                for a in self.notifier.role_recipients(r)
            }.values()
        )
        text = self._first_text(session, ticket)[:EXCERPT_CHARS]
        team = _TEAMS.get(role)
        key = f"escalate:{ticket.number}:{role.value}"
        if team is None:  # the Support Manager decides: a triage request, not a team hand-over
            due = now + dt.timedelta(minutes=30)
            self._internal_mail(
                session,
                ticket,
                key=key,
                template="triage_request",
                to=recipients,
                now=now,
                context_for=lambda c, t: TriageRequestContext(
                    c, t, reason, due, text, timezone=c.timezone
                ),
            )
        else:
            self._internal_mail(
                session,
                ticket,
                key=key,
                template="escalation_alert",
                to=recipients,
                now=now,
                context_for=lambda c, t: EscalationAlertContext(
                    c, t, team, reason, now + dt.timedelta(hours=1), text, by, c.timezone
                ),
            )
            self._customer_mail(
                session,
                ticket,
                key=f"escalation-notice:{ticket.number}:{role.value}",
                template="escalation_notice",
                now=now,
                context_for=lambda c, t: EscalationNoticeContext(
                    c, t, team, ESCALATION_UPDATE_WITHIN, now + ESCALATION_UPDATE_WITHIN, by
                ),
            )
        self._event(
            session,
            ticket,
            now,
            "ticket.escalated",
            f"to {role.value}: {reason}",
            team=role.value,
            notified=[a.addr for a in recipients],
        )

    def _first_text(self, session: Session, ticket: Ticket) -> str:
        return (
            session.scalar(
                select(MessageRecord.new_text)
                .where(MessageRecord.ticket_id == ticket.id)
                .order_by(MessageRecord.id)
            )
            or ""
        )

    def escalate_outages(
        self, session: Session, ticket_ids: Sequence[int], now: dt.datetime
    ) -> None:
        """New P0 tickets do not wait for their timers: what falls due within the hour fires
        now (one query for a batch's P0s; their timers are staged, so written first)."""
        write_staged(session)
        self.fire_due_timers(session, now, ticket_ids=ticket_ids, until=now + dt.timedelta(hours=1))

    def fire_due_timers(
        self,
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
                self._event(session, ticket, now, "timer.void", f"{timer.kind}: {void}")
            else:
                self._escalate(
                    session,
                    ticket,
                    AgentRole(timer.team),
                    timer.reason,
                    now,
                    notify_roles=timer.notify_roles,
                )

    # -- surveys ---------------------------------------------------------------------------

    def send_due_surveys(
        self, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
    ) -> None:
        """24 hours after resolution, the survey goes out, once (§8.1)."""
        tickets = session.scalars(
            select(Ticket)
            .where(
                Ticket.status.in_((TicketStatus.RESOLVED, TicketStatus.CLOSED)),
                Ticket.survey_sent_at.is_(None),
                Ticket.resolved_at.is_not(None),
                Ticket.requester.is_not(None),
            )
            .with_for_update(skip_locked=True, of=Ticket)
        ).all()
        for ticket in tickets:
            assert ticket.resolved_at is not None
            if survey_due(ticket.resolved_at) > now:
                continue
            summary.surveys.append(f"#{ticket.number}: survey to {ticket.requester}")
            if dry_run:
                continue
            ticket.survey_sent_at = now
            address = reply_address(self.notifier.scheme, ticket.number)
            self._customer_mail(
                session,
                ticket,
                key=f"survey:{ticket.number}",
                template="survey_request",
                now=now,
                context_for=functools.partial(
                    SurveyRequestContext, resolved_at=ticket.resolved_at, reply_address=address
                ),
            )

    def survey_reply(
        self, session: Session, ticket: Ticket, subject: str, new_text: str, now: dt.datetime
    ) -> bool:
        """Record a survey answer; False when the mail holds no score."""
        answer = parse_survey_reply(subject, new_text)
        if answer is None:
            return False
        ticket.survey_score, ticket.survey_comment = answer.score, answer.comment
        ticket.survey_answered_at = now
        self._event(
            session,
            ticket,
            now,
            "survey.answered",
            f"score {answer.score}/5" + (f": {answer.comment}" if answer.comment else ""),
            score=answer.score,
        )
        customer_row = ticket.customer
        customer = self._customer(ticket)
        if customer_row is not None:
            answers = (
                session.scalar(
                    select(Ticket.id)
                    .where(
                        Ticket.customer_id == customer_row.id,
                        Ticket.survey_score.is_not(None),
                        Ticket.id != ticket.id,
                    )
                    .limit(1)
                )
                is not None
            )
            metrics = updated_customer_metrics(
                customer_row.satisfaction_score,
                1 + int(answers),
                answer.score,
                ticket.received_at.date(),
                customer_row.last_support_ticket,
            )
            ticket.churn_risk_raised = _RISK.index(metrics.churn_risk) > _RISK.index(
                ChurnRisk(customer_row.churn_risk or ChurnRisk.LOW)
            )
            customer_row.satisfaction_score = metrics.satisfaction_score
            customer_row.churn_risk = metrics.churn_risk.value
            customer_row.last_support_ticket = metrics.last_support_ticket
            customer_row.updated_at = now
        actions = low_score_actions(
            answer.score, customer.plan if customer else model.Plan.STARTER, now
        )
        if actions is None:
            return True
        credit = actions.credit
        if credit is not None and customer_row is not None:
            self._credit(
                session,
                ticket,
                customer_row,
                credit,
                f"lowscore:{ticket.number}",
                f"survey score {answer.score}/5 from an Enterprise customer (§8)",
                now,
            )
        self._customer_mail(
            session,
            ticket,
            key=f"lowscore-followup:{ticket.number}",
            template="low_satisfaction_followup",
            now=now,
            automatic=AutoSubmitted.AUTO_REPLIED,
            context_for=lambda c, t: LowSatisfactionFollowUpContext(
                c,
                t,
                answer.score,
                self.settings.company.support_manager_name,
                credit=self.notifier.money(credit) if credit is not None else None,
            ),
        )
        self._internal_mail(
            session,
            ticket,
            key=f"lowscore-alert:{ticket.number}",
            template="low_score_alert",
            to=self.notifier.role_recipients("support_manager"),
            now=now,
            context_for=lambda c, t: LowScoreAlertContext(
                c,
                t,
                answer.score,
                answer.comment,
                actions.manager_due,
                suggested_credit=self.notifier.money(credit) if credit is not None else None,
                timezone=c.timezone,
            ),
        )
        self._event(
            session,
            ticket,
            now,
            "ticket.escalated",
            f"to support_manager: {actions.reason}",
            team="support_manager",
            due=actions.manager_due.isoformat(),
        )
        return True

    def _credit(
        self,
        session: Session,
        ticket: Ticket,
        customer: Customer,
        amount: Decimal,
        key: str,
        reason: str,
        now: dt.datetime,
    ) -> None:
        inserted = session.execute(
            insert_new_only(session, Credit).returning(Credit.id),
            {
                "key": key,
                "customer_id": customer.id,
                "ticket_id": ticket.id,
                "amount": amount,
                "currency": self.settings.credits.currency,
                "reason": reason,
                "created_at": now,
            },
        ).first()
        if inserted is not None:
            self._event(
                session,
                ticket,
                now,
                "credit.recorded",
                f"{amount} {self.settings.credits.currency} credited: {reason}",
            )

    # -- incidents -------------------------------------------------------------------------

    def detect_incidents(
        self,
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
            .where(Ticket.priority == Priority.P0, Ticket.received_at >= now - INCIDENT_LOOKBACK)
            .order_by(Ticket.received_at)
        ).all()
        reports = [
            P0Report(row.number, row.customer_id, code, row.received_at)
            for row in rows
            for code in (row.classification.get("error_codes") or [])[:1]
        ]
        incident_of = {row.number: row.incident_id for row in rows}
        found = [(incident, _key(*incident.devops_key)) for incident in incident_decision(reports)]
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
                    self._event(
                        session,
                        ticket,
                        now,
                        "incident.linked",
                        f"linked to incident {record.id} ({incident.code}): {incident.reason}",
                    )
            entry = self.notifier.catalog.get(incident.code)
            devops = self.notifier.role_recipients("devops")
            if devops and linked:
                self.notifier.queue(
                    session,
                    key=f"incident:{key}",
                    ticket=linked[0],
                    template="incident_alert",
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
        self, session: Session, incident: Incident, summary_text: str, now: dt.datetime
    ) -> list[int]:
        """Resolve an incident: every linked ticket is resolved and its customer updated."""
        incident.status, incident.resolved_at, incident.summary = "resolved", now, summary_text
        tickets = session.scalars(
            select(Ticket).where(Ticket.incident_id == incident.id).order_by(Ticket.number)
        ).all()
        for ticket in tickets:
            if ticket.status in OPEN_STATUSES:
                resolve(ticket, now)
            self._customer_mail(
                session,
                ticket,
                key=f"incident-resolved:{incident.id}:{ticket.number}",
                template="incident_resolved",
                now=now,
                context_for=lambda c, t: IncidentResolvedContext(
                    c, t, incident.code, now, summary_text
                ),
            )
            self._event(
                session,
                ticket,
                now,
                "incident.resolved",
                f"incident {incident.id} ({incident.code}) resolved; customer updated",
            )
        return [t.number for t in tickets]

    # -- the breach notifier ---------------------------------------------------------------

    def send_breach_notices(
        self, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
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
        credit = Decimal(str(self.settings.credits.sla_breach))
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
                key = _key(*notice.key)
                summary.breaches.append(f"#{ticket.number} {notice.kind}: {notice.reason}")
                if dry_run:
                    continue
                self._breach(
                    session,
                    ticket,
                    notice.kind,
                    key,
                    notice.due_at,
                    notice.overdue_by,
                    notice.credit,
                    now,
                )

    def _breach(
        self,
        session: Session,
        ticket: Ticket,
        kind: BreachKind,
        key: str,
        due_at: dt.datetime,
        overdue_by: dt.timedelta,
        credit: Decimal | None,
        now: dt.datetime,
    ) -> None:
        target = dt.timedelta(hours=float(ticket.sla.get("first_response_target_hours", 24)))
        resolution = dt.timedelta(hours=float(ticket.sla.get("resolution_target_hours", 72)))
        money = self.notifier.money(credit) if credit is not None else None
        manager = self.settings.company.support_manager_name
        if kind is BreachKind.SLA_BREACH_APOLOGY:
            sent = self._customer_mail(
                session,
                ticket,
                key=key,
                template=kind.value,
                now=now,
                context_for=lambda c, t: SlaBreachApologyContext(
                    c, t, target, now + dt.timedelta(hours=4), manager, money
                ),
            )
            if sent and credit is not None and ticket.customer is not None:
                self._credit(
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
            sent = self._internal_mail(
                session,
                ticket,
                key=key,
                template=kind.value,
                to=self.notifier.role_recipients("support_manager"),
                now=now,
                context_for=context_for,
            )
        if sent:
            self._event(
                session,
                ticket,
                now,
                f"sla.{kind.value}",
                f"deadline {due_at.isoformat()} missed by {overdue_by}",
                key=key,
            )


def _key(ticket: object, kind: str, due_at: dt.datetime) -> str:
    """The text form of a (ticket, kind, due time) idempotency key."""
    return f"{kind}:{ticket}:{due_at.astimezone(dt.UTC).isoformat()}"


def _case_of(row: RefundCaseRecord) -> RefundCase:
    return RefundCase(
        row.amount or Decimal(0),
        row.currency,
        model.Plan(row.plan),
        row.days_since_purchase or 0,
        RefundKind(row.kind),
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

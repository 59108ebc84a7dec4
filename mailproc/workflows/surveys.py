"""Satisfaction surveys (§8): sent 24 hours after resolution, answers recorded, and a low
score followed up (a credit for Enterprise customers, the Support Manager alerted).
"""

from __future__ import annotations

import datetime as dt
import functools

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys, model
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.model import TicketStatus
from mailproc.core.survey import (
    ChurnRisk,
    low_score_actions,
    parse_survey_reply,
    survey_due,
    updated_customer_metrics,
)
from mailproc.core.tokens import reply_address
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.contexts import (
    LowSatisfactionFollowUpContext,
    LowScoreAlertContext,
    SurveyRequestContext,
)
from mailproc.store.models import Ticket
from mailproc.store.repo import record_event
from mailproc.workflows.context import CheckSummary, WorkflowContext
from mailproc.workflows.mail import core_customer

_RISK = (ChurnRisk.LOW, ChurnRisk.MEDIUM, ChurnRisk.HIGH)  # rising order


def send_due_surveys(
    ctx: WorkflowContext, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
) -> None:
    """24 hours after resolution, the survey goes out, once (§8.1)."""
    tickets = session.scalars(
        select(Ticket)
        .where(
            Ticket.status.in_((TicketStatus.RESOLVED, TicketStatus.CLOSED)),
            Ticket.survey_sent_at.is_(None),
            Ticket.resolved_at.is_not(None),
            Ticket.requester.is_not(None),
            Ticket.imported_at.is_(None),  # history imports were handled elsewhere: no survey
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
        address = reply_address(ctx.notifier.scheme, ticket.number)
        ctx.notifier.customer_mail(
            session,
            ticket,
            key=keys.survey(ticket.number),
            now=now,
            context_for=functools.partial(
                SurveyRequestContext, resolved_at=ticket.resolved_at, reply_address=address
            ),
        )


def survey_reply(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    subject: str,
    new_text: str,
    now: dt.datetime,
) -> bool:
    """Record a survey answer; False when the mail holds no score."""
    answer = parse_survey_reply(subject, new_text)
    if answer is None:
        return False
    ticket.survey_score, ticket.survey_comment = answer.score, answer.comment
    ticket.survey_answered_at = now
    record_event(
        session,
        now,
        EventKind.SURVEY_ANSWERED,
        f"score {answer.score}/5" + (f": {answer.comment}" if answer.comment else ""),
        ticket=ticket,
        detail={"score": answer.score},
    )
    customer_row = ticket.customer
    customer = core_customer(ticket)
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
    credit = actions.credit if customer_row is not None else None  # what is credited is told
    if credit is not None and customer_row is not None:
        ctx.credit(
            session,
            ticket,
            customer_row,
            credit,
            keys.low_score_credit(ticket.number),
            f"survey score {answer.score}/5 from an Enterprise customer (§8)",
            now,
        )
    ctx.notifier.customer_mail(
        session,
        ticket,
        key=keys.low_score_followup(ticket.number),
        now=now,
        automatic=AutoSubmitted.AUTO_REPLIED,
        context_for=lambda c, t: LowSatisfactionFollowUpContext(
            c,
            t,
            answer.score,
            ctx.settings.company.support_manager_name,
            credit=ctx.notifier.money(credit) if credit is not None else None,
        ),
    )
    ctx.notifier.internal_mail(
        session,
        ticket,
        key=keys.low_score_alert(ticket.number),
        to=ctx.notifier.role_recipients(AgentRole.SUPPORT_MANAGER),
        now=now,
        context_for=lambda c, t: LowScoreAlertContext(
            c,
            t,
            answer.score,
            answer.comment,
            actions.manager_due,
            credit=ctx.notifier.money(credit) if credit is not None else None,
            timezone=c.timezone,
        ),
    )
    record_event(
        session,
        now,
        EventKind.TICKET_ESCALATED,
        f"to support_manager: {actions.reason}",
        ticket=ticket,
        detail={"team": "support_manager", "due": actions.manager_due.isoformat()},
    )
    return True

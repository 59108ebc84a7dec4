"""Refunds (§6): a case opened from the customer's first mail, with the authorization it
needs; approvals and denials by agents' commands.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys, model
from mailproc.core.commands import RefundApproveCommand
from mailproc.core.events import EventKind
from mailproc.core.identity import Agent, AgentRole
from mailproc.core.refunds import (
    DEFAULT_REFUND_POLICY,
    AuthorizationLevel,
    RefundCase,
    RefundKind,
    detect_refund_request,
    required_level,
)
from mailproc.outbound.contexts import (
    RefundApprovalRequestContext,
    RefundConfirmationContext,
    RefundNote,
)
from mailproc.outbound.values import Approver, Money
from mailproc.store.models import RefundCaseRecord, Ticket
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only
from mailproc.workflows.context import Notices, WorkflowContext
from mailproc.workflows.mail import core_customer


def open_refund_case(
    ctx: WorkflowContext, session: Session, ticket: Ticket, text: str, now: dt.datetime
) -> None:
    """Open a refund case when the first mail asks for one; ask for approval if needed."""
    request = detect_refund_request(ticket.subject, text)
    if request is None:
        return
    customer = core_customer(ticket)
    plan = customer.plan if customer else model.Plan.STARTER
    price = DEFAULT_REFUND_POLICY.plan_prices.get(plan)
    amount = request.amount.value if request.amount else (price or Decimal(0))
    currency = (
        request.amount.currency
        if request.amount and request.amount.currency
        else ctx.settings.credits.currency
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
    record_event(
        session,
        now,
        EventKind.REFUND_REQUESTED,
        f"{kind.value} of {amount} {currency} needs {needed.level.label}: {needed.reason}",
        ticket=ticket,
        detail={"level": needed.level.value},
    )
    if request.amount is not None and request.amount.clamped:
        record_event(
            session,
            now,
            EventKind.REFUND_AMOUNT_CLAMPED,
            f"the amount written is over the largest a case holds: recorded as {amount} "
            f"{currency}; {needed.level.label} must confirm the real amount",
            ticket=ticket,
        )
    if needed.level is AuthorizationLevel.AGENT:
        return
    approver = Approver(needed.level.value)
    ctx.notifier.internal_mail(
        session,
        ticket,
        key=keys.refund_approval_request(ticket.number),
        to=ctx.notifier.role_recipients(AgentRole(approver.value)),
        now=now,
        context_for=lambda c, t: RefundApprovalRequestContext(
            c,
            t,
            amount=ctx.notifier.money(amount),
            approver=approver,
            requested_by=c.name or ticket.requester or "",
            reason=needed.reason,
            days_since_payment=days,
        ),
    )


def approve_refund(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    command: RefundApproveCommand,
    case_row: RefundCaseRecord,
    now: dt.datetime,
    notices: Notices | None = None,
) -> None:
    """An approved refund: the case is closed and the customer told (Template 4; in
    ``notices`` when given: an agent's reply carries it)."""
    case_row.status, case_row.decided_by, case_row.decided_at = "approved", agent.name, now
    case_row.approved_amount = command.amount
    if notices is not None:
        days = ctx.settings.credits.refund_settlement_days
        notices.refund = RefundNote(Money(command.amount, case_row.currency), *days)
    else:
        ctx.notifier.customer_mail(
            session,
            ticket,
            key=keys.refund_confirmation(ticket.number),
            now=now,
            context_for=lambda c, t: RefundConfirmationContext(
                c,
                t,
                Money(command.amount, case_row.currency),
                agent.name,
                *ctx.settings.credits.refund_settlement_days,
                cancellation=case_row.kind == RefundKind.CANCELLATION,
            ),
        )
    record_event(
        session,
        now,
        EventKind.REFUND_APPROVED,
        f"{command.amount} {case_row.currency} approved by {agent.name}; Template 4 sent",
        ticket=ticket,
    )


def deny_refund(row: RefundCaseRecord, agent: Agent, reason: str, now: dt.datetime) -> None:
    """A denied refund: the case is closed with the agent's reason."""
    row.status, row.decided_by, row.decided_at = "denied", agent.name, now
    row.decision_reason = reason


def requested_case(
    session: Session, ticket: Ticket
) -> tuple[RefundCaseRecord | None, RefundCase | None]:
    """The ticket's refund case row, and its core view while a decision is awaited."""
    row = session.scalars(
        select(RefundCaseRecord).where(RefundCaseRecord.ticket_id == ticket.id)
    ).first()
    case = _case_of(row) if row is not None and row.status == "requested" else None
    return row, case


def _case_of(row: RefundCaseRecord) -> RefundCase:
    return RefundCase(
        row.amount or Decimal(0),
        row.currency,
        model.Plan(row.plan),
        row.days_since_purchase or 0,
        RefundKind(row.kind),
    )

"""Refunds, partial credits and cancellations (§6): a case opened from the customer's first
mail, with the authorization it needs; approvals, denials, confirmations (and cancellations
closed without cancelling) by agents' commands; the customer told (Template 4) and their data
updated (§6.2 step 5).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys, model
from mailproc.core.commands import CancelConfirmCommand, CancellationRequest, RefundApproveCommand
from mailproc.core.events import EventKind
from mailproc.core.identity import Agent, AgentRole
from mailproc.core.refunds import (
    DEFAULT_REFUND_POLICY,
    AuthorizationLevel,
    RefundCase,
    RefundKind,
    cancellation_effective,
    detect_refund_request,
    metrics_after_outcome,
    required_level,
)
from mailproc.outbound.refund_contexts import (
    CancellationNote,
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
    """Open a case when the first mail asks for a refund, a partial credit, a cancellation
    or disputes the contract; ask the approver when an agent may not decide it."""
    request = detect_refund_request(ticket.subject, text)
    if request is None:
        return
    customer = core_customer(ticket)
    plan = customer.plan if customer else model.Plan.STARTER
    kind = request.kind
    price = DEFAULT_REFUND_POLICY.plan_prices.get(plan)
    if kind is RefundKind.CANCELLATION:
        amount = Decimal(0)  # a cancellation alone gives no money back
    elif request.amount is not None:
        amount = request.amount.value
    else:  # a partial credit without an amount: the approver writes it
        amount = Decimal(0) if kind is RefundKind.PARTIAL_CREDIT else (price or Decimal(0))
    currency = (
        request.amount.currency
        if request.amount and request.amount.currency
        else ctx.settings.credits.currency
    )
    received = ticket.received_at.date()
    days = (received - customer.signup_date).days if customer and customer.signup_date else None
    lock = customer.price_lock_until if customer else None
    price_lock = lock is not None and lock >= received
    case = RefundCase(amount, currency, plan, days, kind, request.contract_dispute, price_lock)
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
            "cancellation": request.cancellation,
            "contract_dispute": request.contract_dispute,
            "price_lock": price_lock,
        },
    )
    both = request.cancellation and kind is not RefundKind.CANCELLATION
    also = " (and cancellation)" if both else ""
    record_event(
        session,
        now,
        EventKind.REFUND_REQUESTED,
        f"{kind.value}{also} of {amount} {currency} needs {needed.level.label}: {needed.reason}",
        ticket=ticket,
        detail={"level": needed.level.value, "cancellation": request.cancellation},
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
            amount=Money(amount, currency),
            approver=approver,
            requested_by=c.name or ticket.requester or "",
            reason=needed.reason,
            days_since_payment=days,
            kind=kind.value,
            cancelling=request.cancellation,
        ),
    )


def approve_refund(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    command: RefundApproveCommand,
    row: RefundCaseRecord,
    now: dt.datetime,
    told: Notices,
) -> None:
    """An approved refund or partial credit: the case decided, a credit recorded (partial
    credit) or the customer's data updated (refund); what Template 4 says goes in ``told``."""
    currency = command.currency or row.currency
    row.status, row.decided_by, row.decided_at = "approved", agent.name, now
    row.approved_amount, row.currency = command.amount, currency
    credit = row.kind == RefundKind.PARTIAL_CREDIT
    if credit:
        ctx.credit(
            session,
            ticket,
            ticket.customer,
            command.amount,
            keys.partial_credit(ticket.number),
            f"partial credit on ticket #{ticket.number}",
            now,
            currency=currency,
            approved_by=agent.name,
        )
    else:
        _update_customer(session, ticket, now, cancellation=False)
    days = ctx.settings.credits.refund_settlement_days
    told.refund = RefundNote(Money(command.amount, currency), *days, credit=credit)
    record_event(
        session,
        now,
        EventKind.REFUND_APPROVED,
        f"{row.kind.replace('_', ' ')} of {command.amount} {currency} approved by {agent.name}",
        ticket=ticket,
    )


def deny_refund(
    session: Session,
    ticket: Ticket,
    row: RefundCaseRecord,
    agent: Agent,
    reason: str,
    now: dt.datetime,
) -> None:
    """A denied refund or credit: the case's money part closed with the agent's reason."""
    row.status, row.decided_by, row.decided_at = "denied", agent.name, now
    row.decision_reason = reason
    record_event(
        session,
        now,
        EventKind.REFUND_DENIED,
        f"{row.kind.replace('_', ' ')} denied by {agent.name}: {reason}",
        ticket=ticket,
    )


def confirm_cancellation(
    session: Session,
    ticket: Ticket,
    agent: Agent,
    command: CancelConfirmCommand,
    row: RefundCaseRecord,
    now: dt.datetime,
    told: Notices,
) -> None:
    """A confirmed cancellation: effective on the date written or after the notice period;
    Churn_Risk High (§6.2 step 5); what Template 4 says goes in ``told``."""
    effective, notice = cancellation_effective(
        row.requested_at.date(), now.date(), command.effective
    )
    row.effective_on, row.cancelled_by, row.cancelled_at = effective, agent.name, now
    if row.kind == RefundKind.CANCELLATION:
        row.status, row.decided_by, row.decided_at = "confirmed", agent.name, now
    _update_customer(session, ticket, now, cancellation=True)
    told.cancellation = CancellationNote(effective)
    record_event(
        session,
        now,
        EventKind.CANCELLATION_CONFIRMED,
        f"cancellation confirmed by {agent.name}, effective {effective} ({notice} days' notice)",
        ticket=ticket,
        detail={"effective_on": effective.isoformat(), "notice_days": notice},
    )


def deny_cancellation(
    session: Session,
    ticket: Ticket,
    row: RefundCaseRecord,
    agent: Agent,
    reason: str,
    now: dt.datetime,
) -> None:
    """A cancellation request closed without cancelling (detected by mistake or withdrawn):
    no Template 4, the customer's data unchanged; it can no longer be confirmed."""
    row.cancellation_denied_by, row.cancellation_denied_at = agent.name, now
    row.cancellation_denied_reason = reason
    if row.kind == RefundKind.CANCELLATION:
        row.status, row.decided_by, row.decided_at = "denied", agent.name, now
        row.decision_reason = reason
    record_event(
        session,
        now,
        EventKind.CANCELLATION_DENIED,
        f"cancellation request closed by {agent.name}: {reason or 'no reason given'}",
        ticket=ticket,
        detail={"by": agent.name, "reason": reason},
    )


def send_confirmation(
    ctx: WorkflowContext,
    session: Session,
    ticket: Ticket,
    agent: Agent,
    inbound_id: int,
    told: Notices,
    now: dt.datetime,
) -> None:
    """Template 4 for what one agent's mail decided, when no reply of the agent carries it."""
    if told.refund is None and told.cancellation is None:
        return
    ctx.notifier.customer_mail(
        session,
        ticket,
        key=keys.refund_confirmation(ticket.number, inbound_id),
        now=now,
        context_for=lambda c, t: RefundConfirmationContext(
            c, t, told.refund, told.cancellation, agent.name
        ),
    )


def requested_case(
    session: Session, ticket: Ticket, today: dt.date
) -> tuple[RefundCaseRecord | None, RefundCase | None, CancellationRequest | None]:
    """The ticket's case row, the core view of its refund or credit while a decision is
    awaited, and its cancellation while neither confirmed nor denied."""
    row = session.scalars(
        select(RefundCaseRecord).where(RefundCaseRecord.ticket_id == ticket.id)
    ).first()
    if row is None:
        return None, None, None
    plan = model.Plan(row.plan)
    refund = None
    if row.status == "requested" and row.kind != RefundKind.CANCELLATION:
        refund = RefundCase(
            row.amount or Decimal(0),
            row.currency,
            plan,
            row.days_since_purchase,
            RefundKind(row.kind),
            row.contract_dispute,
            row.price_lock,
        )
    cancellation = None
    if row.cancellation and row.effective_on is None and row.cancellation_denied_at is None:
        cancellation = CancellationRequest(
            plan,
            row.currency,
            row.requested_at.date(),
            today,
            row.contract_dispute,
            row.price_lock,
        )
    return row, refund, cancellation


def _update_customer(
    session: Session, ticket: Ticket, now: dt.datetime, *, cancellation: bool
) -> None:
    """Satisfaction_Score and Churn_Risk after an approved refund or a cancellation."""
    row = ticket.customer
    if row is None:
        return
    before = f"{row.satisfaction_score}/{row.churn_risk}"
    metrics = metrics_after_outcome(
        row.satisfaction_score,
        int(row.satisfaction_score is not None),
        cancellation,
        ticket.received_at.date(),
        row.last_support_ticket,
    )
    row.satisfaction_score = metrics.satisfaction_score
    row.churn_risk = metrics.churn_risk.value
    row.last_support_ticket = metrics.last_support_ticket
    row.updated_at = now
    outcome = "cancellation" if cancellation else "refund"
    record_event(
        session,
        now,
        EventKind.CUSTOMER_METRICS_UPDATED,
        f"customer {row.id} after the {outcome}: Satisfaction_Score/Churn_Risk {before} -> "
        f"{metrics.satisfaction_score}/{metrics.churn_risk.value}",
        ticket=ticket,
    )

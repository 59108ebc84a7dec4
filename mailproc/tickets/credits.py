"""The credits ledger for Finance: every credit (SLA breach, low score, partial credit) and
every approved refund, with the customer, ticket, exact amount, reason, approver and time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core.refunds import RefundKind
from mailproc.store.models import Credit, Customer, RefundCaseRecord, Ticket

CENTS = Decimal("0.01")
BY_PROCEDURE = "automatic"  # the approver of a credit the procedures grant by themselves


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One credit or approved refund; ``amount`` is exact (two decimals)."""

    time: dt.datetime
    kind: str  # "credit" or "refund"
    customer_id: int | None
    company: str | None
    ticket: int | None
    amount: Decimal
    currency: str
    reason: str
    approver: str

    def as_dict(self) -> dict[str, str | int | None]:
        """The line as JSON shows it: the amount as a decimal string, the time in ISO 8601."""
        return {
            "time": self.time.isoformat(),
            "kind": self.kind,
            "customer_id": self.customer_id,
            "company": self.company,
            "ticket": self.ticket,
            "amount": str(self.amount),
            "currency": self.currency,
            "reason": self.reason,
            "approver": self.approver,
        }


def credits_ledger(session: Session, since: dt.datetime | None = None) -> list[LedgerLine]:
    """Credits and approved refunds since ``since`` (all when None), oldest first."""
    credits = (
        select(Credit, Customer.company, Ticket.number)
        .outerjoin(Customer, Customer.id == Credit.customer_id)
        .outerjoin(Ticket, Ticket.id == Credit.ticket_id)
    )
    refunds = (
        select(RefundCaseRecord, Ticket.customer_id, Customer.company, Ticket.number)
        .join(Ticket, Ticket.id == RefundCaseRecord.ticket_id)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(
            RefundCaseRecord.status == "approved",
            RefundCaseRecord.kind == RefundKind.REFUND.value,
        )
    )
    if since is not None:
        credits = credits.where(Credit.created_at >= since)
        refunds = refunds.where(RefundCaseRecord.decided_at >= since)
    lines = [
        LedgerLine(
            credit.created_at,
            "credit",
            credit.customer_id,
            company,
            number,
            Decimal(credit.amount).quantize(CENTS),
            credit.currency,
            credit.reason,
            credit.approved_by or BY_PROCEDURE,
        )
        for credit, company, number in session.execute(credits)
    ]
    lines.extend(
        LedgerLine(
            case.decided_at or case.requested_at,
            "refund",
            customer_id,
            company,
            number,
            Decimal(case.approved_amount or 0).quantize(CENTS),
            case.currency,
            f"refund{' and cancellation' if case.cancellation else ''}: {case.level_reason}",
            case.decided_by or "",
        )
        for case, customer_id, company, number in session.execute(refunds)
    )
    return sorted(lines, key=lambda line: (line.time, line.ticket or 0, line.kind))

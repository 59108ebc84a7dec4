"""What the workflow procedures share: their context (notifier, SLA policy, events, credits),
the scheduler's summary and the text form of idempotency keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core.events import EventKind
from mailproc.core.sla import SlaPolicy
from mailproc.outbound.contexts import EscalationNote
from mailproc.outbound.refund_contexts import CancellationNote, RefundNote
from mailproc.store.models import Credit, Customer, Ticket
from mailproc.store.repo import record_event
from mailproc.store.staged import insert_new_only
from mailproc.workflows.mail import Notifier


@dataclass
class CheckSummary:
    """What one run of the scheduler did (or would do, in a dry run)."""

    breaches: list[str] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    surveys: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    kb: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per action."""
        return [
            *self.breaches,
            *self.escalations,
            *self.voided,
            *self.surveys,
            *self.incidents,
            *self.kb,
            *self.reports,
        ]


@dataclass
class Notices:
    """What an agent's commands tell the customer, gathered for the agent's reply (one mail)
    instead of a notice of their own."""

    resolved_within: dt.timedelta | None = None
    escalation: EscalationNote | None = None
    refund: RefundNote | None = None
    cancellation: CancellationNote | None = None


@dataclass(frozen=True)
class WorkflowContext:
    """The notifier and SLA policy every procedure works with, and its event log."""

    notifier: Notifier
    sla: SlaPolicy

    @property
    def settings(self) -> Settings:
        """The settings the notifier was built from."""
        return self.notifier.settings

    def credit(
        self,
        session: Session,
        ticket: Ticket,
        customer: Customer | None,
        amount: Decimal,
        key: str,
        reason: str,
        now: dt.datetime,
        *,
        currency: str | None = None,
        approved_by: str | None = None,
    ) -> None:
        """Credit the customer once per ``key`` (a breach, a low score, a partial credit);
        ``approved_by`` names who approved it (None: the procedures grant it)."""
        currency = currency or self.settings.credits.currency
        inserted = session.execute(
            insert_new_only(session, Credit).returning(Credit.id),
            {
                "key": key,
                "customer_id": customer.id if customer is not None else None,
                "ticket_id": ticket.id,
                "amount": amount,
                "currency": currency,
                "reason": reason,
                "created_at": now,
                "approved_by": approved_by,
            },
        ).first()
        if inserted is not None:
            by = f" (approved by {approved_by})" if approved_by else ""
            record_event(
                session,
                now,
                EventKind.CREDIT_RECORDED,
                f"{amount} {currency} credited: {reason}{by}",
                ticket=ticket,
            )

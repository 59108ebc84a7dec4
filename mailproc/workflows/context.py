"""What the workflow procedures share: their context (notifier, SLA policy, events, credits),
the scheduler's summary and the text form of idempotency keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core.sla import SlaPolicy
from mailproc.store.models import Credit, Customer, Ticket
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

    def lines(self) -> list[str]:
        """One line per action."""
        return [
            *self.breaches,
            *self.escalations,
            *self.voided,
            *self.surveys,
            *self.incidents,
            *self.kb,
        ]


@dataclass(frozen=True)
class WorkflowContext:
    """The notifier and SLA policy every procedure works with, and its event log."""

    notifier: Notifier
    sla: SlaPolicy

    @property
    def settings(self) -> Settings:
        """The settings the notifier was built from."""
        return self.notifier.settings

    def event(
        self,
        session: Session,
        ticket: Ticket,
        now: dt.datetime,
        kind: str,
        reason: str,
        **detail: object,
    ) -> None:
        """One decision in the ticket's event log."""
        self.notifier.record(session, ticket, now, kind, reason, **detail)

    def credit(
        self,
        session: Session,
        ticket: Ticket,
        customer: Customer,
        amount: Decimal,
        key: str,
        reason: str,
        now: dt.datetime,
    ) -> None:
        """Credit the customer once per ``key`` (a breach or a low score)."""
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
            self.event(
                session,
                ticket,
                now,
                "credit.recorded",
                f"{amount} {self.settings.credits.currency} credited: {reason}",
            )


def timer_key(ticket: object, kind: str, due_at: dt.datetime) -> str:
    """The text form of a (ticket, kind, due time) idempotency key."""
    return f"{kind}:{ticket}:{due_at.astimezone(dt.UTC).isoformat()}"

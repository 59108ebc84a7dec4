"""The procedures wired together: what the worker, the App and the CLI call.

Decisions come from the pure core (commands, escalation, refunds, survey, breach); the
procedure modules load the facts, apply the decisions in the caller's transaction and queue
mail through the Notifier. Every mail has an idempotency key, so repeated runs send nothing
twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from mailproc.core.identity import Agent
from mailproc.core.model import Address, Priority
from mailproc.core.sla import SlaPolicy
from mailproc.store.models import Inbound, Incident, Ticket
from mailproc.workflows import (
    agent_mail,
    breaches,
    escalation,
    incidents,
    kb,
    new_ticket,
    quarantined,
    replies,
    surveys,
)
from mailproc.workflows.agent_mail import AgentMail
from mailproc.workflows.context import CheckSummary, WorkflowContext
from mailproc.workflows.mail import Notifier
from mailproc.workflows.replies import CustomerReply, HeldMail


class Desk:
    """The support desk's workflows, sharing one notifier and SLA policy."""

    def __init__(self, notifier: Notifier, sla: SlaPolicy) -> None:
        self.context = WorkflowContext(notifier, sla)

    def ticket_opened(
        self, session: Session, ticket: Ticket, first_text: str, now: dt.datetime
    ) -> None:
        """A new ticket: its escalation timers and, if asked for, a refund case."""
        new_ticket.ticket_opened(self.context, session, ticket, first_text, now)

    def unauthenticated_agent_mail(
        self, session: Session, ticket: Ticket, agent: Agent, mail: AgentMail, now: dt.datetime
    ) -> None:
        """Mail from an agent's address without agent authentication configured: refused."""
        agent_mail.refuse_unauthenticated(self.context, session, ticket, agent, mail, now)

    def agent_mail(
        self,
        session: Session,
        ticket: Ticket,
        agent: Agent,
        mail: AgentMail,
        now: dt.datetime,
    ) -> str:
        """An agent's mail: commands applied, the rest relayed."""
        return agent_mail.agent_mail(self.context, session, ticket, agent, mail, now)

    def commands_not_from_agent(
        self,
        session: Session,
        ticket: Ticket,
        sender: Address,
        lines: Sequence[str],
        inbound_id: int,
        now: dt.datetime,
    ) -> None:
        """Command lines from someone who is not an agent: one reply saying so."""
        agent_mail.commands_not_from_agent(
            self.context, session, ticket, sender, lines, inbound_id, now
        )

    def customer_replied(
        self, session: Session, ticket: Ticket, reply: CustomerReply, now: dt.datetime
    ) -> None:
        """The customer wrote again: the assignee (or the agents) are told."""
        replies.customer_replied(self.context, session, ticket, reply, now)

    def mail_held(self, session: Session, ticket: Ticket, held: HeldMail, now: dt.datetime) -> None:
        """A mail held for review: the assignee (or the agents) are told."""
        replies.mail_held(self.context, session, ticket, held, now)

    def mail_quarantined(
        self, session: Session, inbound: Inbound, raw: bytes, now: dt.datetime
    ) -> None:
        """A quarantined mail: a known customer's alerts the agents and is answered once."""
        quarantined.mail_quarantined(self.context, session, inbound, raw, now)

    def kb_mail(
        self, session: Session, agent: Agent, subject: str, new_text: str, now: dt.datetime
    ) -> str:
        """A staff member's mail to the KB address: its #kb commands; "applied" or "refused"."""
        return kb.kb_mail(self.context, session, agent, subject, new_text, now)

    def survey_reply(
        self, session: Session, ticket: Ticket, subject: str, new_text: str, now: dt.datetime
    ) -> bool:
        """Record a survey answer; False when the mail holds no score."""
        return surveys.survey_reply(self.context, session, ticket, subject, new_text, now)

    def detect_incidents(self, session: Session, now: dt.datetime) -> None:
        """Link the look-back period's P0 tickets into incidents (after a batch with a P0)."""
        incidents.detect_incidents(self.context, session, now)

    def escalate_outages(
        self, session: Session, ticket_ids: Sequence[int], now: dt.datetime
    ) -> None:
        """New P0 tickets: their timers due within the hour fire now."""
        escalation.escalate_outages(self.context, session, ticket_ids, now)

    def check(self, session: Session, now: dt.datetime, *, dry_run: bool) -> CheckSummary:
        """The scheduler tick: breaches, due timers, surveys, incidents, recurring issues."""
        summary = CheckSummary()
        breaches.send_breach_notices(self.context, session, now, dry_run, summary)
        escalation.fire_due_timers(self.context, session, now, dry_run=dry_run, summary=summary)
        surveys.send_due_surveys(self.context, session, now, dry_run, summary)
        incidents.detect_incidents(self.context, session, now, dry_run, summary)
        kb.check_recurring(self.context, session, now, dry_run, summary)
        return summary

    def set_priority(
        self, session: Session, ticket: Ticket, priority: Priority, now: dt.datetime, by: str
    ) -> bool:
        """Change a ticket's priority and start the new priority's escalations."""
        return escalation.set_priority(self.context, session, ticket, priority, now, by)

    def resolve_incident(
        self, session: Session, incident: Incident, summary_text: str, now: dt.datetime
    ) -> list[int]:
        """Resolve an incident: every linked ticket is resolved and its customer updated."""
        return incidents.resolve_incident(self.context, session, incident, summary_text, now)

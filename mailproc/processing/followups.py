"""The follow-ups of a batch: named steps run once its tickets and messages are flushed.

All run in one savepoint; if one fails, they are redone one savepoint each, so the failing one
is logged on its ticket and never undoes a ticket or the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from mailproc.core import model
from mailproc.core.events import EventKind
from mailproc.core.identity import Agent
from mailproc.core.model import Address
from mailproc.errors import PermanentError
from mailproc.store import repo
from mailproc.store.models import Ticket
from mailproc.store.staged import staging
from mailproc.workflows.agent_mail import AgentMail
from mailproc.workflows.desk import Desk
from mailproc.workflows.mail import Notifier, load_requester_names
from mailproc.workflows.new_ticket import FirstMail, notify_new_ticket
from mailproc.workflows.replies import CustomerReply, HeldMail

log = logging.getLogger(__name__)


class FollowUp(Protocol):
    """A step run after the batch is flushed (its ticket has an id by then)."""

    @property
    def ticket(self) -> Ticket | None:
        """The ticket the step is for, if any: a failure is recorded on it."""
        ...

    def run(self, session: Session, now: dt.datetime) -> None:
        """Do the step in the caller's transaction."""
        ...


@dataclass(frozen=True)
class AnnounceTicket:
    """A new ticket: acknowledgment and alerts, escalation timers, a refund case."""

    ticket: Ticket
    customer: model.Customer | None
    first: FirstMail
    notifier: Notifier
    desk: Desk | None

    def run(self, session: Session, now: dt.datetime) -> None:
        """Queue the new ticket's mail, then open its workflows."""
        notify_new_ticket(self.notifier, session, self.ticket, self.customer, self.first, now)
        if self.desk is not None:
            self.desk.ticket_opened(session, self.ticket, self.first.new_text, now)


@dataclass(frozen=True)
class ApplyAgentMail:
    """An agent's mail on a ticket: commands applied, the rest relayed to the customer."""

    desk: Desk
    ticket: Ticket
    agent: Agent
    mail: AgentMail

    def run(self, session: Session, now: dt.datetime) -> None:
        """Apply the agent's mail."""
        self.desk.agent_mail(session, self.ticket, self.agent, self.mail, now)


@dataclass(frozen=True)
class RefuseCommands:
    """Command lines from a mailbox that is not an agent's: one reply saying so."""

    desk: Desk
    ticket: Ticket
    sender: Address
    lines: tuple[str, ...]
    inbound_id: int

    def run(self, session: Session, now: dt.datetime) -> None:
        """Answer the sender."""
        self.desk.commands_not_from_agent(
            session, self.ticket, self.sender, self.lines, self.inbound_id, now
        )


@dataclass(frozen=True)
class HeldForReview:
    """A mail held for review: the assignee (or the agents) are told."""

    desk: Desk
    ticket: Ticket
    sender: str | None
    new_text: str
    inbound_id: int

    def run(self, session: Session, now: dt.datetime) -> None:
        """Queue the alert."""
        held = HeldMail(self.inbound_id, self.new_text, self.sender)
        self.desk.mail_held(session, self.ticket, held, now)


@dataclass(frozen=True)
class AlertReply:
    """A customer's reply on a ticket: the assignee (or the agents) are told."""

    desk: Desk
    ticket: Ticket
    reply: CustomerReply

    def run(self, session: Session, now: dt.datetime) -> None:
        """Queue the alert."""
        self.desk.customer_replied(session, self.ticket, self.reply, now)


@dataclass(frozen=True)
class ApplyKbMail:
    """A staff member's mail to the knowledge-base address: its #kb commands (no ticket)."""

    desk: Desk
    ticket: None
    agent: Agent
    subject: str
    new_text: str

    def run(self, session: Session, now: dt.datetime) -> None:
        """Check and apply the #kb commands, or send the error mail."""
        self.desk.kb_mail(session, self.agent, self.subject, self.new_text, now)


@dataclass(frozen=True)
class RefuseAgentMail:
    """Mail from an agent's address while agent authentication is not configured."""

    desk: Desk
    ticket: Ticket
    agent: Agent
    mail: AgentMail

    def run(self, session: Session, now: dt.datetime) -> None:
        """Tell the agent why nothing was done."""
        self.desk.unauthenticated_agent_mail(session, self.ticket, self.agent, self.mail, now)


@dataclass(frozen=True)
class RecordSurveyReply:
    """A customer's answer to the satisfaction survey."""

    desk: Desk
    ticket: Ticket
    subject: str
    new_text: str

    def run(self, session: Session, now: dt.datetime) -> None:
        """Record the score (and what a low one calls for)."""
        self.desk.survey_reply(session, self.ticket, self.subject, self.new_text, now)


@dataclass(frozen=True)
class DetectIncidents:
    """The batch opened a P0: re-decide the incidents (once per batch, seeing every P0)."""

    desk: Desk
    ticket: Ticket  # the batch's first P0

    def run(self, session: Session, now: dt.datetime) -> None:
        """Link the look-back period's P0 tickets into incidents."""
        self.desk.detect_incidents(session, now)


@dataclass(frozen=True)
class EscalateOutages:
    """The batch's new P0 tickets: what their timers call for within the hour, now."""

    desk: Desk
    ticket: Ticket  # the batch's last P0
    ticket_ids: Sequence[int]

    def run(self, session: Session, now: dt.datetime) -> None:
        """Fire the P0 tickets' timers due within the hour (after every ticket's timers)."""
        self.desk.escalate_outages(session, self.ticket_ids, now)


def run_followups(
    session: Session,
    steps: Sequence[FollowUp],
    now: dt.datetime,
    notifier: Notifier | None,
    requesters: Sequence[str],
) -> None:
    """Run every step, together if they all succeed, else one savepoint each.

    ``requesters`` (of the tickets opened) have their auto-reply budgets loaded at once, and
    the steps' tickets their requester names.
    """
    if not steps:
        return
    try:
        with session.begin_nested(), staging(session), session.no_autoflush:
            if notifier is not None:
                notifier.load_budgets(session, requesters, now)
                load_requester_names(session, [s.ticket for s in steps if s.ticket is not None])
            for step in steps:
                step.run(session, now)
        return
    except (PermanentError, ValueError) as error:
        log.info("follow-ups of a batch failed (%s); retrying one by one", error)
    for step in steps:
        try:
            with session.begin_nested(), staging(session), session.no_autoflush:
                step.run(session, now)
        except (PermanentError, ValueError) as error:
            ticket = step.ticket
            log.warning(
                "%s: follow-up failed: %s", f"ticket #{ticket.number}" if ticket else "mail", error
            )
            repo.record_event(
                session,
                now,
                EventKind.NOTIFY_FAILED,
                f"{type(error).__name__}: {error}",
                ticket_id=ticket.id if ticket else None,
            )

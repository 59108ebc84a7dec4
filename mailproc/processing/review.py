"""Mail on a ticket from a stranger to it. Command lines from anyone but an agent or the
ticket's customer are refused. A valid reply token used by someone who is neither a
participant, nor the customer, nor an agent (a forwarded thread, a leaked address), and so is
mail threaded by a Message-ID of the ticket's thread from such a sender (anyone who knows a
customer's Message-ID could otherwise write into their ticket), and mail carrying a ticket's
subject tag from such a sender: held for review, quarantined with the reason, the assignee
told, not added, until ``mailproc quarantine release``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from mailproc.core.commands import known_command_lines
from mailproc.core.events import EventKind
from mailproc.core.identity import SenderIdentity, SenderKind
from mailproc.core.model import InboundStatus
from mailproc.core.ticket_threading import ThreadAction, Trust
from mailproc.processing.rows import Understood
from mailproc.store.models import Event, Inbound, Ticket
from mailproc.store.repo import record_event

_HELD_EVIDENCE = {  # what a stranger used to reach a ticket, as the reason tells it
    Trust.REPLY_TOKEN: "the reply address (a valid reply token)",
    Trust.MESSAGE_ID: "a Message-ID of its thread (In-Reply-To/References)",
    Trust.STRANGER_TAG: "its subject tag",
}


def is_customer_of(ticket: Ticket, sender: SenderIdentity) -> bool:
    """Whether the sender is the ticket's requester or its customer."""
    if sender.address is not None and sender.address == ticket.requester:
        return True
    return sender.customer is not None and sender.customer.id == ticket.customer_id


def refused_command_lines(ticket: Ticket, sender: SenderIdentity, new_text: str) -> tuple[str, ...]:
    """The command lines of a mail from someone who is neither an agent nor the ticket's
    customer (whose ``#...`` lines are plain text): answered, never applied."""
    if sender.kind is SenderKind.AGENT or is_customer_of(ticket, sender):
        return ()
    return known_command_lines(new_text)


def review_reason(
    session: Session,
    inbound: Inbound,
    understood: Understood,
    target: Ticket,
    participants: dict[str, str],
) -> str | None:
    """Why this mail is held for review, or None when it may be added to ``target``."""
    thread, sender = understood.thread, understood.sender
    if (
        thread.trust not in _HELD_EVIDENCE
        or thread.action not in (ThreadAction.ATTACH, ThreadAction.REOPEN)
        or sender.kind is SenderKind.AGENT
        or is_customer_of(target, sender)
        or (sender.address is not None and sender.address in participants)
        or (  # a stranger's command lines on the thread are answered, and not added either
            thread.trust is Trust.MESSAGE_ID
            and refused_command_lines(target, sender, understood.prepared.read_text)
        )
        or _released(session, inbound)
    ):
        return None
    who = sender.address or "a sender without a valid address"
    evidence = _HELD_EVIDENCE[thread.trust]
    return (
        f"held for review: {who} used {evidence} of ticket #{target.number} but is neither "
        "a participant nor an agent"
    )


def hold(session: Session, inbound: Inbound, target: Ticket, reason: str, now: dt.datetime) -> None:
    """Set the mail aside with its reason, recorded on the ticket."""
    inbound.status = InboundStatus.QUARANTINED
    inbound.last_error = reason
    inbound.quarantined_at = now
    record_event(session, now, EventKind.INBOUND_HELD, reason, ticket=target, inbound_id=inbound.id)


def _released(session: Session, inbound: Inbound) -> bool:
    """Whether an admin released this mail from quarantine: then it is added as usual."""
    if inbound.quarantined_at is None:  # never quarantined (every quarantine sets it)
        return False
    return bool(
        session.scalar(
            select(
                exists().where(
                    Event.inbound_id == inbound.id, Event.kind == EventKind.INBOUND_RELEASED
                )
            )
        )
    )

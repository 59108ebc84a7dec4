"""Mail on a ticket that needs an agent (§7): the assignee, or the agents, are told at once,
threaded on the ticket: a customer's reply (with the ticket's state and the time left on its
SLA), a mail held for review."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.events import EventKind
from mailproc.core.model import Address
from mailproc.outbound.compose import AttachmentRef, AutoSubmitted
from mailproc.outbound.desk_contexts import CustomerReplyAlertContext, HeldMailAlertContext
from mailproc.store.models import Outbox, Ticket
from mailproc.store.repo import record_event
from mailproc.workflows.context import WorkflowContext
from mailproc.workflows.mail import Thread, core_customer, within_limit

REPLY_TEXT_CHARS = 8000  # of the customer's new text in the alert


@dataclass(frozen=True, slots=True)
class CustomerReply:
    """The customer's mail on a ticket: its inbound id, its new text, whether it reopened."""

    inbound_id: int
    new_text: str
    reopened: bool = False
    attachments: tuple[AttachmentRef, ...] = ()


@dataclass(frozen=True, slots=True)
class HeldMail:
    """A mail held for review: its inbound id, its new text and its sender (if valid)."""

    inbound_id: int
    new_text: str
    sender: str | None


def customer_replied(
    ctx: WorkflowContext, session: Session, ticket: Ticket, reply: CustomerReply, now: dt.datetime
) -> None:
    """Alert the ticket's assignee (else ``[notify] agents_address``) of the customer's reply."""
    notifier = ctx.notifier
    to, assigned = _recipient(ctx, ticket)
    customer = core_customer(ticket)
    info = notifier.customer_info(ticket, customer)
    due = ticket.first_response_due if ticket.first_responded_at is None else ticket.resolution_due
    files, left_out = within_limit(reply.attachments, notifier.settings.notify.max_attachment_bytes)
    queued = notifier.queue(
        session,
        key=keys.customer_reply_alert(ticket.number, reply.inbound_id),
        ticket=ticket,
        locale="en",
        to=(to,),
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        thread=_alert_thread(session, ticket),
        attachments=files,
        context=CustomerReplyAlertContext(
            customer=info,
            ticket=notifier.ticket_info(ticket, customer, "en"),
            status=ticket.status,
            text=reply.new_text[:REPLY_TEXT_CHARS],
            now=now,
            due=due,
            reopened=reply.reopened,
            timezone=info.timezone,
            attachments_left_out=left_out,
        ),
    )
    if queued:
        record_event(
            session,
            now,
            EventKind.NOTIFY_REPLY_ALERT,
            f"the customer's reply is sent to {to.addr}"
            + (" (the assignee)" if assigned else " (no assignee)"),
            ticket=ticket,
            inbound_id=reply.inbound_id,
        )


def mail_held(
    ctx: WorkflowContext, session: Session, ticket: Ticket, held: HeldMail, now: dt.datetime
) -> None:
    """Tell the assignee (else the agents) that a mail on the ticket was held for review."""
    notifier = ctx.notifier
    to, _ = _recipient(ctx, ticket)
    customer = core_customer(ticket)
    queued = notifier.queue(
        session,
        key=keys.held_mail_alert(ticket.number, held.inbound_id),
        ticket=ticket,
        locale="en",
        to=(to,),
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        thread=_alert_thread(session, ticket),
        context=HeldMailAlertContext(
            customer=notifier.customer_info(ticket, customer),
            ticket=notifier.ticket_info(ticket, customer, "en"),
            sender=held.sender or "(no valid From address)",
            text=held.new_text[:REPLY_TEXT_CHARS],
            inbound_id=held.inbound_id,
        ),
    )
    if queued:
        record_event(
            session,
            now,
            EventKind.NOTIFY_HELD_ALERT,
            f"mail held for review: {to.addr} is told",
            ticket=ticket,
            inbound_id=held.inbound_id,
        )


def _recipient(ctx: WorkflowContext, ticket: Ticket) -> tuple[Address, bool]:
    """The ticket's assignee (True), else ``[notify] agents_address`` (False)."""
    notifier = ctx.notifier
    assignee = notifier.agent_named(ticket.assignee) if ticket.assignee else None
    if assignee is not None:
        return Address(assignee.name, assignee.addresses[0]), True
    return Address("Support agents", notifier.settings.notify.agents_address), False


def _alert_thread(session: Session, ticket: Ticket) -> Thread:
    """The ticket's new-ticket alert, so the agents' mail client keeps the ticket together."""
    message_id = session.scalar(
        select(Outbox.message_id).where(Outbox.key == keys.new_ticket_alert(ticket.number))
    )
    return Thread(message_id)

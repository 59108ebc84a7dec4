"""A new ticket (§2, §5): the customer's acknowledgment (Template 1) and the agents', P0 and
triage alerts; then its escalation timers and, if the mail asks for one, a refund case."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.events import EventKind
from mailproc.core.identity import AgentRole
from mailproc.core.locale_policy import LocaleChoice
from mailproc.core.model import Address, Customer, Priority
from mailproc.kb import articles
from mailproc.outbound.compose import AttachmentRef, AutoSubmitted
from mailproc.outbound.contexts import (
    AcknowledgmentContext,
    NewTicketAlertContext,
    TriageRequestContext,
)
from mailproc.outbound.values import CustomerInfo
from mailproc.store.models import Ticket
from mailproc.store.repo import record_event
from mailproc.workflows.context import WorkflowContext
from mailproc.workflows.escalation import alert_leaders, schedule_timers
from mailproc.workflows.mail import (
    EXCERPT_CHARS,
    Notifier,
    Thread,
    requester_address,
    within_limit,
)
from mailproc.workflows.promises import first_response_promise, resolution_promise
from mailproc.workflows.refunds import open_refund_case


@dataclass(frozen=True)
class FirstMail:
    """What the notifications of a new ticket need to know about the mail that opened it."""

    thread: Thread
    reply_locale: LocaleChoice  # decided as the ticket opened (its ``locale``)
    new_text: str
    may_auto_reply: bool  # a person wrote it (no auto-reply, bounce, list or own mail)
    from_agent: bool
    cc: tuple[str, ...] = ()  # its Cc participants: copied on the acknowledgment
    attachments: tuple[AttachmentRef, ...] = ()  # the customer's, sent on to the agents


def notify_new_ticket(
    notifier: Notifier,
    session: Session,
    ticket: Ticket,
    customer: Customer | None,
    first: FirstMail,
    now: dt.datetime,
) -> None:
    """Acknowledge the customer (Template 1) and alert agents, the P0 chain and triage."""
    choice = first.reply_locale
    info = notifier.customer_info(ticket, customer)
    _acknowledge(notifier, session, ticket, customer, first, choice, info, now)
    excerpt = first.new_text[:EXCERPT_CHARS]
    hits = tuple(f"{h['rule']}: {h['reason']}" for h in ticket.classification.get("rule_hits", []))
    internal = notifier.ticket_info(ticket, customer, "en")
    due = ticket.first_response_due or now
    agents = (Address("Support agents", notifier.settings.notify.agents_address),)
    files, left_out = within_limit(first.attachments, notifier.settings.notify.max_attachment_bytes)
    notifier.queue(
        session,
        key=keys.new_ticket_alert(ticket.number),
        ticket=ticket,
        locale="en",
        to=agents,
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        attachments=files,
        context=NewTicketAlertContext(
            customer=info,
            ticket=internal,
            first_response_due=due,
            excerpt=excerpt,
            rule_hits=hits,
            mail_language=choice.requested_language or choice.mail_language,
            reply_locale=choice.locale,
            translation_requested=choice.translation_requested,
            timezone=info.timezone,
            recent_tickets=_recent_tickets(session, ticket),
            attachments_left_out=left_out,
        ),
    )
    if ticket.priority == Priority.P0:
        alert_leaders(notifier, session, ticket, excerpt, now)
    if ticket.needs_triage and ticket.triage_due is not None:
        managers = notifier.role_recipients(AgentRole.SUPPORT_MANAGER)
        notifier.queue(
            session,
            key=keys.triage_request(ticket.number),
            ticket=ticket,
            locale="en",
            to=managers,
            automatic=AutoSubmitted.AUTO_GENERATED,
            now=now,
            context=TriageRequestContext(
                customer=info,
                ticket=internal,
                reason=ticket.triage_reason or "",
                triage_due=ticket.triage_due,
                excerpt=excerpt,
                rule_hits=hits,
                timezone=info.timezone,
            ),
        )
        record_event(
            session,
            now,
            EventKind.NOTIFY_TRIAGE_REQUEST,
            "unclear priority: the Support Manager decides within 30 minutes (§2.2)",
            ticket=ticket,
            detail={"to": [a.addr for a in managers]},
        )


def _acknowledge(
    notifier: Notifier,
    session: Session,
    ticket: Ticket,
    customer: Customer | None,
    first: FirstMail,
    choice: LocaleChoice,
    info: CustomerInfo,
    now: dt.datetime,
) -> None:
    requester = ticket.requester
    if not first.may_auto_reply or first.from_agent or not requester:
        why = (
            "no valid requester address"
            if not requester
            else (
                "the mail came from an agent"
                if first.from_agent
                else "automatic mail is never answered"
            )
        )
        record_event(session, now, EventKind.NOTIFY_ACK_SKIPPED, why, ticket=ticket)
        return
    allowed, budget = notifier.auto_reply_allowed(session, requester, now)
    if not allowed:
        record_event(
            session,
            now,
            EventKind.NOTIFY_ACK_SUPPRESSED,
            f"auto-reply budget {budget}",
            ticket=ticket,
            detail={"to": requester},
        )
        return
    shown = notifier.ticket_info(ticket, customer, choice.locale)
    article = (
        articles.quoted(session, notifier.catalog, shown.error_code, choice.locale)
        if shown.error_code
        else None
    )
    shown = dataclasses.replace(  # the published, public article only (§9 edge case)
        shown,
        error_title=article.title if article else shown.error_title,
        troubleshooting_steps=article.steps if article else (),
        steps_in_english=article.in_english if article else False,
    )
    queued = notifier.queue(
        session,
        key=keys.acknowledgment(ticket.number),
        ticket=ticket,
        locale=choice.locale,
        to=(requester_address(info),),
        automatic=AutoSubmitted.AUTO_REPLIED,
        now=now,
        thread=first.thread,
        cc=tuple(Address("", a) for a in first.cc if a != requester)
        if notifier.settings.threading.copy_cc
        else (),
        context=AcknowledgmentContext(
            customer=info,
            ticket=shown,
            first_response=first_response_promise(ticket, now),
            resolution=resolution_promise(ticket, now),
        ),
    )
    if queued:
        record_event(
            session,
            now,
            EventKind.NOTIFY_ACK_QUEUED,
            f"Template 1 in {choice.locale} ({choice.reason}); {budget}",
            ticket=ticket,
            detail={"locale": choice.locale, "translation_requested": choice.translation_requested},
        )


def _recent_tickets(session: Session, ticket: Ticket, limit: int = 5) -> tuple[str, ...]:
    """The customer's latest other tickets, for the agents' alert: number, status, subject."""
    if ticket.customer_id is None:
        return ()
    rows = session.execute(
        select(Ticket.number, Ticket.status, Ticket.subject)
        .where(Ticket.customer_id == ticket.customer_id, Ticket.id != ticket.id)
        .order_by(Ticket.id.desc())
        .limit(limit)
    ).all()
    return tuple(f"#{number} {status}: {subject[:60]}" for number, status, subject in rows)


def ticket_opened(
    ctx: WorkflowContext, session: Session, ticket: Ticket, first_text: str, now: dt.datetime
) -> None:
    """Schedule the escalation timers and open a refund case.

    Left to the caller, once per batch rather than per ticket: incident detection for new
    P0s and their immediate escalation (``escalate_outages``).
    """
    schedule_timers(ctx, session, ticket, now)
    if ticket.customer is not None:
        ticket.customer.last_support_ticket = ticket.received_at.date()
    open_refund_case(ctx, session, ticket, first_text, now)

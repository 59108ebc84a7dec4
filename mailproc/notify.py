"""Ticket mail: build template contexts from tickets, choose the locale, compose, queue.

Every mail is written to the outbox in the caller's transaction under an idempotency key, so
a ticket gets one acknowledgment however often its mail is processed or replayed. Each
decision to send or not to send is recorded as an event.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core.catalog import Catalog
from mailproc.core.detect import AutoReplyBudget, check_auto_reply_budget
from mailproc.core.identity import Agent
from mailproc.core.locale_policy import (
    LanguageGuess,
    LocaleChoice,
    LocalePolicy,
    LocaleRule,
    Region,
    choose_locale,
)
from mailproc.core.model import Address, Customer, Plan, Priority
from mailproc.core.tokens import ReplyAddressScheme, reply_address
from mailproc.outbound.compose import AutoSubmitted, Envelope, make_message_id
from mailproc.outbound.outbox import (
    envelope_sender,
    load_recent_auto_replies,
    queue_deferred,
    recent_auto_replies,
    retry_deadline,
)
from mailproc.outbound.render import (
    AcknowledgmentContext,
    CustomerInfo,
    Money,
    NewTicketAlertContext,
    P0AlertContext,
    Renderer,
    TemplateContext,
    TicketInfo,
    TriageRequestContext,
)
from mailproc.store import repo
from mailproc.store.models import Ticket

EXCERPT_CHARS = 600


@dataclass(frozen=True)
class Thread:
    """The mail being answered: its Message-ID and References, for threading headers."""

    message_id: str | None
    references: tuple[str, ...] = ()

    def chain(self) -> tuple[str, ...]:
        """References for an answer: theirs plus the message answered."""
        return (*self.references, *((self.message_id,) if self.message_id else ()))


class Notifier:
    """Composes and queues the mails the procedures ask for, in the right language."""

    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        scheme: ReplyAddressScheme,
        message_id_domain: str,
        catalog: Catalog,
        locale_policy: LocalePolicy,
        agents: Sequence[Agent],
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.scheme = scheme
        self.message_id_domain = message_id_domain
        self.catalog = catalog
        self.locale_policy = locale_policy
        self.agents = tuple(agents)
        self.budget = AutoReplyBudget(
            settings.auto_reply.max_per_sender,
            dt.timedelta(minutes=settings.auto_reply.period_minutes),
        )

    # -- building blocks ----------------------------------------------------------------

    def role_recipients(self, role: str) -> tuple[Address, ...]:
        """Everyone who receives mail for ``role``: its agents and its configured address."""
        found = [
            Address(a.name, a.addresses[0])
            for a in self.agents
            if any(r.value == role for r in a.roles)
        ]
        address = self.settings.notify.role_addresses.get(role)
        if address and all(a.addr != address for a in found):
            found.append(Address(role.replace("_", " ").title(), address))
        return tuple(found)

    def locale(
        self,
        customer: Customer | None,
        content_language: Sequence[str] = (),
        guess: LanguageGuess | None = None,
    ) -> LocaleChoice:
        """The language for mail to this customer (§5.4), given what their mail says."""
        return choose_locale(
            preferred=customer.language if customer else None,
            plan=customer.plan if customer else None,
            country=customer.country if customer else None,
            content_language=content_language,
            guess=guess,
            policy=self.locale_policy,
        )

    def customer_info(self, ticket: Ticket, customer: Customer | None) -> CustomerInfo:
        """The customer as the templates show them."""
        return CustomerInfo(
            name=(customer.contact_name if customer and customer.contact_name else "")
            or (ticket.requester or "").split("@")[0],
            email=ticket.requester or "",
            timezone=customer.timezone if customer else "UTC",
            company=customer.company if customer else None,
            customer_id=customer.id if customer else None,
        )

    def ticket_info(self, ticket: Ticket, customer: Customer | None, locale: str) -> TicketInfo:
        """The ticket as the templates show it, with the first error code's localized steps."""
        codes = ticket.classification.get("error_codes") or []
        entry = self.catalog.get(codes[0]) if codes else None
        return TicketInfo(
            number=ticket.number,
            subject=ticket.subject,
            priority=Priority(ticket.priority or "P3"),
            plan=customer.plan if customer else Plan.STARTER,
            error_code=entry.code if entry else None,
            error_title=entry.title(locale) if entry else None,
            troubleshooting_steps=tuple(entry.troubleshooting(locale)) if entry else (),
        )

    def money(self, amount: float | Decimal) -> Money:
        """An amount in the configured currency."""
        return Money(Decimal(str(amount)), self.settings.credits.currency)

    def queue(
        self,
        session: Session,
        *,
        key: str,
        ticket: Ticket,
        template: str,
        locale: str,
        context: TemplateContext,
        to: Sequence[Address],
        automatic: AutoSubmitted,
        now: dt.datetime,
        thread: Thread | None = None,
    ) -> bool:
        """Queue one mail (rendered at delivery); False when ``key`` was queued before."""
        support = self.settings.support
        envelope = Envelope(
            sender=Address(support.name, support.addresses[0]),
            to=tuple(to),
            reply_to=Address(support.name, reply_address(self.scheme, ticket.number)),
            message_id=make_message_id(key, secrets.token_hex(8), self.message_id_domain),
            date=now,
            auto_submitted=automatic,
            ticket_number=ticket.number,
            in_reply_to=thread.message_id if thread else None,
            references=thread.chain() if thread else (),
        )
        return queue_deferred(
            session,
            key=key,
            ticket_id=ticket.id,
            template=template,
            locale=locale,
            context=context,
            envelope=envelope,
            envelope_from=envelope_sender(self.settings),
            now=now,
            deadline=retry_deadline(now, self.settings.outbox),
        )

    def auto_reply_allowed(
        self, session: Session, address: str, now: dt.datetime
    ) -> tuple[bool, str]:
        """Whether one more automatic reply to ``address`` fits its budget, and why."""
        sent = recent_auto_replies(session, address, now - self.budget.period)
        decision = check_auto_reply_budget(sent, now, self.budget)
        return decision.allowed, decision.reason

    def load_budgets(self, session: Session, addresses: Sequence[str], now: dt.datetime) -> None:
        """Load the auto-reply budgets of many addresses at once (a batch's requesters)."""
        load_recent_auto_replies(session, addresses, now - self.budget.period)

    def record(
        self,
        session: Session,
        ticket: Ticket,
        now: dt.datetime,
        kind: str,
        reason: str,
        **detail: object,
    ) -> None:
        """One notification decision in the ticket's event log."""
        repo.record_event(session, now, kind, reason, ticket_id=ticket.id, detail=dict(detail))


def locale_policy_from(settings: Settings) -> LocalePolicy:
    """The §5.4 language policy from ``[locales]``."""
    locales = settings.locales
    return LocalePolicy(
        rules=tuple(
            LocaleRule(
                plans=frozenset(Plan(p) for p in rule.get("plans", ())),
                regions=frozenset(Region(r) for r in rule.get("regions", ())),
                locales=frozenset(rule.get("locales", ())),
            )
            for rule in locales.offer
        ),
        region_overrides={c.upper(): Region(r) for c, r in locales.region_overrides.items()},
        min_confidence=locales.min_detection_confidence,
    )


@dataclass(frozen=True)
class FirstMail:
    """What the notifications of a new ticket need to know about the mail that opened it."""

    thread: Thread
    content_language: tuple[str, ...]
    new_text: str
    language: LanguageGuess | None  # the detector's guess for new_text
    may_auto_reply: bool  # a person wrote it (no auto-reply, bounce, list or own mail)
    from_agent: bool


def notify_new_ticket(
    notifier: Notifier,
    session: Session,
    ticket: Ticket,
    customer: Customer | None,
    first: FirstMail,
    now: dt.datetime,
) -> None:
    """Acknowledge the customer (Template 1) and alert agents, the P0 chain and triage."""
    choice = notifier.locale(customer, first.content_language, first.language)
    info = notifier.customer_info(ticket, customer)
    _acknowledge(notifier, session, ticket, customer, first, choice, info, now)
    excerpt = first.new_text[:EXCERPT_CHARS]
    hits = tuple(f"{h['rule']}: {h['reason']}" for h in ticket.classification.get("rule_hits", []))
    internal = notifier.ticket_info(ticket, customer, "en")
    due = ticket.first_response_due or now
    agents = (Address("Support agents", notifier.settings.notify.agents_address),)
    notifier.queue(
        session,
        key=f"new:{ticket.number}",
        ticket=ticket,
        template="new_ticket_alert",
        locale="en",
        to=agents,
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        context=NewTicketAlertContext(
            customer=info,
            ticket=internal,
            first_response_due=due,
            excerpt=excerpt,
            rule_hits=hits,
            mail_language=choice.mail_language,
            reply_locale=choice.locale,
            translation_requested=choice.translation_requested,
            timezone=info.timezone,
            recent_tickets=_recent_tickets(session, ticket),
        ),
    )
    if ticket.priority == Priority.P0:
        leaders = (*notifier.role_recipients("cto"), *notifier.role_recipients("support_director"))
        notifier.queue(
            session,
            key=f"p0:{ticket.number}",
            ticket=ticket,
            template="p0_alert",
            locale="en",
            to=leaders,
            automatic=AutoSubmitted.AUTO_GENERATED,
            now=now,
            context=P0AlertContext(
                customer=info,
                ticket=internal,
                reported_at=ticket.received_at,
                devops_due=ticket.received_at + dt.timedelta(minutes=30),
                first_response_due=due,
                excerpt=excerpt,
                timezone=info.timezone,
            ),
        )
        notifier.record(
            session,
            ticket,
            now,
            "notify.p0_alert",
            "P0: the CTO and the Support Director are told (§4.1)",
            to=[a.addr for a in leaders],
        )
    if ticket.needs_triage and ticket.triage_due is not None:
        managers = notifier.role_recipients("support_manager")
        notifier.queue(
            session,
            key=f"triage:{ticket.number}",
            ticket=ticket,
            template="triage_request",
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
        notifier.record(
            session,
            ticket,
            now,
            "notify.triage_request",
            "unclear priority: the Support Manager decides within 30 minutes (§2.2)",
            to=[a.addr for a in managers],
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
        notifier.record(session, ticket, now, "notify.ack_skipped", why)
        return
    allowed, budget = notifier.auto_reply_allowed(session, requester, now)
    if not allowed:
        notifier.record(
            session,
            ticket,
            now,
            "notify.ack_suppressed",
            f"auto-reply budget {budget}",
            to=requester,
        )
        return
    target = dt.timedelta(hours=ticket.sla.get("first_response_target_hours", 24))
    queued = notifier.queue(
        session,
        key=f"ack:{ticket.number}",
        ticket=ticket,
        template="acknowledgment",
        locale=choice.locale,
        to=(Address(info.name, requester),),
        automatic=AutoSubmitted.AUTO_REPLIED,
        now=now,
        thread=first.thread,
        context=AcknowledgmentContext(
            customer=info,
            ticket=notifier.ticket_info(ticket, customer, choice.locale),
            sla_target=target,
            first_response_due=ticket.first_response_due or now,
        ),
    )
    if queued:
        notifier.record(
            session,
            ticket,
            now,
            "notify.ack_queued",
            f"Template 1 in {choice.locale} ({choice.reason}); {budget}",
            locale=choice.locale,
            translation_requested=choice.translation_requested,
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

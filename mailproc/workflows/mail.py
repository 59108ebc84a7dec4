"""Ticket mail: build template contexts from tickets, choose the locale, compose, queue.

The workflows' shared mail helpers: the Notifier, with the customer's and the internal mails
about a ticket, and the thread a mail answers. Every mail is written to the outbox in the
caller's transaction under an idempotency key, so a ticket gets one acknowledgment however
often its mail is processed or replayed. Each decision to send or not to send is recorded as
an event.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from mailproc.config import Settings
from mailproc.core.addresses import person_name
from mailproc.core.catalog import Catalog
from mailproc.core.detect import AutoReplyBudget, check_auto_reply_budget
from mailproc.core.identity import Agent, AgentRole
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
from mailproc.outbound.compose import AttachmentRef, AutoSubmitted, Envelope, make_message_id
from mailproc.outbound.contexts import TemplateContext
from mailproc.outbound.outbox import (
    envelope_sender,
    load_recent_auto_replies,
    queue_deferred,
    recent_auto_replies,
    retry_deadline,
)
from mailproc.outbound.render import Renderer
from mailproc.outbound.values import CustomerInfo, Money, TicketInfo
from mailproc.store import repo
from mailproc.store.models import MessageRecord, Ticket, TicketParticipant
from mailproc.store.staged import memo_get, scope_memo
from mailproc.workflows.staff import Staff

EXCERPT_CHARS = 600
ContextFor = Callable[[CustomerInfo, TicketInfo], TemplateContext]


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
        staff: Staff,
    ) -> None:
        self.settings = settings
        self.renderer = renderer
        self.scheme = scheme
        self.message_id_domain = message_id_domain
        self.catalog = catalog
        self.locale_policy = locale_policy
        self.staff = staff
        self.budget = AutoReplyBudget(
            settings.auto_reply.max_per_sender,
            dt.timedelta(minutes=settings.auto_reply.period_minutes),
        )

    @property
    def agents(self) -> tuple[Agent, ...]:
        """The agents now: configured and stored (``workflows/staff.py``)."""
        return self.staff.agents

    # -- building blocks ----------------------------------------------------------------

    def role_recipients(self, role: AgentRole) -> tuple[Address, ...]:
        """Everyone who receives mail for ``role``: its agents and its configured address."""
        found = [Address(a.name, a.addresses[0]) for a in self.agents if role in a.roles]
        address = self.settings.notify.role_addresses.get(role)
        if address and all(a.addr != address for a in found):
            found.append(Address(role.replace("_", " ").title(), address))
        return tuple(found)

    def agent_sender(self, agent: Agent) -> Address:
        """The From of an agent's reply: the agent's name via the team, our address."""
        support = self.settings.support
        name = support.agent_from.replace("{agent}", agent.name)
        name = name.replace("{support}", support.name)
        return Address(name, support.addresses[0])

    def agent_named(self, name: str) -> Agent | None:
        """The configured agent of this name or address (case-insensitive), if any."""
        wanted = name.strip().casefold()
        return next(
            (
                a
                for a in self.agents
                if a.name.casefold() == wanted or wanted in (x.casefold() for x in a.addresses)
            ),
            None,
        )

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
        """The customer as the templates show them: an unknown sender by their From's name."""
        name = (customer.contact_name if customer else "") or _requester_name(ticket)
        return CustomerInfo(
            name=name or ticket.requester or "",
            email=ticket.requester or "",
            timezone=customer.timezone if customer else "UTC",
            company=customer.company if customer else None,
            customer_id=customer.id if customer else None,
            named=bool(name),
            known=customer is not None,
        )

    def ticket_info(self, ticket: Ticket, customer: Customer | None, locale: str) -> TicketInfo:
        """The ticket as the templates show it, with the first error code's localized steps."""
        codes = ticket.classification.get("error_codes") or []
        entry = self.catalog.get(codes[0]) if codes else None
        return TicketInfo(
            number=ticket.number,
            subject=ticket.subject,
            priority=Priority(ticket.priority or "P3"),
            plan=customer.plan if customer else Plan(ticket.sla.get("plan") or Plan.STARTER),
            error_code=entry.code if entry else None,
            error_title=entry.title(locale) if entry else None,
            troubleshooting_steps=tuple(entry.troubleshooting(locale)) if entry else (),
            assignee=ticket.assignee,
        )

    def money(self, amount: float | Decimal) -> Money:
        """An amount in the configured currency."""
        return Money(Decimal(str(amount)), self.settings.credits.currency)

    def queue(
        self,
        session: Session,
        *,
        key: str,
        ticket: Ticket | None,
        locale: str,
        context: TemplateContext,
        to: Sequence[Address],
        automatic: AutoSubmitted,
        now: dt.datetime,
        thread: Thread | None = None,
        sender: Address | None = None,
        cc: Sequence[Address] = (),
        attachments: Sequence[AttachmentRef] = (),
        reply_to: str | None = None,
    ) -> bool:
        """Queue one mail (rendered at delivery); False when ``key`` was queued before.

        ``sender``: the From (default: the support team's name and address). Mail about no
        ticket (the knowledge base's, a quarantine notice) names the address replies go to
        (default: the support address).
        """
        support = self.settings.support
        number = ticket.number if ticket is not None else None
        if reply_to is None and number is not None:
            reply_to = reply_address(self.scheme, number)
        envelope = Envelope(
            sender=sender or Address(support.name, support.addresses[0]),
            to=tuple(to),
            reply_to=Address(support.name, reply_to or support.addresses[0]),
            message_id=make_message_id(key, secrets.token_hex(8), self.message_id_domain),
            date=now,
            auto_submitted=automatic,
            ticket_number=number,
            in_reply_to=thread.message_id if thread else None,
            references=thread.chain() if thread else (),
            cc=tuple(cc),
            attachments=tuple(attachments),
        )
        return queue_deferred(
            session,
            key=key,
            ticket_id=ticket.id if ticket is not None else None,
            locale=locale,
            context=context,
            envelope=envelope,
            envelope_from=envelope_sender(self.settings),
            now=now,
            deadline=retry_deadline(now, self.settings.outbox),
        )

    def customer_mail(
        self,
        session: Session,
        ticket: Ticket,
        *,
        key: str,
        context_for: ContextFor,
        now: dt.datetime,
        automatic: AutoSubmitted = AutoSubmitted.AUTO_GENERATED,
        sender: Address | None = None,
        cc: Sequence[Address] = (),
        attachments: Sequence[AttachmentRef] = (),
    ) -> bool:
        """Queue a mail to the ticket's customer in their language (``cc`` copied), addressed
        by the name the acknowledgment used (``requester_address``)."""
        if not ticket.requester:
            return False
        customer = core_customer(ticket)
        locale = self.locale(customer).locale
        info = self.customer_info(ticket, customer)
        context = context_for(info, self.ticket_info(ticket, customer, locale))
        return self.queue(
            session,
            key=key,
            ticket=ticket,
            locale=locale,
            context=context,
            to=(requester_address(info),),
            automatic=automatic,
            now=now,
            thread=_customer_thread(session, ticket),
            sender=sender,
            cc=cc,
            attachments=attachments,
        )

    def internal_mail(
        self,
        session: Session,
        ticket: Ticket,
        *,
        key: str,
        to: Sequence[Address],
        context_for: ContextFor,
        now: dt.datetime,
    ) -> bool:
        """Queue an internal notification (English) about a ticket."""
        if not to:
            return False
        customer = core_customer(ticket)
        context = context_for(
            self.customer_info(ticket, customer), self.ticket_info(ticket, customer, "en")
        )
        return self.queue(
            session,
            key=key,
            ticket=ticket,
            locale="en",
            context=context,
            to=to,
            automatic=AutoSubmitted.AUTO_GENERATED,
            now=now,
        )

    def cc_of(self, session: Session, ticket: Ticket) -> tuple[Address, ...]:
        """The ticket's Cc participants, copied on the customer's acknowledgment and agent
        replies when ``[threading] copy_cc`` (none otherwise)."""
        if not self.settings.threading.copy_cc:
            return ()
        rows = session.scalars(
            select(TicketParticipant.address)
            .where(TicketParticipant.ticket_id == ticket.id, TicketParticipant.role == "cc")
            .order_by(TicketParticipant.address)
        )
        return tuple(Address("", address) for address in rows)

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


def within_limit(
    attachments: Sequence[AttachmentRef], limit: int
) -> tuple[tuple[AttachmentRef, ...], tuple[str, ...]]:
    """The attachments that fit ``limit`` bytes together, in order, and the names left out."""
    kept: list[AttachmentRef] = []
    left_out: list[str] = []
    total = 0
    for attachment in attachments:
        if total + attachment.size <= limit:
            kept.append(attachment)
            total += attachment.size
        else:
            left_out.append(attachment.filename)
    return tuple(kept), tuple(left_out)


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
        preference_overrides_policy=locales.preference_overrides_policy,
    )


def core_customer(ticket: Ticket) -> Customer | None:
    """The core view of the ticket's customer, if it has one."""
    return repo.to_core_customer(ticket.customer) if ticket.customer is not None else None


def _requester_name(ticket: Ticket) -> str:
    """The name the requester gave in the From of their first mail on the ticket, if any."""
    session = object_session(ticket)
    if session is None or not ticket.requester:
        return ""
    known: str | None = memo_get(session, _REQUESTER_NAMES, ticket.id)
    if known is not None:
        return known
    return requester_names(session, [ticket.id]).get(ticket.id, "")


_REQUESTER_NAMES = "requester_names"  # the staging scope's memo: ticket id -> name


def requester_names(session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Each ticket's requester name (``_requester_name``), in one query; "" if none."""
    ranked = (
        select(
            MessageRecord.ticket_id,
            MessageRecord.from_name,
            func.row_number()
            .over(partition_by=MessageRecord.ticket_id, order_by=MessageRecord.id)
            .label("rank"),
        )
        .join(Ticket, Ticket.id == MessageRecord.ticket_id)
        .where(
            MessageRecord.ticket_id.in_(ticket_ids),
            MessageRecord.direction == "in",
            func.lower(MessageRecord.from_address) == func.lower(Ticket.requester),
            MessageRecord.from_name != "",
        )
        .subquery()
    )
    found = dict.fromkeys(ticket_ids, "")
    rows = session.execute(
        select(ranked.c.ticket_id, ranked.c.from_name)
        .where(ranked.c.rank <= 3)
        .order_by(ranked.c.ticket_id, ranked.c.rank)
    )
    for ticket_id, name in rows:
        if not found[ticket_id]:
            found[ticket_id] = person_name(name)
    return found


def load_requester_names(session: Session, tickets: Iterable[Ticket]) -> None:
    """Load for the current staging scope, in one query, the requester names of ``tickets``
    (a batch's), so that ``Notifier.customer_info`` needs no query for them."""
    memo = scope_memo(session, _REQUESTER_NAMES)
    wanted = sorted({t.id for t in tickets if t.id is not None and t.requester})
    if memo is not None and wanted:
        memo.update(requester_names(session, wanted))


def requester_address(info: CustomerInfo) -> Address:
    """The To of every mail to a ticket's requester: the customer list's contact name, else
    the checked display name of their first mail on the ticket (``Notifier.customer_info``),
    else the bare address."""
    return Address(info.name if info.named else "", info.email)


def _customer_thread(session: Session, ticket: Ticket) -> Thread:
    """The customer's latest mail on the ticket, so our mail threads in their client."""
    row = session.execute(
        select(MessageRecord.message_id, MessageRecord.references)
        .where(
            MessageRecord.ticket_id == ticket.id,
            MessageRecord.direction == "in",
            MessageRecord.sender_kind != "agent",
        )
        .order_by(MessageRecord.id.desc())
    ).first()
    if row is None:
        return Thread(None)
    return Thread(row[0], tuple(row[1] or ()))

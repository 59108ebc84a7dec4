"""SQLAlchemy 2 models: raw inbound mail, blobs, customers, tickets, messages, events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailproc.store import models_reports as models_reports  # the report roll-up tables
from mailproc.store.agents import AgentRecord as AgentRecord  # the CLI's agents
from mailproc.store.base import Base as Base  # its metadata holds every table defined below
from mailproc.store.base import UtcDateTime
from mailproc.store.models_kb import KbAlert as KbAlert  # the knowledge base's tables
from mailproc.store.models_kb import KbArticle as KbArticle


class Blob(Base):
    """Content-addressed bytes: raw messages and attachment contents, stored once per hash."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Inbound(Base):
    """One raw message as received, with its envelope: the source of truth for replays."""

    __tablename__ = "inbound"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    message_id_conflict: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str | None] = mapped_column(String(1000))
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    kind_reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    quarantined_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # a history import (``ingest --history``): when it was stored; never causes mail
    imported_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # bulk or spam an admin promoted to a person's mail (``inbound promote``): timed from then
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    raw: Mapped[Blob] = relationship(lazy="raise")

    __table_args__ = (Index("ix_inbound_status_id", "status", "id"),)


class Customer(Base):
    """A customer account, imported from the customer_analytics CSV."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    company: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    satisfaction_score: Mapped[float | None] = mapped_column(Float)
    churn_risk: Mapped[str | None] = mapped_column(String(8))
    last_support_ticket: Mapped[dt.date | None] = mapped_column(Date)
    signup_date: Mapped[dt.date | None] = mapped_column(Date)
    business_hours: Mapped[str | None] = mapped_column(String(100))
    price_lock_until: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    addresses: Mapped[list[CustomerAddress]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerAddress.position"
    )


class CustomerAddress(Base):
    """A normalized contact address of a customer; one address belongs to one customer."""

    __tablename__ = "customer_addresses"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    customer: Mapped[Customer] = relationship(back_populates="addresses")


class Ticket(Base):
    """A support case: its status, customer, priority and SLA clock."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    requester: Mapped[str | None] = mapped_column(String(320))
    unknown_customer: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[str | None] = mapped_column(String(2))
    intent: Mapped[str | None] = mapped_column(String(32))
    needs_triage: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))
    # §5.4: the customer wrote or prefers a language the answer is not written in
    translation_requested: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    parent_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    classified_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    first_response_due: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    resolution_due: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    first_responded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # why the ticket has its priority and due times (issue 4): rule hits, codes, SLA row, calendar
    classification: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    triage_reason: Mapped[str | None] = mapped_column(Text)
    triage_due: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    sla: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sla_pauses: Mapped[list[list[str | None]]] = mapped_column(JSON, default=list)
    # workflows (issue 7): assignment, escalations, incident, survey
    assignee: Mapped[str | None] = mapped_column(String(100))
    escalated_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    survey_sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    survey_score: Mapped[int | None] = mapped_column(Integer)
    survey_comment: Mapped[str | None] = mapped_column(Text)
    survey_answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, index=True)
    # reports (issue 16): the kind of mail that opened the ticket (``human``, ``bulk``; only
    # ``human`` counts as volume) and whether its survey answer raised the churn risk
    origin: Mapped[str] = mapped_column(String(16), default="human")
    churn_risk_raised: Mapped[bool] = mapped_column(Boolean, default=False)
    # opened by a history import, already handled: no SLA clock, timers or survey; not volume
    imported_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    customer: Mapped[Customer | None] = relationship(lazy="joined")

    @property
    def seen_at(self) -> dt.datetime:
        """When mailproc first had the mail that opened the ticket (history: its import)."""
        return self.imported_at or self.received_at


# the report's churn count (distinct customers whose answer raised their risk) reads few rows
Index(
    "ix_tickets_churn_answered",
    Ticket.survey_answered_at,
    postgresql_where=Ticket.churn_risk_raised,
    sqlite_where=Ticket.churn_risk_raised,
)


class TicketParticipant(Base):
    """An address that takes part in a ticket (requester, Cc, agent)."""

    __tablename__ = "ticket_participants"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))

    ticket: Mapped[Ticket] = relationship()


class MessageRecord(Base):
    """A parsed mail in a ticket's thread, inbound (from raw) or outbound (sent by us)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    from_address: Mapped[str | None] = mapped_column(String(320), index=True)
    from_name: Mapped[str] = mapped_column(String(320), default="")
    to: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    cc: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    reply_to: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    content_language: Mapped[str] = mapped_column(String(64), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_source: Mapped[str] = mapped_column(String(8), default="none")
    new_text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender_kind: Mapped[str] = mapped_column(String(16), default="unknown")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    ticket: Mapped[Ticket | None] = relationship()
    attachments: Mapped[list[AttachmentRecord]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="AttachmentRecord.id"
    )


class AttachmentRecord(Base):
    """An attachment's metadata; its bytes live in ``blobs`` under their hash."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))

    message: Mapped[MessageRecord] = relationship(back_populates="attachments")


class Event(Base):
    """Append-only audit log: what happened to a ticket or an inbound message, when and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(48))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket | None] = relationship()


# --- IMAP poller (issue 6) ---------------------------------------------------------------------


class ImapKey(Base):
    """An IMAP message already stored, keyed by (mailbox, UIDVALIDITY, UID)."""

    __tablename__ = "imap_keys"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"), index=True)
    stored_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Lease(Base):
    """A job only one process may run at a time (an IMAP mailbox's poller): holder and expiry."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# --- threading and detection (issue 3) -----------------------------------------------------


class UndeliverableAddress(Base):
    """An address our mail bounced from: permanent failures stop further automatic mail."""

    __tablename__ = "undeliverable_addresses"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    permanent: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"))
    first_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    bounces: Mapped[int] = mapped_column(Integer, default=1)


class AppSecret(Base):
    """A secret generated once and shared by every process (the reply-token key)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# --- outbound mail (issue 5) ---------------------------------------------------------------


# The rows the due index holds. A query must name them in these very words, values and all:
# SQLite uses a partial index only when the query's WHERE contains its condition literally.
OUTBOX_UNFINISHED: Final = "status IN ('pending', 'sending')"


class Outbox(Base):
    """One outbound mail, composed and queued in the transaction that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    template: Mapped[str] = mapped_column(String(48))
    locale: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(998))
    # None until the deliverer renders ``context`` through ``template`` (then kept for retries)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    envelope: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auto_submitted: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # 0: customer-facing mail, claimed first; 1: internal alerts and reports (outbox.lane_of)
    lane: Mapped[int] = mapped_column(SmallInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    deadline_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    recipients: Mapped[list[OutboxRecipient]] = relationship(
        cascade="all, delete-orphan", order_by="OutboxRecipient.address", lazy="selectin"
    )

    # the claim query: due rows by lane, oldest first; sent and failed rows are not in it
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "lane",
            "next_attempt_at",
            "id",
            postgresql_where=text(OUTBOX_UNFINISHED),
            sqlite_where=text(OUTBOX_UNFINISHED),
        ),
    )


class OutboxRecipient(Base):
    """One envelope recipient of an outbound mail: pending, sent or failed (with the reason)."""

    __tablename__ = "outbox_recipients"

    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


# --- workflows: timers, incidents, refunds, credits (issue 7) ------------------------------


class Timer(Base):
    """An escalation due at a time unless the ticket no longer needs it; unique per key."""

    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    team: Mapped[str] = mapped_column(String(32))
    notify_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    priority: Mapped[str] = mapped_column(String(2))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)
    made_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)  # an update's promise

    __table_args__ = (Index("ix_timers_status_due_at", "status", "due_at"),)


class Incident(Base):
    """Several customers reporting the same P0 error code: one incident, one DevOps alert."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    summary: Mapped[str] = mapped_column(Text, default="")


class RefundCaseRecord(Base):
    """A refund, partial credit or cancellation request and the level it needs (§6.1); a
    "refund and cancel" request keeps both parts (``cancellation``, confirmed on its own)."""

    __tablename__ = "refund_cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    plan: Mapped[str] = mapped_column(String(16))
    days_since_purchase: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    required_level: Mapped[str] = mapped_column(String(24))
    level_reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="requested")
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    approved_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    contract_dispute: Mapped[bool] = mapped_column(Boolean, default=False)
    price_lock: Mapped[bool] = mapped_column(Boolean, default=False)
    effective_on: Mapped[dt.date | None] = mapped_column(Date)
    cancelled_by: Mapped[str | None] = mapped_column(String(320))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # the cancellation part closed without cancelling (#cancel deny; migration 0016)
    cancellation_denied_by: Mapped[str | None] = mapped_column(String(320))
    cancellation_denied_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    cancellation_denied_reason: Mapped[str | None] = mapped_column(Text)


class Credit(Base):
    """An account credit promised to a customer (SLA breach §5.2, low score §8), once per key."""

    __tablename__ = "credits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    approved_by: Mapped[str | None] = mapped_column(String(320))  # None: the procedures'

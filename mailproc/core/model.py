"""Core value types shared by every stage: addresses, parsed messages, customers, priorities."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum


class Priority(StrEnum):
    """Ticket priority, P0 (critical outage) to P3 (low impact), procedures §2.1."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Plan(StrEnum):
    """Customer plan; it selects the SLA row (procedures §3.1)."""

    STARTER = "Starter"
    PROFESSIONAL = "Professional"
    ENTERPRISE = "Enterprise"


class TicketStatus(StrEnum):
    """Lifecycle of a ticket."""

    NEW = "new"
    OPEN = "open"
    WAITING = "waiting"  # waiting on the customer
    RESOLVED = "resolved"
    CLOSED = "closed"


class InboundStatus(StrEnum):
    """Processing state of one stored raw message."""

    PENDING = "pending"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: display name plus the address as written (decoded)."""

    name: str
    addr: str

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment: display-only sanitized name, declared type, size, hash and content."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class ParsedMessage:
    """Everything later stages need from one raw mail, decoded and bounded.

    ``mime`` keeps the parsed stdlib tree for detectors that must look inside parts
    (delivery reports, returned originals); it is excluded from equality and repr.
    """

    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    date: dt.datetime | None
    content_language: tuple[str, ...]
    content_type: str
    body_text: str
    body_source: str  # "plain", "html" or "none"
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    mime: EmailMessage | None = field(default=None, repr=False, compare=False)

    @property
    def sender(self) -> Address | None:
        """The first From address, or None for mail without a usable From."""
        return self.from_[0] if self.from_ else None

    def header_values(self, name: str) -> tuple[str, ...]:
        """All values of a header, in message order (case-insensitive name)."""
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == wanted)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as imported from the customer_analytics CSV."""

    id: int
    company: str
    contact_name: str
    emails: tuple[str, ...]
    plan: Plan
    country: str  # ISO 3166-1 alpha-2
    language: str  # en, es or fr
    timezone: str  # IANA name
    satisfaction_score: float | None = None
    churn_risk: str | None = None  # Low, Medium, High
    last_support_ticket: dt.date | None = None
    signup_date: dt.date | None = None
    business_hours: str | None = None  # e.g. "Mon-Fri 09:00-17:00"; None = plan default
    price_lock_until: dt.date | None = None  # a contract price lock (§6.3 edge case)

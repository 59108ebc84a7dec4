"""Template contexts of the mail that brings agents what needs them: a customer's reply, a
mail held for review, a known customer's quarantined mail (and the customer's notice of it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from mailproc.outbound.values import Audience, CustomerInfo, TicketInfo


@dataclass(frozen=True, slots=True)
class CustomerReplyAlertContext:
    """To the assignee (or the agents): the customer wrote again on a ticket.

    ``due`` is the SLA deadline that runs now (first response, else resolution), None when
    none does; ``reopened`` when the mail reopened a resolved ticket.
    """

    template: ClassVar[str] = "customer_reply_alert"
    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    status: str
    text: str
    now: dt.datetime
    due: dt.datetime | None = None
    reopened: bool = False
    timezone: str = "UTC"
    attachments_left_out: tuple[str, ...] = ()  # over [notify] max_attachment_bytes


@dataclass(frozen=True, slots=True)
class HeldMailAlertContext:
    """To the assignee (or the agents): a mail with the ticket's reply address came from a
    stranger to the ticket and was held for review; ``sender`` and ``text`` are theirs."""

    template: ClassVar[str] = "held_mail_alert"
    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    sender: str
    text: str
    inbound_id: int


class UnreadableProblem(StrEnum):
    """Why a customer's mail could not be read, and so what they should do about it."""

    TOO_LARGE = "too_large"  # send it again with smaller attachments, or links
    TOO_MANY_PARTS = "too_many_parts"  # send it again with fewer attachments
    UNREADABLE = "unreadable"  # send it again as a plain message


@dataclass(frozen=True, slots=True)
class MailUnreadableContext:
    """To a known customer whose mail was quarantined: it arrived, could not be read, and
    what to do; ``subject`` is their text."""

    template: ClassVar[str] = "mail_unreadable"
    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    subject: str
    received_at: dt.datetime
    problem: UnreadableProblem
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class QuarantineAlertContext:
    """To the agents: a known customer's mail was quarantined; why, and how to release it."""

    template: ClassVar[str] = "quarantine_alert"
    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    inbound_id: int
    subject: str
    received_at: dt.datetime
    reason: str
    customer_told: bool
    timezone: str = "UTC"

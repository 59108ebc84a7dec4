"""The contexts of refunds, credits and cancellations (§6): Template 4 to the customer, what
an agent's reply carries of it, and the approver's request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from mailproc.outbound.values import Approver, Audience, CustomerInfo, Money, TicketInfo


@dataclass(frozen=True, slots=True)
class RefundNote:
    """A processed refund (or, ``credit``, a partial credit to the account): what Template 4
    says, in its own mail or inside an agent's reply."""

    amount: Money
    settlement_days_min: int = 5
    settlement_days_max: int = 7
    credit: bool = False


@dataclass(frozen=True, slots=True)
class CancellationNote:
    """A confirmed cancellation: the plan ends on ``effective_on`` (Template 4 says we are
    sorry to see the customer go and welcome feedback)."""

    effective_on: dt.date


@dataclass(frozen=True, slots=True)
class RefundConfirmationContext:
    """Template 4 (§6.2): the refund or credit processed, the cancellation confirmed, or
    both for a "refund and cancel" request."""

    template: ClassVar[str] = "refund_confirmation"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    refund: RefundNote | None = None
    cancellation: CancellationNote | None = None
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class RefundApprovalRequestContext:
    """To the approver (§6.1): a refund, partial credit or cancellation above an agent's
    authority; ``cancelling``: the customer also asks to cancel."""

    template: ClassVar[str] = "refund_approval_request"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    amount: Money
    approver: Approver
    requested_by: str
    reason: str
    days_since_payment: int | None  # None: no Signup_Date on record
    kind: str = "refund"  # refund, partial_credit or cancellation
    cancelling: bool = False

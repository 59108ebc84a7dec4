"""The values template contexts share: money, the company, the customer and the ticket as mail
shows them, and who a ticket or a refund goes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from mailproc.config import Settings
from mailproc.core.model import Plan, Priority


class EscalationTeam(StrEnum):
    """Who an escalated ticket goes to (procedures §4.1)."""

    DEVOPS = "devops"
    ENGINEERING = "engineering"
    PRODUCT = "product"


class Audience(StrEnum):
    """Who reads a template's mail: its delivery lane (customer mail is sent first)."""

    CUSTOMER = "customer"  # the customer: acknowledgments, agents' replies, notices, apologies
    INTERNAL = "internal"  # agents, managers, other teams: alerts, requests, reports


class Approver(StrEnum):
    """Who approves a refund above an agent's authority (procedures §6.1)."""

    SUPPORT_MANAGER = "support_manager"
    FINANCE_DIRECTOR = "finance_director"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in an ISO 4217 currency, formatted for the locale by Babel."""

    amount: Decimal
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Company:
    """Who signs the mail; from the [company] settings."""

    brand: str = "DataFlow"
    legal_name: str = "DataFlow Solutions"
    support_email: str = "support@dataflow.com"
    billing_email: str = "billing@dataflow.com"
    phone: str = "+1-800-555-1234"
    phone_plans: frozenset[Plan] = frozenset({Plan.PROFESSIONAL, Plan.ENTERPRISE})
    postal_address: str = ""
    incident_channel: str = "Slack #incident-channel"


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    """The customer as mail shows them; ``name``, ``email`` and ``company`` are their data.

    ``name`` is the contact name, else the display name of their From, else their address;
    ``named`` says it is a person's name to greet them by. ``known``: in the customer list
    (an unknown sender is not told about a plan, and is written to as a prospect).
    """

    name: str
    email: str
    timezone: str = "UTC"
    company: str | None = None
    customer_id: int | None = None
    named: bool = True
    known: bool = True


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """The ticket facts every template may show; ``subject`` is the customer's text."""

    number: int
    subject: str
    priority: Priority
    plan: Plan
    error_code: str | None = None
    error_title: str | None = None
    troubleshooting_steps: tuple[str, ...] = ()
    steps_in_english: bool = False  # the article has no version in the mail's language yet
    assignee: str | None = None  # the agent it is assigned to (#assign); staff mail shows it


def company_from(settings: Settings) -> Company:
    """The signature block of outbound mail, from ``[company]`` and ``[support]``."""
    company = settings.company
    return Company(
        brand=company.brand,
        legal_name=company.legal_name,
        support_email=settings.support.addresses[0],
        billing_email=company.billing_email,
        phone=settings.support.phone,
        phone_plans=frozenset(Plan(p) for p in company.phone_plans),
        postal_address=company.postal_address,
        incident_channel=company.incident_channel,
    )

"""Template contexts: the typed data of each outbound mail, and the template each one names
(the values they share are in ``values.py``).

Adding a template: one context class here (naming its template folder and its audience, which
is its delivery lane), the folder's three parts under ``templates/``, and one sample in
``samples.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar, Final, get_args

from mailproc.core.sla import Promise
from mailproc.outbound.desk_contexts import (
    CustomerReplyAlertContext,
    HeldMailAlertContext,
    MailUnreadableContext,
    QuarantineAlertContext,
)
from mailproc.outbound.kb_contexts import KbAlertContext, KbReviewContext
from mailproc.outbound.refund_contexts import (
    CancellationNote,
    RefundApprovalRequestContext,
    RefundConfirmationContext,
    RefundNote,
)
from mailproc.outbound.values import (
    Audience,
    CustomerInfo,
    EscalationTeam,
    Money,
    TicketInfo,
)

# --- one context per template ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcknowledgmentContext:
    """Template 1 (§5.2): ticket received, first response within the plan's SLA."""

    template: ClassVar[str] = "acknowledgment"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    first_response: Promise
    resolution: Promise  # §3.1: the estimated resolution time
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class EscalationNoticeContext:
    """Template 2 (§5.2): the ticket went to another team; next update due."""

    template: ClassVar[str] = "escalation_notice"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    team: EscalationTeam
    update: Promise
    agent_name: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class SlaBreachApologyContext:
    """Template 3 (§5.2): the first-response SLA was missed; optional credit."""

    template: ClassVar[str] = "sla_breach_apology"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    missed: Promise  # the first response promised (Template 1) and not given
    update: Promise
    manager_name: str
    credit: Money | None = None


@dataclass(frozen=True, slots=True)
class LowSatisfactionFollowUpContext:
    """Template 5 (§8.1): a score below 3; a manager will reach out."""

    template: ClassVar[str] = "low_satisfaction_followup"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    score: int
    manager_name: str
    contact_within: dt.timedelta = dt.timedelta(hours=24)
    credit: Money | None = None


@dataclass(frozen=True, slots=True)
class SurveyRequestContext:
    """Satisfaction survey (§8.1): 1-5 by reply or by one mailto link per score."""

    template: ClassVar[str] = "survey_request"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    resolved_at: dt.datetime
    reply_address: str
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedNoticeContext:
    """The ticket was resolved (§4.2 step 5); a reply within ``reopen_within`` reopens it."""

    template: ClassVar[str] = "resolved_notice"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    agent_name: str | None = None
    resolution: str = ""
    reopen_within: dt.timedelta = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class IncidentResolvedContext:
    """The incident behind the ticket was resolved (§4.2 step 5, §4.3); ``summary`` is
    DevOps' plain-text account of it, ``status_page`` where the incident history is kept."""

    template: ClassVar[str] = "incident_resolved"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    code: str
    resolved_at: dt.datetime
    summary: str = ""
    agent_name: str | None = None
    status_page: str = "status.dataflow.com"


@dataclass(frozen=True, slots=True)
class EscalationNote:
    """An escalation told inside an agent's reply (what Template 2 says)."""

    team: EscalationTeam
    update: Promise


@dataclass(frozen=True, slots=True)
class AgentReplyContext:
    """An agent's answer relayed to the customer; ``body`` is the agent's text.

    ``sign_off`` is the agent's own closing line (none: the usual one is added); the notices
    the agent's commands caused come in the same mail: ``resolved_within`` (the reopen
    window of a resolved ticket), ``escalation``, ``refund`` and ``cancellation``.
    """

    template: ClassVar[str] = "agent_reply"

    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    agent_name: str
    body: str
    sign_off: str | None = None
    resolved_within: dt.timedelta | None = None
    escalation: EscalationNote | None = None
    refund: RefundNote | None = None
    cancellation: CancellationNote | None = None


@dataclass(frozen=True, slots=True)
class NewTicketAlertContext:
    """To agents: a new ticket waits for its first response."""

    template: ClassVar[str] = "new_ticket_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    first_response_due: dt.datetime
    excerpt: str
    rule_hits: tuple[str, ...] = ()
    mail_language: str | None = None
    reply_locale: str = "en"
    translation_requested: bool = False
    timezone: str = "UTC"
    recent_tickets: tuple[str, ...] = ()  # "#10012 resolved: subject", newest first
    attachments_left_out: tuple[str, ...] = ()  # over [notify] max_attachment_bytes


@dataclass(frozen=True, slots=True)
class EscalationAlertContext:
    """To DevOps, Engineering or Product (§4.1): a ticket is escalated to them."""

    template: ClassVar[str] = "escalation_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    team: EscalationTeam
    reason: str
    respond_by: dt.datetime
    excerpt: str
    escalated_by: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class P0AlertContext:
    """To the CTO and the Support Director (§4.1): a critical outage was reported."""

    template: ClassVar[str] = "p0_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    reported_at: dt.datetime
    devops_due: dt.datetime
    first_response_due: dt.datetime
    excerpt: str
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class TriageRequestContext:
    """To the Support Manager (§2.2 edge case): the priority is unclear."""

    template: ClassVar[str] = "triage_request"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    reason: str
    triage_due: dt.datetime
    excerpt: str
    rule_hits: tuple[str, ...] = ()
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class LowScoreAlertContext:
    """To the Support Manager (§8.1 step 3): a survey score below 3."""

    template: ClassVar[str] = "low_score_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    score: int
    comment: str
    follow_up_due: dt.datetime
    agent_name: str | None = None
    credit: Money | None = None  # credited to the customer's account (§8 edge case)
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class BreachAlertContext:
    """To the Support Manager (§3.2): a ticket's first response is overdue.

    ``due_at`` is the missed deadline, shown in ``timezone`` and in the customer's zone;
    ``credit`` is the account credit of the apology the customer was sent (Template 3).
    """

    template: ClassVar[str] = "breach_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    sla_target: dt.timedelta
    due_at: dt.datetime
    overdue_by: dt.timedelta
    credit: Money | None = None
    timezone: str = "UTC"
    apologized: bool = True  # Template 3 reached the customer (now or for an earlier deadline)


@dataclass(frozen=True, slots=True)
class ResolutionAlertContext:
    """To the Support Manager (§3.1, §4.3): a ticket missed its resolution target."""

    template: ClassVar[str] = "resolution_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    resolution_target: dt.timedelta
    due_at: dt.datetime
    overdue_by: dt.timedelta
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class UpdateOverdueAlertContext:
    """To the Support Manager: an update promised to the customer (Template 2 or 3) by
    ``due_at`` was not sent; ``promised_at`` is when the promise was made."""

    template: ClassVar[str] = "update_overdue_alert"
    audience: ClassVar[Audience] = Audience.INTERNAL

    customer: CustomerInfo
    ticket: TicketInfo
    promised_at: dt.datetime
    due_at: dt.datetime
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class IncidentNoticeContext:
    """To each customer of an incident (§4.3, §7.3): we know of the outage; updates are
    posted on ``status_page``."""

    template: ClassVar[str] = "incident_notice"
    audience: ClassVar[Audience] = Audience.CUSTOMER

    customer: CustomerInfo
    ticket: TicketInfo
    code: str
    started_at: dt.datetime
    status_page: str = "status.dataflow.com"
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentTicket:
    """One ticket of an incident; ``company`` is the customer's company or name (their data),
    None for an unknown sender."""

    number: int
    company: str | None
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class IncidentAlertContext:
    """To DevOps, once per incident (§4.3 edge case): several customers report one P0 code.

    ``tickets`` in order of receipt, the lead ticket first; ``customer_count`` the distinct
    customers among them; ``title`` None for a code the troubleshooting guide does not know.
    """

    template: ClassVar[str] = "incident_alert"

    audience: ClassVar[Audience] = Audience.INTERNAL

    code: str
    title: str | None
    started_at: dt.datetime
    tickets: tuple[IncidentTicket, ...]
    customer_count: int
    devops_due: dt.datetime
    status_page: str = "status.dataflow.com"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not self.tickets:
            raise ValueError("an incident has at least one ticket")

    @property
    def ticket(self) -> IncidentTicket:
        """The lead ticket, the one the alert is filed under."""
        return self.tickets[0]


@dataclass(frozen=True, slots=True)
class CommandProblem:
    """One problem of an email's commands: the line as written, what is wrong, the usage."""

    command: str
    problem: str
    usage: str | None = None


@dataclass(frozen=True, slots=True)
class CommandErrorContext:
    """To the sender of email commands that were not carried out: every problem, in one mail.

    ``from_agent`` False: the sender is not a configured agent (their mail was not added).
    """

    template: ClassVar[str] = "command_error"

    audience: ClassVar[Audience] = Audience.INTERNAL

    agent_name: str
    problems: tuple[CommandProblem, ...]
    ticket_number: int | None = None
    from_agent: bool = True


TemplateContext = (
    AcknowledgmentContext
    | EscalationNoticeContext
    | SlaBreachApologyContext
    | RefundConfirmationContext
    | LowSatisfactionFollowUpContext
    | SurveyRequestContext
    | ResolvedNoticeContext
    | AgentReplyContext
    | CustomerReplyAlertContext
    | NewTicketAlertContext
    | EscalationAlertContext
    | P0AlertContext
    | TriageRequestContext
    | LowScoreAlertContext
    | RefundApprovalRequestContext
    | CommandErrorContext
    | IncidentResolvedContext
    | BreachAlertContext
    | ResolutionAlertContext
    | IncidentAlertContext
    | MailUnreadableContext
    | HeldMailAlertContext
    | QuarantineAlertContext
    | KbAlertContext
    | KbReviewContext
    | UpdateOverdueAlertContext
    | IncidentNoticeContext
)

TEMPLATES: Final[dict[str, type[TemplateContext]]] = {
    context.template: context for context in get_args(TemplateContext)
}

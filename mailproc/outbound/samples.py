"""Preview samples of every template, and the check that renders them all in every locale."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, cast

from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.core.model import Plan, Priority
from mailproc.core.sla import Promise
from mailproc.outbound.contexts import (
    TEMPLATES,
    AcknowledgmentContext,
    AgentReplyContext,
    BreachAlertContext,
    CommandErrorContext,
    CommandProblem,
    EscalationAlertContext,
    EscalationNote,
    EscalationNoticeContext,
    IncidentAlertContext,
    IncidentNoticeContext,
    IncidentResolvedContext,
    IncidentTicket,
    LowSatisfactionFollowUpContext,
    LowScoreAlertContext,
    NewTicketAlertContext,
    P0AlertContext,
    ResolutionAlertContext,
    ResolvedNoticeContext,
    SlaBreachApologyContext,
    SurveyRequestContext,
    TemplateContext,
    TriageRequestContext,
    UpdateOverdueAlertContext,
)
from mailproc.outbound.desk_contexts import (
    CustomerReplyAlertContext,
    HeldMailAlertContext,
    MailUnreadableContext,
    QuarantineAlertContext,
    UnreadableProblem,
)
from mailproc.outbound.i18n import catalog_path
from mailproc.outbound.kb_contexts import KbAlertContext, KbOutcome, KbReviewContext
from mailproc.outbound.refund_contexts import (
    CancellationNote,
    RefundApprovalRequestContext,
    RefundConfirmationContext,
    RefundNote,
)
from mailproc.outbound.render import LAYOUTS_FOLDER, PARTS, Renderer, RenderError
from mailproc.outbound.values import Approver, CustomerInfo, EscalationTeam, Money, TicketInfo

_SAMPLE_TIME = dt.datetime(2025, 6, 9, 14, 30, tzinfo=dt.UTC)
_SAMPLE_CUSTOMER = CustomerInfo(
    name="Ana García",
    email="ana.garcia@example.com",
    timezone="Europe/Madrid",
    company="Acme Analytics S.L.",
    customer_id=1011,
)
_SAMPLE_TICKET = TicketInfo(
    number=12345,
    subject="Cannot connect data source",
    priority=Priority.P1,
    plan=Plan.ENTERPRISE,
    error_code="DS-1001",
    error_title="Invalid Credentials",
    troubleshooting_steps=(
        "Re-enter the data source username and password.",
        "Check that the database allows connections from DataFlow's IP addresses.",
    ),
)
_OUTAGE_TICKET = TicketInfo(
    number=12345,
    subject="Dashboards down: Error 503",
    priority=Priority.P0,
    plan=Plan.ENTERPRISE,
    error_code="DB-2002",
    error_title="Service Unavailable",
)
_SAMPLE_EXCERPT = "Since this morning our Postgres source fails with DS-1001.\nWe changed nothing."

_SAMPLE_CONTEXTS: Final[tuple[TemplateContext, ...]] = (
    AcknowledgmentContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        first_response=Promise(
            dt.timedelta(hours=4),
            _SAMPLE_TIME + dt.timedelta(hours=4),
            "business_start",
            _SAMPLE_TIME,
            False,
        ),
        resolution=Promise(
            dt.timedelta(hours=24),
            _SAMPLE_TIME + dt.timedelta(hours=24),
            "business_start",
            _SAMPLE_TIME,
            False,
        ),
    ),
    EscalationNoticeContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        team=EscalationTeam.ENGINEERING,
        update=Promise(
            dt.timedelta(hours=24),
            _SAMPLE_TIME + dt.timedelta(hours=24),
            "business_start",
            _SAMPLE_TIME,
            False,
        ),
        agent_name="Marco Rossi",
        reference="https://docs.dataflow.com/data-sources",
    ),
    SlaBreachApologyContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        missed=Promise(
            dt.timedelta(hours=4),
            _SAMPLE_TIME - dt.timedelta(hours=1),
            "business_hours",
            _SAMPLE_TIME - dt.timedelta(hours=5),
            False,
        ),
        update=Promise(
            dt.timedelta(hours=4),
            _SAMPLE_TIME + dt.timedelta(hours=4),
            "business_hours",
            _SAMPLE_TIME,
            False,
        ),
        manager_name="Claire Dubois",
        credit=Money(Decimal("50.00")),
    ),
    RefundConfirmationContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        refund=RefundNote(Money(Decimal("149.00"))),
        cancellation=CancellationNote(dt.date(2025, 6, 16)),
        agent_name="Marco Rossi",
    ),
    LowSatisfactionFollowUpContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        score=2,
        manager_name="Claire Dubois",
        credit=Money(Decimal("100.00")),
    ),
    SurveyRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        resolved_at=_SAMPLE_TIME,
        reply_address="support+12345-k7x2q9@dataflow.com",
    ),
    ResolvedNoticeContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        agent_name="Marco Rossi",
        resolution="The stored credentials had expired.\nWe refreshed them with you on the call.",
    ),
    AgentReplyContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        agent_name="Marco Rossi",
        body="Hi Ana,\n\nWe renewed the certificate; the sync runs again.",
        sign_off="Thanks!",
        resolved_within=dt.timedelta(days=14),
        escalation=EscalationNote(
            EscalationTeam.ENGINEERING,
            Promise(
                dt.timedelta(hours=24),
                _SAMPLE_TIME + dt.timedelta(hours=24),
                "business_start",
                _SAMPLE_TIME,
                False,
            ),
        ),
        refund=RefundNote(Money(Decimal("49.00"), "EUR")),
    ),
    CustomerReplyAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=dataclasses.replace(_SAMPLE_TICKET, assignee="Marco Rossi"),
        status="open",
        text="It fails again since this morning.",
        now=_SAMPLE_TIME,
        due=_SAMPLE_TIME + dt.timedelta(hours=3),
        reopened=True,
        timezone="Europe/Madrid",
        attachments_left_out=("sync-dump.tar.gz",),
    ),
    NewTicketAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        first_response_due=_SAMPLE_TIME + dt.timedelta(hours=4),
        excerpt=_SAMPLE_EXCERPT,
        rule_hits=("error-code DS-1001 → P1",),
        mail_language="de",
        translation_requested=True,
    ),
    EscalationAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        team=EscalationTeam.ENGINEERING,
        reason="P1 unresolved after 2 hours",
        respond_by=_SAMPLE_TIME + dt.timedelta(hours=2),
        excerpt=_SAMPLE_EXCERPT,
        escalated_by="Marco Rossi",
    ),
    P0AlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        reported_at=_SAMPLE_TIME,
        devops_due=_SAMPLE_TIME + dt.timedelta(minutes=30),
        first_response_due=_SAMPLE_TIME + dt.timedelta(hours=1),
        excerpt=_SAMPLE_EXCERPT,
    ),
    TriageRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        reason="partial outage reported by several customers",
        triage_due=_SAMPLE_TIME + dt.timedelta(minutes=30),
        excerpt=_SAMPLE_EXCERPT,
        rule_hits=("keyword 'outage' → P0?", "error-code DS-1001 → P1"),
    ),
    LowScoreAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        score=2,
        comment="It took three days to get a real answer.",
        follow_up_due=_SAMPLE_TIME + dt.timedelta(hours=12),
        agent_name="Marco Rossi",
        credit=Money(Decimal("100.00")),
    ),
    RefundApprovalRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        amount=Money(Decimal("1490.00")),
        approver=Approver.FINANCE_DIRECTOR,
        requested_by="Marco Rossi",
        reason="annual plan cancelled after 45 days",
        days_since_payment=45,
        cancelling=True,
    ),
    CommandErrorContext(
        agent_name="Marco Rossi",
        problems=(
            CommandProblem("#priority P7", "unknown priority 'P7'", "#priority P0|P1|P2|P3"),
            CommandProblem("#stauts resolved", "unknown command #stauts"),
        ),
        ticket_number=12345,
    ),
    IncidentNoticeContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_OUTAGE_TICKET,
        code="DB-2002",
        started_at=_SAMPLE_TIME,
    ),
    UpdateOverdueAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        promised_at=_SAMPLE_TIME,
        due_at=_SAMPLE_TIME + dt.timedelta(hours=24),
    ),
    IncidentResolvedContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_OUTAGE_TICKET,
        code="DB-2002",
        resolved_at=_SAMPLE_TIME + dt.timedelta(hours=3),
        summary="A failed database node made the API return errors 503.\n"
        "It was replaced and all pending syncs have been replayed.",
        agent_name="Marco Rossi",
    ),
    BreachAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        sla_target=dt.timedelta(hours=4),
        due_at=_SAMPLE_TIME + dt.timedelta(hours=4),
        overdue_by=dt.timedelta(minutes=45),
        credit=Money(Decimal("50.00")),
    ),
    ResolutionAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        resolution_target=dt.timedelta(hours=24),
        due_at=_SAMPLE_TIME + dt.timedelta(hours=24),
        overdue_by=dt.timedelta(hours=3),
    ),
    IncidentAlertContext(
        code="DB-2002",
        title="Service Unavailable",
        started_at=_SAMPLE_TIME,
        tickets=(
            IncidentTicket(12345, "Acme Analytics S.L.", _SAMPLE_TIME),
            IncidentTicket(12347, "Northwind Traders", _SAMPLE_TIME + dt.timedelta(minutes=6)),
            IncidentTicket(12351, None, _SAMPLE_TIME + dt.timedelta(minutes=11)),
            IncidentTicket(12352, "Globex GmbH", _SAMPLE_TIME + dt.timedelta(minutes=14)),
        ),
        customer_count=3,
        devops_due=_SAMPLE_TIME + dt.timedelta(minutes=30),
    ),
    HeldMailAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        sender="someone@elsewhere.example",
        text="Please also send me the invoice of last month.",
        inbound_id=4712,
    ),
    MailUnreadableContext(
        customer=_SAMPLE_CUSTOMER,
        subject="Logs of last night's failures",
        received_at=_SAMPLE_TIME,
        problem=UnreadableProblem.TOO_MANY_PARTS,
    ),
    QuarantineAlertContext(
        customer=_SAMPLE_CUSTOMER,
        inbound_id=4711,
        subject="Logs of last night's failures",
        received_at=_SAMPLE_TIME,
        reason="LimitExceeded: message has 301 MIME parts; the limit is 250",
        customer_told=True,
        timezone="Europe/Madrid",
    ),
    KbAlertContext(
        key="API-4004",
        count=12,
        month="2026-12",
        kb_address="kb@dataflow.com",
        title="Too many requests",
        last_reviewed=dt.datetime(2026, 6, 2, 9, 0, tzinfo=dt.UTC),
        alerted_at=dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC),
    ),
    KbReviewContext(
        key="API-4004",
        title="Too many requests",
        outcome=KbOutcome.REVIEW,
        author="Alex Agent",
        internal=False,
        steps=(("en", ("Wait for the Retry-After delay.", "Batch your requests.")),),
    ),
)

# one sample per template, by template name
SAMPLES: Final[Mapping[str, TemplateContext]] = {
    sample.template: sample for sample in _SAMPLE_CONTEXTS
}
# a sender not in the customer list: greeted by their From name, told no plan, a prospect;
# their ticket is timed as a Starter one (workflows/mail.py Notifier.ticket_info)
_UNKNOWN_SENDER = CustomerInfo(name="Jane Doe", email="customer2635@example.com", known=False)
_UNKNOWN_TICKET = dataclasses.replace(_SAMPLE_TICKET, plan=Plan.STARTER)
# the templates whose wording differs for an unknown sender, with such a sender
UNKNOWN_SENDER_SAMPLES: Final[Mapping[str, TemplateContext]] = {
    name: dataclasses.replace(
        cast(Any, SAMPLES[name]), customer=_UNKNOWN_SENDER, ticket=_UNKNOWN_TICKET, **changes
    )
    for name, changes in (
        ("acknowledgment", {}),
        ("refund_confirmation", {}),
        ("agent_reply", {"body": "Hi Jane,\n\nWe renewed the certificate; the sync runs again."}),
    )
}


def ticket_number_of(context: TemplateContext) -> int | None:
    """The ticket a context is about, if any."""
    if isinstance(context, CommandErrorContext):
        return context.ticket_number
    if isinstance(context, MailUnreadableContext | QuarantineAlertContext):
        return None  # a quarantined mail belongs to no ticket yet
    if isinstance(context, KbAlertContext | KbReviewContext):
        return None  # knowledge-base mail is about no ticket
    return context.ticket.number


def check_templates(renderer: Renderer) -> list[str]:
    """Render every template in every locale with its sample; return the problems found.

    Checked: each registered template has its three parts and no template folder is
    unregistered; each locale other than English has a compiled catalog; every sample
    renders, with a subject, and shows its ticket number; no string falls back to English.
    The unknown-sender samples (UNKNOWN_SENDER_SAMPLES) are rendered and checked alike.
    """
    problems: list[str] = []
    folders = {path.name for path in renderer.templates_dir.iterdir() if path.is_dir()}
    problems.extend(
        f"{name}: template folder is not registered in TEMPLATES"
        for name in sorted(folders - TEMPLATES.keys() - {LAYOUTS_FOLDER})
    )
    for name in TEMPLATES:
        problems.extend(
            f"{name}: missing {part}"
            for part in PARTS
            if not (renderer.templates_dir / name / part).is_file()
        )
    for locale in SUPPORTED_LOCALES:
        if locale != "en" and not catalog_path(renderer.locales_dir, locale).is_file():
            problems.append(
                f"{locale}: no compiled catalog at {catalog_path(renderer.locales_dir, locale)}"
            )
        samples = [
            *SAMPLES.items(),
            *((f"{name} (unknown sender)", c) for name, c in UNKNOWN_SENDER_SAMPLES.items()),
        ]
        for name, context in samples:
            try:
                mail = renderer.render(context, locale)
            except RenderError as exc:
                problems.append(f"{name} ({locale}): {exc}")
                continue
            number = ticket_number_of(context)
            if not mail.subject:
                problems.append(f"{name} ({locale}): empty subject")
            if number is not None and not all(
                str(number) in part for part in (mail.text, mail.html)
            ):
                problems.append(f"{name} ({locale}): ticket number {number} missing from a body")
        problems.extend(
            f"{locale}: no translation, English shown: {message!r}"
            for message in sorted(renderer.fallbacks(locale))
        )
    return problems

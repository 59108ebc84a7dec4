"""Outbound mail templates: typed contexts, per-locale Jinja2 + Babel environments, rendering."""

from __future__ import annotations

import datetime as dt
import gettext
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_time,
    format_timedelta,
    get_datetime_format,
    get_timezone_name,
)
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from markupsafe import Markup, escape

from mailproc.config import Settings
from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.core.model import Plan, Priority
from mailproc.resources import resource_path

logger = logging.getLogger(__name__)

CATALOG_DOMAIN: Final = "mailproc"
PARTS: Final = ("subject.txt", "body.txt", "body.html")
LAYOUTS_FOLDER: Final = "layouts"  # shared layouts and macros, not a template

# The HTML parts import the shared macros under this name: the same source as the text
# parts' macros.txt, compiled with HTML autoescape. A macro's output takes the caller's
# autoescape mode, so text-compiled macros would hand unescaped customer data to HTML.
_HTML_ALIASES: Final = {"layouts/macros.html": "layouts/macros.txt"}

_PLACEHOLDER = re.compile(r"%\((\w+)\)")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


class RenderError(ValueError):
    """A mail cannot be rendered: unknown template or locale, wrong context, template bug.

    Permanent: rendering the same input again fails the same way.
    """


# --- values shared by the contexts -----------------------------------------------------------


class EscalationTeam(StrEnum):
    """Who an escalated ticket goes to (procedures §4.1)."""

    DEVOPS = "devops"
    ENGINEERING = "engineering"
    PRODUCT = "product"


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
    """The customer as mail shows them; ``name``, ``email`` and ``company`` are their data."""

    name: str
    email: str
    timezone: str = "UTC"
    company: str | None = None
    customer_id: int | None = None


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


# --- one context per template ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcknowledgmentContext:
    """Template 1 (§5.2): ticket received, first response within the plan's SLA."""

    customer: CustomerInfo
    ticket: TicketInfo
    sla_target: dt.timedelta
    first_response_due: dt.datetime
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class EscalationNoticeContext:
    """Template 2 (§5.2): the ticket went to another team; next update due."""

    customer: CustomerInfo
    ticket: TicketInfo
    team: EscalationTeam
    update_within: dt.timedelta
    update_due: dt.datetime
    agent_name: str | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class SlaBreachApologyContext:
    """Template 3 (§5.2): the first-response SLA was missed; optional credit."""

    customer: CustomerInfo
    ticket: TicketInfo
    sla_target: dt.timedelta
    update_due: dt.datetime
    manager_name: str
    credit: Money | None = None


@dataclass(frozen=True, slots=True)
class RefundConfirmationContext:
    """Template 4 (§6.2): refund processed."""

    customer: CustomerInfo
    ticket: TicketInfo
    amount: Money
    agent_name: str | None = None
    settlement_days_min: int = 5
    settlement_days_max: int = 7
    cancellation: bool = False


@dataclass(frozen=True, slots=True)
class LowSatisfactionFollowUpContext:
    """Template 5 (§8.1): a score below 3; a manager will reach out."""

    customer: CustomerInfo
    ticket: TicketInfo
    score: int
    manager_name: str
    contact_within: dt.timedelta = dt.timedelta(hours=24)
    credit: Money | None = None


@dataclass(frozen=True, slots=True)
class SurveyRequestContext:
    """Satisfaction survey (§8.1): 1-5 by reply or by one mailto link per score."""

    customer: CustomerInfo
    ticket: TicketInfo
    resolved_at: dt.datetime
    reply_address: str
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedNoticeContext:
    """The ticket was resolved (§4.2 step 5); a reply within ``reopen_within`` reopens it."""

    customer: CustomerInfo
    ticket: TicketInfo
    agent_name: str | None = None
    resolution: str = ""
    reopen_within: dt.timedelta = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class IncidentResolvedContext:
    """The incident behind the ticket was resolved (§4.2 step 5, §4.3); ``summary`` is
    DevOps' plain-text account of it, ``status_page`` where the incident history is kept."""

    customer: CustomerInfo
    ticket: TicketInfo
    code: str
    resolved_at: dt.datetime
    summary: str = ""
    agent_name: str | None = None
    status_page: str = "status.dataflow.com"


@dataclass(frozen=True, slots=True)
class AgentReplyContext:
    """An agent's answer relayed to the customer; ``body`` is the agent's text."""

    customer: CustomerInfo
    ticket: TicketInfo
    agent_name: str
    body: str


@dataclass(frozen=True, slots=True)
class NewTicketAlertContext:
    """To agents: a new ticket waits for its first response."""

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


@dataclass(frozen=True, slots=True)
class EscalationAlertContext:
    """To DevOps, Engineering or Product (§4.1): a ticket is escalated to them."""

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

    customer: CustomerInfo
    ticket: TicketInfo
    score: int
    comment: str
    follow_up_due: dt.datetime
    agent_name: str | None = None
    suggested_credit: Money | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class RefundApprovalRequestContext:
    """To the approver (§6.1): a refund above the agent's authority."""

    customer: CustomerInfo
    ticket: TicketInfo
    amount: Money
    approver: Approver
    requested_by: str
    reason: str
    days_since_payment: int


@dataclass(frozen=True, slots=True)
class BreachAlertContext:
    """To the Support Manager (§3.2): a ticket's first response is overdue.

    ``due_at`` is the missed deadline, shown in ``timezone`` and in the customer's zone;
    ``credit`` is the account credit of the apology the customer was sent (Template 3).
    """

    customer: CustomerInfo
    ticket: TicketInfo
    sla_target: dt.timedelta
    due_at: dt.datetime
    overdue_by: dt.timedelta
    credit: Money | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class ResolutionAlertContext:
    """To the Support Manager (§3.1, §4.3): a ticket missed its resolution target."""

    customer: CustomerInfo
    ticket: TicketInfo
    resolution_target: dt.timedelta
    due_at: dt.datetime
    overdue_by: dt.timedelta
    timezone: str = "UTC"


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
class CommandErrorContext:
    """To an agent whose email command was invalid; ``command`` is the agent's line."""

    agent_name: str
    command: str
    problem: str
    ticket_number: int | None = None
    usage: str | None = None


TemplateContext = (
    AcknowledgmentContext
    | EscalationNoticeContext
    | SlaBreachApologyContext
    | RefundConfirmationContext
    | LowSatisfactionFollowUpContext
    | SurveyRequestContext
    | ResolvedNoticeContext
    | AgentReplyContext
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
)

TEMPLATES: Final[Mapping[str, type[TemplateContext]]] = {
    "acknowledgment": AcknowledgmentContext,
    "escalation_notice": EscalationNoticeContext,
    "sla_breach_apology": SlaBreachApologyContext,
    "refund_confirmation": RefundConfirmationContext,
    "low_satisfaction_followup": LowSatisfactionFollowUpContext,
    "survey_request": SurveyRequestContext,
    "resolved_notice": ResolvedNoticeContext,
    "agent_reply": AgentReplyContext,
    "new_ticket_alert": NewTicketAlertContext,
    "escalation_alert": EscalationAlertContext,
    "p0_alert": P0AlertContext,
    "triage_request": TriageRequestContext,
    "low_score_alert": LowScoreAlertContext,
    "refund_approval_request": RefundApprovalRequestContext,
    "command_error": CommandErrorContext,
    "incident_resolved": IncidentResolvedContext,
    "breach_alert": BreachAlertContext,
    "resolution_alert": ResolutionAlertContext,
    "incident_alert": IncidentAlertContext,
}


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """One rendered template: a one-line subject, a text/plain and a text/html body."""

    template: str
    locale: str
    subject: str
    text: str
    html: str


def ticket_tag(number: int) -> str:
    """The subject tag that names a ticket, e.g. ``[Ticket #12345]``."""
    return f"[Ticket #{number}]"


# --- translations and locale-bound filters ---------------------------------------------------


class _FallbackRecorder(gettext.NullTranslations):
    """The last fallback of a catalog: records each source string it had no entry for."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: set[str] = set()

    def gettext(self, message: str) -> str:
        self.missing.add(message)
        return message

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        self.missing.add(msgid1)
        return msgid1 if n == 1 else msgid2


@dataclass
class SafeCatalog:
    """gettext over a compiled catalog, falling back to the English source string by string.

    A translation is used only if it has exactly the source's ``%(name)s`` placeholders and
    formats cleanly, so a missing or broken entry yields English, never a failed mail.
    ``fallbacks`` collects the source strings that were shown in English that way.
    """

    translations: gettext.NullTranslations
    fallbacks: set[str] = field(default_factory=set)
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def gettext(self, message: str) -> str:
        """The usable translation of ``message``, else ``message``."""
        return self._checked(message, self.translations.gettext(message))

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The usable plural translation, else the English singular or plural."""
        source = singular if n == 1 else plural
        return self._checked(source, self.translations.ngettext(singular, plural, n))

    def _checked(self, source: str, translated: str) -> str:
        verdict = self._verdicts.get((source, translated))
        if verdict is None:
            verdict = self._verdicts[(source, translated)] = compatible(source, translated)
            if not verdict:
                logger.warning("broken translation of %r ignored: %r", source, translated)
                self.fallbacks.add(source)
        return translated if verdict else source


def compatible(source: str, translated: str) -> bool:
    """True when ``translated`` can stand in for ``source`` under ``%``-formatting."""
    names = set(_PLACEHOLDER.findall(source))
    if set(_PLACEHOLDER.findall(translated)) != names:
        return False
    try:
        translated % dict.fromkeys(names, 0)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def catalog_path(locales_dir: Path, locale: str) -> Path:
    """Where the compiled catalog of ``locale`` lives."""
    return locales_dir / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.mo"


def load_catalog(locales_dir: Path, locale: str) -> SafeCatalog:
    """The compiled catalog of ``locale``; English (the source strings) when there is none."""
    path = catalog_path(locales_dir, locale)
    if not path.is_file():
        return SafeCatalog(gettext.NullTranslations())
    with path.open("rb") as handle:
        translations = gettext.GNUTranslations(handle)
    recorder = _FallbackRecorder()
    translations.add_fallback(recorder)
    return SafeCatalog(translations, recorder.missing)


class _TemplateLoader(FileSystemLoader):
    """Loads ``templates/``, serving each HTML alias from its text source."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        return super().get_source(environment, _HTML_ALIASES.get(template, template))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown time zone {name!r}") from exc


def _aware(value: dt.datetime, zone: str) -> dt.datetime:
    if value.tzinfo is None:
        raise RenderError(f"naive datetime {value.isoformat()}: times must carry a zone")
    return value.astimezone(_zone(zone))


def _filters(locale: str) -> dict[str, Callable[..., str]]:
    """Formatting filters bound to one locale (Babel) plus the locale-free helpers."""

    def datetime_filter(value: dt.datetime, zone: str) -> str:
        local = _aware(value, zone)
        pattern = str(get_datetime_format("long", locale=locale)).replace("'", "")
        date_text = format_date(local, "full", locale=locale)
        time_text = format_time(local, "short", locale=locale)
        zone_text = get_timezone_name(local, "long", locale=locale)
        return pattern.replace("{1}", date_text).replace("{0}", time_text) + f" ({zone_text})"

    def date_filter(value: dt.datetime, zone: str) -> str:
        return format_date(_aware(value, zone), "long", locale=locale)

    def duration_filter(value: dt.timedelta) -> str:
        return format_timedelta(value, locale=locale)

    def money_filter(value: Money) -> str:
        return format_currency(value.amount, value.currency, locale=locale)

    def language_name_filter(code: str | None) -> str:
        try:
            return Locale.parse(code or "").get_display_name(locale) or str(code)
        except (ValueError, UnknownLocaleError):
            return str(code)

    return {
        "datetime": datetime_filter,
        "date": date_filter,
        "duration": duration_filter,
        "money": money_filter,
        "language_name": language_name_filter,
        "mailto": mailto,
        "paragraphs": paragraphs,
        "quote": quote_lines,
        "ticket_tag": ticket_tag,
    }


def mailto(address: str, subject: str, body: str = "") -> str:
    """A ``mailto:`` URL (RFC 6068) with a subject and an optional body."""
    url = f"mailto:{quote(address, safe='@+')}?subject={quote(_plain(subject), safe='')}"
    return url + (f"&body={quote(_plain(body), safe='')}" if body else "")


def paragraphs(text: str) -> Markup:
    """Plain text as HTML paragraphs: escaped, blank lines split paragraphs, newlines kept."""
    blocks = [block.strip("\n") for block in re.split(r"\n\s*\n", text.strip())]
    return Markup("\n").join(
        Markup("<p>")
        + Markup("<br>\n").join(escape(line) for line in block.split("\n"))
        + Markup("</p>")
        for block in blocks
        if block
    )


def quote_lines(text: str) -> str:
    """Plain text quoted mail-style, ``> `` before every line."""
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def _plain(value: str) -> str:
    return value.unescape() if isinstance(value, Markup) else str(value)


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    text = _TRAILING_SPACE.sub("\n", text.replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip("\n") + "\n"


# --- the renderer ----------------------------------------------------------------------------


class Renderer:
    """Renders the templates of ``templates_dir`` with the catalogs of ``locales_dir``.

    One Jinja2 environment per supported locale is built up front, with that locale's
    catalog and formatting filters installed; compiled templates are cached inside it.
    """

    def __init__(
        self,
        company: Company | None = None,
        *,
        templates_dir: Path | None = None,
        locales_dir: Path | None = None,
    ) -> None:
        self.company = company or Company()
        self.templates_dir = templates_dir or resource_path("templates")
        self.locales_dir = locales_dir or resource_path("locales")
        loader = _TemplateLoader(self.templates_dir)
        self._catalogs = {
            locale: load_catalog(self.locales_dir, locale) for locale in SUPPORTED_LOCALES
        }
        self._environments = {
            locale: self._environment(loader, locale, catalog)
            for locale, catalog in self._catalogs.items()
        }

    def _environment(
        self, loader: _TemplateLoader, locale: str, catalog: SafeCatalog
    ) -> Environment:
        environment = Environment(
            loader=loader,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        environment.install_gettext_callables(  # type: ignore[attr-defined]
            catalog.gettext, catalog.ngettext, newstyle=True
        )
        environment.filters.update(_filters(locale))
        environment.globals.update(company=self.company, locale=locale)
        return environment

    def render(self, name: str, locale: str, context: TemplateContext) -> RenderedMail:
        """Render template ``name`` in ``locale``; customer text in ``context`` is data only."""
        expected = TEMPLATES.get(name)
        if expected is None:
            raise RenderError(f"unknown template {name!r}")
        environment = self._environments.get(locale)
        if environment is None:
            raise RenderError(f"unsupported locale {locale!r}; expected one of {SUPPORTED_LOCALES}")
        if type(context) is not expected:
            raise RenderError(
                f"template {name!r} takes {expected.__name__}, not {type(context).__name__}"
            )
        variables = {item.name: getattr(context, item.name) for item in fields(context)}
        try:
            subject, text, html = (
                environment.get_template(f"{name}/{part}").render(variables) for part in PARTS
            )
        except TemplateError as exc:
            raise RenderError(f"template {name!r} ({locale}): {exc}") from exc
        return RenderedMail(
            template=name,
            locale=locale,
            subject=" ".join(subject.split()),
            text=_tidy(text),
            html=html.strip() + "\n",
        )

    def fallbacks(self, locale: str) -> frozenset[str]:
        """Source strings rendered in English so far because ``locale`` lacks a translation."""
        return frozenset(self._catalogs[locale].fallbacks)


# --- sample data and the template check ------------------------------------------------------

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
_SAMPLE_EXCERPT = "Since this morning our Postgres source fails with DS-1001.\nWe changed nothing."

SAMPLES: Final[Mapping[str, TemplateContext]] = {
    "acknowledgment": AcknowledgmentContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        sla_target=dt.timedelta(hours=4),
        first_response_due=_SAMPLE_TIME + dt.timedelta(hours=4),
    ),
    "escalation_notice": EscalationNoticeContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        team=EscalationTeam.ENGINEERING,
        update_within=dt.timedelta(hours=24),
        update_due=_SAMPLE_TIME + dt.timedelta(hours=24),
        agent_name="Marco Rossi",
        reference="https://docs.dataflow.com/data-sources",
    ),
    "sla_breach_apology": SlaBreachApologyContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        sla_target=dt.timedelta(hours=4),
        update_due=_SAMPLE_TIME + dt.timedelta(hours=2),
        manager_name="Claire Dubois",
        credit=Money(Decimal("50.00")),
    ),
    "refund_confirmation": RefundConfirmationContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        amount=Money(Decimal("149.00")),
        agent_name="Marco Rossi",
        cancellation=True,
    ),
    "low_satisfaction_followup": LowSatisfactionFollowUpContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        score=2,
        manager_name="Claire Dubois",
        credit=Money(Decimal("100.00")),
    ),
    "survey_request": SurveyRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        resolved_at=_SAMPLE_TIME,
        reply_address="support+12345-k7x2q9@dataflow.com",
    ),
    "resolved_notice": ResolvedNoticeContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        agent_name="Marco Rossi",
        resolution="The stored credentials had expired.\nWe refreshed them with you on the call.",
    ),
    "agent_reply": AgentReplyContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        agent_name="Marco Rossi",
        body="Hi Ana,\n\nCould you send us the time of the last successful sync?\n\nThanks!",
    ),
    "new_ticket_alert": NewTicketAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        first_response_due=_SAMPLE_TIME + dt.timedelta(hours=4),
        excerpt=_SAMPLE_EXCERPT,
        rule_hits=("error-code DS-1001 → P1",),
        mail_language="de",
        translation_requested=True,
    ),
    "escalation_alert": EscalationAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        team=EscalationTeam.ENGINEERING,
        reason="P1 unresolved after 2 hours",
        respond_by=_SAMPLE_TIME + dt.timedelta(hours=2),
        excerpt=_SAMPLE_EXCERPT,
        escalated_by="Marco Rossi",
    ),
    "p0_alert": P0AlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        reported_at=_SAMPLE_TIME,
        devops_due=_SAMPLE_TIME + dt.timedelta(minutes=30),
        first_response_due=_SAMPLE_TIME + dt.timedelta(hours=1),
        excerpt=_SAMPLE_EXCERPT,
    ),
    "triage_request": TriageRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        reason="partial outage reported by several customers",
        triage_due=_SAMPLE_TIME + dt.timedelta(minutes=30),
        excerpt=_SAMPLE_EXCERPT,
        rule_hits=("keyword 'outage' → P0?", "error-code DS-1001 → P1"),
    ),
    "low_score_alert": LowScoreAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        score=2,
        comment="It took three days to get a real answer.",
        follow_up_due=_SAMPLE_TIME + dt.timedelta(hours=12),
        agent_name="Marco Rossi",
        suggested_credit=Money(Decimal("100.00")),
    ),
    "refund_approval_request": RefundApprovalRequestContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        amount=Money(Decimal("1490.00")),
        approver=Approver.FINANCE_DIRECTOR,
        requested_by="Marco Rossi",
        reason="annual plan cancelled after 45 days",
        days_since_payment=45,
    ),
    "command_error": CommandErrorContext(
        agent_name="Marco Rossi",
        command="#priority P7",
        problem="unknown priority 'P7'",
        ticket_number=12345,
        usage="#priority P0|P1|P2|P3",
    ),
    "incident_resolved": IncidentResolvedContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=TicketInfo(
            number=12345,
            subject="Dashboards down: Error 503",
            priority=Priority.P0,
            plan=Plan.ENTERPRISE,
            error_code="DB-2002",
            error_title="Service Unavailable",
        ),
        code="DB-2002",
        resolved_at=_SAMPLE_TIME + dt.timedelta(hours=3),
        summary="A failed database node made the API return errors 503.\n"
        "It was replaced and all pending syncs have been replayed.",
        agent_name="Marco Rossi",
    ),
    "breach_alert": BreachAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        sla_target=dt.timedelta(hours=4),
        due_at=_SAMPLE_TIME + dt.timedelta(hours=4),
        overdue_by=dt.timedelta(minutes=45),
        credit=Money(Decimal("50.00")),
    ),
    "resolution_alert": ResolutionAlertContext(
        customer=_SAMPLE_CUSTOMER,
        ticket=_SAMPLE_TICKET,
        resolution_target=dt.timedelta(hours=24),
        due_at=_SAMPLE_TIME + dt.timedelta(hours=24),
        overdue_by=dt.timedelta(hours=3),
    ),
    "incident_alert": IncidentAlertContext(
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
}


def ticket_number_of(context: TemplateContext) -> int | None:
    """The ticket a context is about, if any."""
    if isinstance(context, CommandErrorContext):
        return context.ticket_number
    return context.ticket.number


def check_templates(renderer: Renderer) -> list[str]:
    """Render every template in every locale with its sample; return the problems found.

    Checked: each registered template has its three parts and no template folder is
    unregistered; each locale other than English has a compiled catalog; every sample
    renders, with a subject, and shows its ticket number; no string falls back to English.
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
        for name, context in SAMPLES.items():
            try:
                mail = renderer.render(name, locale, context)
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

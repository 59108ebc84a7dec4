"""Reports that arrive by themselves (procedures §3.2, §8.1, §9.2, §10.2).

The scheduler tick (``App.check``: ``sla check`` and ``serve``) queues, once per period:

* every Monday 08:00 (``[company] timezone``): last week's report to the Support Managers;
* on the 1st of the month at 08:00: last month's satisfaction and churn report to
  ``[notify] leadership_address``;
* on the first day of a quarter at 08:00: last quarter's knowledge-base report (tickets per
  error code per month; codes over 10 in a month need an article) to both.

Each mail has the outbox key ``report:<kind>:<period>``, so overlapping runs queue it once; a
run that comes late (a missed day) still sends the latest period's report. Periods that
ended before the first ticket (a fresh installation) get no report. A mail is HTML
with a plain-text alternative, the charts inline PNG parts (multipart/related).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core import keys
from mailproc.core.identity import AgentRole
from mailproc.core.model import Address
from mailproc.kb.deflection import deflection_report
from mailproc.outbound.compose import AutoSubmitted, Envelope, InlineImage, compose, make_message_id
from mailproc.outbound.i18n import load_catalog
from mailproc.outbound.outbox import envelope_sender, queue_mail, retry_deadline
from mailproc.outbound.render import RenderedMail
from mailproc.reports import metrics
from mailproc.reports.counts import by_people
from mailproc.reports.periods import Period, PeriodKind, month_of, period_of
from mailproc.resources import resource_path
from mailproc.store.models import Outbox, Ticket

SEND_AT: Final = dt.time(8, 0)
KB_CODES_PER_MONTH: Final = 10  # §9.2: more tickets than this in a month call for an article


class ReportKind(StrEnum):
    """The scheduled reports and the periods they cover."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"


_COVERS: Final = {
    ReportKind.WEEKLY: PeriodKind.WEEK,
    ReportKind.MONTHLY: PeriodKind.MONTH,
    ReportKind.QUARTERLY: PeriodKind.QUARTER,
}

_TITLES: Final = {
    PeriodKind.WEEK: "Weekly support report",
    PeriodKind.MONTH: "Monthly satisfaction and churn report",
    PeriodKind.QUARTER: "Quarterly knowledge-base report",
    PeriodKind.CUSTOM: "Support report",
}

# (metric, part, label, unit): the rows of the KPI table, in order
_ROWS: Final = (
    ("ticket_volume", None, "Tickets opened", "count"),
    ("first_response_sla_pct", None, "First response within SLA", "pct"),
    ("sla_breach_pct", None, "SLA breaches", "pct"),
    ("fcr_p2_p3_pct", None, "First contact resolution (P2-P3)", "pct"),
    ("resolution_within_target_pct", "P0_P1_24h", "P0-P1 resolved within 24 h", "pct"),
    ("resolution_within_target_pct", "P2_P3_72h", "P2-P3 resolved within 72 h", "pct"),
    ("resolution_hours_median", "P0", "Median resolution time P0", "hours"),
    ("resolution_hours_median", "P1", "Median resolution time P1", "hours"),
    ("resolution_hours_median", "P2", "Median resolution time P2", "hours"),
    ("resolution_hours_median", "P3", "Median resolution time P3", "hours"),
    ("escalation_rate_pct", None, "Escalation rate", "pct"),
    ("satisfaction_avg", None, "Satisfaction (of 5)", "score"),
    ("survey_response_rate_pct", None, "Survey response rate", "pct"),
    ("negative_feedback_resolved_48h_pct", None, "Low scores followed up within 48 h", "pct"),
    ("refund_rate_pct", None, "Refund rate", "pct"),
    ("credits_usd", None, "Credits granted (USD)", "money"),
    ("churn_risk_raised", None, "Customers whose churn risk rose", "count"),
)


@dataclass(frozen=True, slots=True)
class ReportPage:
    """A rendered report: subject, plain text, HTML and the charts its HTML shows."""

    subject: str
    text: str
    html: str
    images: tuple[InlineImage, ...]

    def standalone_html(self) -> str:
        """The HTML with its charts embedded as data URIs, for a browser."""
        html = self.html
        for image in self.images:
            data = base64.b64encode(image.data).decode("ascii")
            html = html.replace(f"cid:{image.content_id}", f"data:image/png;base64,{data}")
        return html


def scheduled(kind: ReportKind, now: dt.datetime, zone: ZoneInfo) -> tuple[dt.datetime, Period]:
    """The latest time ``kind`` was due at or before ``now`` (UTC) and the period it reports:
    the whole period before the one that starts on that day."""
    holding = period_of(_COVERS[kind], now.astimezone(zone).date(), zone)
    due = dt.datetime.combine(holding.first, SEND_AT, zone)
    if due > now:
        holding = holding.previous()
        due = dt.datetime.combine(holding.first, SEND_AT, zone)
    return due.astimezone(dt.UTC), holding.previous()


def report_key(kind: ReportKind, period: Period) -> str:
    """The outbox key that makes a report go out once per period."""
    return keys.report(kind.value, period.label())


def send_due_reports(
    session: Session,
    settings: Settings,
    role_recipients: Callable[[AgentRole], Sequence[Address]],
    message_id_domain: str,
    now: dt.datetime,
    *,
    dry_run: bool,
    lines: list[str],
) -> None:
    """Queue each scheduled report not yet queued for its latest period (one line each)."""
    zone = ZoneInfo(settings.company.timezone)
    leadership = (Address("Leadership", settings.notify.leadership_address),)
    managers = tuple(role_recipients(AgentRole.SUPPORT_MANAGER))
    audiences = {
        ReportKind.WEEKLY: managers,
        ReportKind.MONTHLY: leadership,
        ReportKind.QUARTERLY: _unique((*managers, *leadership)),
    }
    for kind, to in audiences.items():
        _, period = scheduled(kind, now, zone)
        key = report_key(kind, period)
        if not to or session.scalar(select(Outbox.id).where(Outbox.key == key)) is not None:
            continue
        live = select(Ticket.id).where(Ticket.received_at < period.end, by_people())
        if session.scalar(live.limit(1)) is None:
            continue  # mailproc was not in use yet (history imports aside): no empty report
        lines.append(f"{kind.value} report {period.label()} to {', '.join(a.addr for a in to)}")
        if dry_run:
            continue
        page = build_page(
            session,
            period,
            now,
            content_id_domain=message_id_domain,
            kb_target=settings.kb.monthly_target,
        )
        support = settings.support
        envelope = Envelope(
            sender=Address(support.name, support.addresses[0]),
            to=to,
            reply_to=Address(support.name, support.addresses[0]),
            message_id=make_message_id(key, secrets.token_hex(8), message_id_domain),
            date=now,
            auto_submitted=AutoSubmitted.AUTO_GENERATED,
        )
        template = f"report_{kind.value}"
        mail = RenderedMail(template, "en", page.subject, page.text, page.html)
        queue_mail(
            session,
            key=key,
            ticket_id=None,
            template=template,
            locale="en",
            message=compose(mail, envelope, page.images),
            envelope_from=envelope_sender(settings),
            recipients=[a.addr for a in to],
            auto_submitted=AutoSubmitted.AUTO_GENERATED,
            now=now,
            deadline=retry_deadline(now, settings.outbox),
        )


def build_page(
    session: Session,
    period: Period,
    now: dt.datetime,
    *,
    content_id_domain: str,
    kb_target: int,
) -> ReportPage:
    """The report of ``period`` as of ``now``: KPIs against targets and the period before,
    the breaches and escalations, charts; a quarter adds the knowledge-base section."""
    from mailproc.reports import charts  # matplotlib loads only when a report is drawn

    earlier = period.previous()
    current = metrics.compute(session, period, now)
    previous = metrics.compute(session, earlier, now)
    rows = kpi_rows(current, previous)
    tag = hashlib.sha256(f"{period.label()}|{now.isoformat()}".encode()).hexdigest()[:12]
    images = [
        InlineImage(
            f"kpis.{tag}@{content_id_domain}",
            charts.kpi_bars(
                [(r["label"], r["raw"], r["target_value"], r["met"]) for r in rows if r["chart"]]
            ),
            "kpis.png",
        ),
        InlineImage(
            f"volume.{tag}@{content_id_domain}",
            charts.daily_volume(
                metrics.daily_volume(session, period), metrics.daily_volume(session, earlier)
            ),
            "volume.png",
        ),
    ]
    knowledge: dict[str, Any] | None = None
    if period.kind is PeriodKind.QUARTER:
        knowledge = knowledge_base(session, period)
        knowledge["deflection"] = deflection_report(session, kb_target, now)
        images.append(
            InlineImage(
                f"codes.{tag}@{content_id_domain}",
                charts.codes_by_month(knowledge["months"], knowledge["codes"]),
                "codes.png",
            )
        )
    title = _TITLES[period.kind]
    context = {
        "title": title,
        "period": period,
        "previous": earlier,
        "now": now,
        "rows": rows,
        "breaches": metrics.breaches(session, period, now),
        "escalations": metrics.escalations(session, period),
        "knowledge": knowledge,
        "kb_threshold": KB_CODES_PER_MONTH,
        "images": {image.filename.removesuffix(".png"): image.content_id for image in images},
    }
    environment = _environment()
    subject = f"{title} {period.label()}"
    if period.kind is PeriodKind.WEEK:  # a month or quarter needs no dates
        subject += f" ({period.first.isoformat()} - {period.last.isoformat()})"
    return ReportPage(
        subject=subject,
        text=environment.get_template("report.txt").render(context).strip() + "\n",
        html=environment.get_template("report.html").render(context).strip() + "\n",
        images=tuple(images),
    )


def kpi_rows(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The KPI table: value, the period before with the trend, target and met or missed."""
    rows = []
    for name, part, label, unit in _ROWS:
        now_entry, before_entry = _entry(current, name, part), _entry(previous, name, part)
        value, before = now_entry.get("value"), before_entry.get("value")
        target = metrics.TARGETS.get(part or name)
        rows.append(
            {
                "label": label,
                "raw": value,
                "value": _format(value, unit),
                "previous": _format(before, unit),
                "trend": _trend(value, before),
                "target": _format_target(target, unit) if target else "",
                "target_value": target.value if target else None,
                "met": now_entry.get("met"),
                "chart": unit == "pct" and target is not None,
            }
        )
    return rows


def knowledge_base(session: Session, quarter: Period) -> dict[str, Any]:
    """Tickets per error code in each month of ``quarter``; codes over the threshold in a
    month are flagged as needing an article (§9.2)."""
    months: dict[str, dict[str, int]] = {}
    day = quarter.first
    while day <= quarter.last:
        month = month_of(day, quarter.zone)
        months[month.label()] = metrics.tickets_by_error_code(session, month.start, month.end)
        day = month.last + dt.timedelta(days=1)
    totals: dict[str, int] = {}
    for counts in months.values():
        for code, count in counts.items():
            totals[code] = totals.get(code, 0) + count
    codes = sorted(totals, key=lambda code: (-totals[code], code))
    flagged = [
        code for code in codes if any(c.get(code, 0) > KB_CODES_PER_MONTH for c in months.values())
    ]
    return {"months": months, "codes": codes, "totals": totals, "flagged": flagged}


def _entry(found: Mapping[str, Any], name: str, part: str | None) -> dict[str, Any]:
    value = found[name] if part is None else found[name][part]
    return value if isinstance(value, dict) else {"value": value}


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "pct":
        return f"{value:.1f} %"
    if unit == "hours":
        return f"{value:.1f} h"
    if unit == "score":
        return f"{value:.2f}"
    if unit == "money":
        return f"${value:,.2f}"
    return f"{value:,}"


def _format_target(target: metrics.Target, unit: str) -> str:
    sign = ">=" if target.higher_is_better else "<="
    return f"{sign} {_format(target.value, unit)}"


def _trend(value: float | None, before: float | None) -> str:
    if value is None or before is None:
        return ""
    delta = value - before
    if abs(delta) < 1e-9:
        return "="
    return f"{'+' if delta > 0 else '-'}{abs(delta):,.1f}"


def _unique(addresses: Sequence[Address]) -> tuple[Address, ...]:
    return tuple({a.addr: a for a in addresses}.values())


@functools.cache
def _environment() -> Environment:
    """The report templates with the English catalog (internal mail is in English)."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    catalog = load_catalog(resource_path("locales"), "en")
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        catalog.gettext, catalog.ngettext, newstyle=True
    )
    return environment

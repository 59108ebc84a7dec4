"""The customer_analytics CSV format: parse and validate rows, write them back."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from mailproc.core.addresses import normalize_address
from mailproc.core.business_calendar import CalendarError, parse_business_hours
from mailproc.core.model import Customer, Plan

COLUMNS = (
    "Customer_ID",
    "Company",
    "Contact_Name",
    "Contact_Emails",
    "Plan",
    "Country",
    "Preferred_Language",
    "Time_Zone",
    "Satisfaction_Score",
    "Churn_Risk",
    "Last_Support_Ticket",
    "Signup_Date",
    "Business_Hours",
    "Price_Lock_Until",
)
REQUIRED = ("Customer_ID", "Company", "Contact_Emails", "Plan", "Country", "Time_Zone")
CHURN_RISKS = ("Low", "Medium", "High")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
# A cell a spreadsheet would run as a formula (OWASP CSV injection); written with a leading "'".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LINE_BREAK = re.compile(r"[\r\n]")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one CSV line was not loaded."""

    line: int
    reason: str
    rejected: bool = True  # False: a warning about the file; the rows still load


@dataclass(frozen=True)
class ParsedCsv:
    """The customers read from a CSV (with the line each came from) and the rejected lines."""

    customers: tuple[Customer, ...]
    errors: tuple[RowError, ...]
    lines: dict[int, int] = field(default_factory=dict)  # customer id -> CSV line


def parse_customers_csv(text: str) -> ParsedCsv:
    """Validate every row; good rows load even when others are bad.

    An address may belong to one customer only: a later row claiming an address that an
    earlier row holds is rejected.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = reader.fieldnames or []
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        return ParsedCsv((), (RowError(1, f"missing column(s): {', '.join(missing)}"),))
    unknown = [name for name in header if name not in COLUMNS]
    errors: list[RowError] = (
        [RowError(1, f"unknown column(s) ignored: {', '.join(unknown)}", rejected=False)]
        if unknown
        else []
    )
    customers: dict[int, Customer] = {}
    lines: dict[int, int] = {}
    owner: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            _check_no_line_breaks(row)
            customer = _customer(_unneutralized(row))
        except RowProblems as problems:
            errors.extend(RowError(line, reason) for reason in problems.reasons)
            continue
        except ValueError as error:
            errors.append(RowError(line, str(error)))
            continue
        taken = [a for a in customer.emails if owner.get(a, customer.id) != customer.id]
        if taken:
            errors.append(
                RowError(line, f"address {taken[0]} already belongs to customer {owner[taken[0]]}")
            )
            continue
        customers[customer.id] = customer
        lines[customer.id] = line
        owner.update(dict.fromkeys(customer.emails, customer.id))
    return ParsedCsv(tuple(customers.values()), tuple(errors), lines)


def _check_no_line_breaks(row: dict[str | None, str | None]) -> None:
    """Refuse a row with CR or LF inside a (quoted) field: no value may span lines."""
    for name, value in row.items():
        if isinstance(value, str) and _LINE_BREAK.search(value):
            raise ValueError(f"{name}: a field contains a line break (CR or LF)")


def _unneutralized(row: dict[str | None, str | None]) -> dict[str, str | None]:
    """Undo the export's formula guard: "'=x" reads as "=x" again."""
    return {
        name: value[1:]
        if value and value.startswith("'") and value[1:].startswith(_FORMULA_START)
        else value
        for name, value in row.items()
        if isinstance(name, str) and (value is None or isinstance(value, str))
    }


def neutralize_cell(value: str) -> str:
    """A cell a spreadsheet will show as text: a leading formula character gets a "'"."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


class RowProblems(ValueError):
    """Every reason one CSV row cannot be loaded."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def _customer(row: dict[str, str | None]) -> Customer:
    """The customer of one row; :class:`RowProblems` lists every bad value in it."""
    problems: list[str] = []

    def value(name: str) -> str:
        return (row.get(name) or "").strip()

    def checked(parse: Callable[[], T], fallback: T) -> T:
        try:
            return parse()
        except ValueError as error:
            problems.append(str(error))
            return fallback

    problems.extend(f"{name} is empty" for name in REQUIRED if not value(name))
    customer_id = checked(lambda: _customer_id(value("Customer_ID")), 0)
    no_emails: tuple[str, ...] = ()
    emails = checked(lambda: _emails(value("Contact_Emails")), no_emails)
    plan = checked(lambda: _plan(value("Plan")), Plan.STARTER)
    country = checked(lambda: _country(value("Country")), "")
    language = checked(lambda: _language(value("Preferred_Language")), "en")
    timezone = checked(lambda: _timezone(value("Time_Zone")), "UTC")
    score = checked(lambda: _score(value("Satisfaction_Score")), None)
    churn = checked(lambda: _churn(value("Churn_Risk")), None)
    last_ticket = checked(lambda: _date("Last_Support_Ticket", value("Last_Support_Ticket")), None)
    signup = checked(lambda: _date("Signup_Date", value("Signup_Date")), None)
    hours = checked(lambda: _hours(value("Business_Hours")), None)
    price_lock = checked(lambda: _date("Price_Lock_Until", value("Price_Lock_Until")), None)
    if problems:
        raise RowProblems(list(dict.fromkeys(problems)))
    return Customer(
        id=customer_id,
        company=value("Company"),
        contact_name=value("Contact_Name"),
        emails=emails,
        plan=plan,
        country=country,
        language=language,
        timezone=timezone,
        satisfaction_score=score,
        churn_risk=churn,
        last_support_ticket=last_ticket,
        signup_date=signup,
        business_hours=hours,
        price_lock_until=price_lock,
    )


def _customer_id(text: str) -> int:
    if not text:
        return 0  # reported as empty
    try:
        customer_id = int(text)
    except ValueError:
        raise ValueError(f"Customer_ID {text!r} is not a whole number") from None
    if customer_id <= 0:
        raise ValueError("Customer_ID must be positive")
    return customer_id


def _emails(text: str) -> tuple[str, ...]:
    emails = []
    for raw in re.split(r"[;,\s]+", text):
        if not raw:
            continue
        address = normalize_address(raw)
        if address is None:
            raise ValueError(f"Contact_Emails: {raw!r} is not a valid address")
        emails.append(address)
    return tuple(dict.fromkeys(emails))


def _country(text: str) -> str:
    if text and not _COUNTRY.match(text.upper()):
        raise ValueError(f"Country {text!r} is not an ISO 3166 alpha-2 code")
    return text.upper()


def _language(text: str) -> str:
    language = (text or "en").lower()
    if not _LANGUAGE.match(language):
        raise ValueError(f"Preferred_Language {language!r} is not a two-letter code")
    return language


def _hours(text: str) -> str | None:
    if not text:
        return None
    try:
        parse_business_hours(text)
    except CalendarError as error:
        raise ValueError(f"Business_Hours: {error}") from None
    return text


def _plan(text: str) -> Plan:
    if not text:
        return Plan.STARTER  # reported as empty
    for plan in Plan:
        if plan.value.lower() == text.lower():
            return plan
    raise ValueError(f"Plan {text!r} is not one of {', '.join(p.value for p in Plan)}")


def _timezone(name: str) -> str:
    if not name:
        return "UTC"  # reported as empty
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Time_Zone {name!r} is not an IANA time zone") from None
    return name


def _score(text: str) -> float | None:
    if not text:
        return None
    try:
        score = float(text)
    except ValueError:
        raise ValueError(f"Satisfaction_Score {text!r} is not a number") from None
    if not 1.0 <= score <= 5.0:
        raise ValueError(f"Satisfaction_Score {text} is outside 1-5")
    return score


def _churn(text: str) -> str | None:
    if not text:
        return None
    for risk in CHURN_RISKS:
        if risk.lower() == text.lower():
            return risk
    raise ValueError(f"Churn_Risk {text!r} is not one of {', '.join(CHURN_RISKS)}")


def _date(name: str, text: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def format_customers_csv(customers: Iterable[Customer]) -> str:
    """Write customers in the import format (the export round-trips through the import).

    Text cells that start like a spreadsheet formula are neutralized (see neutralize_cell).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in customers:
        writer.writerow(
            neutralize_cell(str(cell))
            for cell in (
                c.id,
                c.company,
                c.contact_name,
                ";".join(c.emails),
                c.plan.value,
                c.country,
                c.language,
                c.timezone,
                "" if c.satisfaction_score is None else f"{c.satisfaction_score:.1f}",
                c.churn_risk or "",
                c.last_support_ticket.isoformat() if c.last_support_ticket else "",
                c.signup_date.isoformat() if c.signup_date else "",
                c.business_hours or "",
                c.price_lock_until.isoformat() if c.price_lock_until else "",
            )
        )
    return out.getvalue()

"""Every duration a customer reads agrees with the date beside it (issue 14 part 1).

Template 1 (first response and estimated resolution) and Template 3 (the missed first
response and the promised update) are rendered for every plan × priority × clock × locale,
from the due times the SLA clock stores on the ticket and through the outbox's JSON round
trip. The test reads the number, the unit and the date out of the text and checks them
against the stored due time and the clock, not against the code that wrote them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from pydantic import TypeAdapter

from mailproc.core.assess import sla_record
from mailproc.core.business_calendar import business_time_between, is_working_day
from mailproc.core.model import Customer, Plan, Priority
from mailproc.core.sla import (
    ClockMode,
    compute_deadlines,
    customer_calendar,
    sla_policy_from_config,
    update_promise,
)
from mailproc.outbound.contexts import AcknowledgmentContext, SlaBreachApologyContext
from mailproc.outbound.i18n import locale_filters
from mailproc.outbound.render import Renderer
from mailproc.outbound.values import CustomerInfo, TicketInfo
from mailproc.store.models import Ticket
from mailproc.workflows.promises import first_response_promise, resolution_promise

LONDON = "Europe/London"
# Friday 07:00 in London (before business hours) and Wednesday 15:00 (inside them).
RECEIPTS = (
    dt.datetime(2026, 12, 4, 7, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 9, 15, 0, tzinfo=dt.UTC),
)
UNITS = {  # locale: (hour word, day word)
    "en": ("hour", "day"),
    "es": ("hora", "día"),
    "fr": ("heure", "jour"),
}
PHRASE = {  # within <n> <unit> [working time | from the start (start)], by <due>
    "en": r"within (\d+)\s(\w+?)s?( of working time)?"
    r"( of the start of business hours \((.+?\))\))?, by (.+?\))",
    "es": r"en un plazo de (\d+)\s(\w+?)s?( de horario laboral)?"
    r"( desde el inicio del horario laboral \((.+?\))\))?, a más tardar el (.+?\))",
    "fr": r"sous (\d+)\s(\w+?)s?( de temps ouvré)?"
    r"( à compter du début des heures ouvrées \((.+?\))\))?, au plus tard le (.+?\))",
}
BY_ONLY = {"en": r"by (.+?\))", "es": r"a más tardar el (.+?\))", "fr": r"au plus tard le (.+?\))"}


@dataclass(frozen=True)
class Read:
    """A promise as the customer reads it."""

    within: dt.timedelta | None
    in_hours: bool  # stated in hours (a "day" of working time would be ambiguous)
    working_time: bool
    start: str | None
    due: str


def read_promises(text: str, locale: str) -> list[Read]:
    """Each "within … by …" of ``text`` in order; a lone "by …" when there is none."""
    found = []
    hour, day = UNITS[locale]
    sizes = {hour: dt.timedelta(hours=1), day: dt.timedelta(days=1)}
    for match in re.finditer(PHRASE[locale], text):
        number, unit, working, _, start, due = match.groups()
        found.append(Read(int(number) * sizes[unit], unit == hour, bool(working), start, due))
    return found or [Read(None, False, False, None, re.findall(BY_ONLY[locale], text)[0])]


def customer(plan: Plan) -> Customer:
    return Customer(
        id=1009,
        company="Thames Valley Energy",
        contact_name="Oliver",
        emails=("oliver@thamesvalleyenergy.example",),
        plan=plan,
        country="GB",
        language="en",
        timezone=LONDON,
    )


def stored_ticket(who: Customer, priority: Priority, received: dt.datetime, clock: str) -> Ticket:
    """A ticket as intake stores it: its due times and SLA record from the SLA clock."""
    policy = sla_policy_from_config({"clock": clock})
    deadlines = compute_deadlines(received, priority, who, policy)
    return Ticket(
        number=10001,
        subject="Dashboards",
        priority=priority.value,
        received_at=received,
        first_response_due=deadlines.first_response_due,
        resolution_due=deadlines.resolution_due,
        sla=sla_record(deadlines),
    )


def through_outbox(context: object) -> object:
    """The context as the deliverer reads it back from the outbox row (JSON)."""
    adapter: TypeAdapter[object] = TypeAdapter(type(context))
    return adapter.validate_json(adapter.dump_json(context))


def agrees(read: Read, locale: str, ticket: Ticket, due: dt.datetime, clock: str) -> None:
    """The date is the stored due time and the duration, counted on the clock, reaches it."""
    fmt = locale_filters(locale)["datetime"]
    assert read.due == fmt(due, LONDON)
    assert read.within is not None
    received = ticket.received_at
    calendar, _ = customer_calendar(
        customer(Plan.STARTER), Priority(ticket.priority), sla_policy_from_config({})
    )
    if ticket.priority == "P0":  # 24x7: elapsed from receipt, in every mode
        assert not read.working_time and read.start is None
        assert due - received == read.within
    elif clock == ClockMode.BUSINESS_HOURS:
        assert read.working_time and read.in_hours and read.start is None
        assert business_time_between(calendar, received, due) == read.within
    else:
        start = dt.datetime.fromisoformat(ticket.sla["clock_start"])
        assert not read.working_time
        assert read.start == (fmt(start, LONDON) if start > received else None)
        assert due - start == read.within


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("received", RECEIPTS, ids=["fri-07", "wed-15"])
@pytest.mark.parametrize("clock", [m.value for m in ClockMode])
@pytest.mark.parametrize("priority", list(Priority))
@pytest.mark.parametrize("plan", list(Plan))
def test_template_1_and_3_state_durations_that_reach_their_dates(
    renderer: Renderer, plan: Plan, priority: Priority, clock: str, received: dt.datetime
) -> None:
    who = customer(plan)
    ticket = stored_ticket(who, priority, received, clock)
    assert ticket.first_response_due is not None and ticket.resolution_due is not None
    info = CustomerInfo("Oliver", "oliver@thamesvalleyenergy.example", LONDON)
    facts = TicketInfo(10001, "Dashboards", priority, plan)
    missed_at = ticket.first_response_due + dt.timedelta(minutes=5)
    policy = sla_policy_from_config({"clock": clock})
    calendar, _ = customer_calendar(who, priority, policy)
    update = update_promise(calendar, policy, missed_at, dt.timedelta(hours=4))
    ack = through_outbox(
        AcknowledgmentContext(
            info,
            facts,
            first_response_promise(ticket, received),
            resolution_promise(ticket, received),
        )
    )
    apology = through_outbox(
        SlaBreachApologyContext(
            info, facts, first_response_promise(ticket, received), update, "Claire"
        )
    )
    for locale in ("en", "es", "fr"):
        paragraphs = renderer.render(ack, locale).text.split("\n\n")  # type: ignore[arg-type]
        first, resolution = read_promises(paragraphs[2], locale)
        agrees(first, locale, ticket, ticket.first_response_due, clock)
        agrees(resolution, locale, ticket, ticket.resolution_due, clock)
        paragraphs = renderer.render(apology, locale).text.split("\n\n")  # type: ignore[arg-type]
        [missed] = read_promises(paragraphs[1], locale)
        agrees(missed, locale, ticket, ticket.first_response_due, clock)
        [said] = read_promises(paragraphs[2], locale)
        assert said.due == locale_filters(locale)["datetime"](update.due, LONDON)
        assert said.within == update.within  # stated only when it reaches the date
        if priority is not Priority.P0:  # promised updates never fall on a day off
            assert is_working_day(calendar, update.due)
        if said.within is not None and not said.working_time:
            assert update.due - update.start == said.within

"""SLA deadlines: §2-§4 examples end to end, §3.1 table, §3.2 time zones, pauses, config."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc.core import sla
from mailproc.core.business_calendar import is_working_time
from mailproc.core.catalog import load_default_catalog
from mailproc.core.classify import Classifier, classifier_from_config
from mailproc.core.model import Customer, Plan, Priority
from mailproc.core.sla import (
    DEFAULT_SLA_POLICY,
    Deadlines,
    Pause,
    SlaError,
    SlaPolicy,
    customer_calendar,
    sla_policy_from_config,
)

UTC = dt.UTC
H = dt.timedelta(hours=1)
P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3
STARTER, PRO, ENTERPRISE = Plan.STARTER, Plan.PROFESSIONAL, Plan.ENTERPRISE


# These tests time tickets on the business_hours clock (only working hours count); the
# default business_start clock is tested in test_sla_clock.py.
HOURS = sla_policy_from_config({"clock": "business_hours"})


def compute_deadlines(
    received: dt.datetime,
    priority: Priority,
    who: Customer,
    policy: SlaPolicy = HOURS,
    pauses: Sequence[Pause] = (),
) -> Deadlines:
    """``core.sla.compute_deadlines`` on the business_hours clock unless told otherwise."""
    return sla.compute_deadlines(received, priority, who, policy, pauses)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def customer(
    id_: int,
    plan: Plan,
    country: str = "US",
    timezone: str = "America/New_York",
    language: str = "en",
    business_hours: str | None = None,
) -> Customer:
    return Customer(
        id=id_,
        company=f"Company {id_}",
        contact_name="Sam",
        emails=(f"sam@c{id_}.example",),
        plan=plan,
        country=country,
        language=language,
        timezone=timezone,
        business_hours=business_hours,
    )


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return classifier_from_config(load_default_catalog())


MONDAY_9_NY = utc(2025, 6, 9, 13)  # Mon 9 Jun 2025 09:00 EDT
WED_17_NY = utc(2025, 6, 11, 21)  # 24 working hours later
FRI_17_NY = utc(2025, 6, 20, 21)  # 72 working hours later: Thu 19 Jun (Juneteenth) is off

# §2-§4 examples and use cases: customer, receipt, mail → priority and due times (UTC).
SPEC_CASES = [
    (
        "1003 P0 503",
        customer(1003, PRO),
        MONDAY_9_NY,
        "Error 503: Service Unavailable",
        P0,
        utc(2025, 6, 9, 14),
        utc(2025, 6, 9, 17),
    ),
    (
        "1001 P1 DS-1001 Starter",
        customer(1001, STARTER, "US", "America/New_York"),
        MONDAY_9_NY,
        "DS-1001: Invalid Credentials",
        P1,
        WED_17_NY,
        WED_17_NY,
    ),
    (
        "1017 P2 MOB-6006",
        customer(1017, PRO),
        MONDAY_9_NY,
        "MOB-6006: App Not Loading",
        P2,
        WED_17_NY,
        FRI_17_NY,
    ),
    (
        "1011 P3 COL-11001 Mexico, Spanish",
        customer(1011, ENTERPRISE, "MX", "America/Mexico_City", "es"),
        utc(2025, 6, 9, 15),  # 09:00 CST
        "Los comentarios no cargan (COL-11001)",
        P3,
        utc(2025, 6, 11, 23),  # 24 working hours: Wed 17:00 CST
        utc(2025, 6, 19, 23),  # 72 working hours: Thu 19 Jun 17:00 CST
    ),
    (
        "1006 P1 API-4004",
        customer(1006, PRO),
        MONDAY_9_NY,
        "API-4004: Too Many Requests",
        P1,
        utc(2025, 6, 10, 17),  # 12 working hours: Tue 13:00 EDT
        WED_17_NY,
    ),
    (
        "1018 P1 SSO-9001 Enterprise: 4-hour response",
        customer(1018, ENTERPRISE),
        MONDAY_9_NY,
        "SSO-9001: Login Failure",
        P1,
        utc(2025, 6, 9, 17),
        WED_17_NY,
    ),
    (
        "1009 UK P1 at 07:00 GMT: clock starts 09:00 GMT",
        customer(1009, ENTERPRISE, "GB", "Europe/London"),
        utc(2025, 1, 13, 7),
        "DS-1002: Connection timeout on our warehouse",
        P1,
        utc(2025, 1, 13, 13),
        utc(2025, 1, 15, 17),
    ),
    (
        "1036 P0 platform outage DB-2002 on a Saturday night",
        customer(1036, ENTERPRISE),
        utc(2025, 6, 14, 22, 30),
        "Platform outage: DB-2002 on every page",
        P0,
        utc(2025, 6, 14, 23, 30),
        utc(2025, 6, 15, 2, 30),
    ),
    (
        "1023 P2 MOB-6007 map widget, Starter",
        customer(1023, STARTER),
        MONDAY_9_NY,
        "Please fix the map widget (MOB-6007)",
        P2,
        utc(2025, 6, 16, 21),  # 48 working hours: Mon 16 Jun 17:00 EDT
        FRI_17_NY,
    ),
    (
        "1004 P2 DB-2003 slow loading",
        customer(1004, PRO),
        MONDAY_9_NY,
        "DB-2003: Slow Loading",
        P2,
        WED_17_NY,
        FRI_17_NY,
    ),
    (
        "1025 P3 CALC-7007, Starter",
        customer(1025, STARTER),
        MONDAY_9_NY,
        "CALC-7007: Invalid Formula",
        P3,
        FRI_17_NY,
        FRI_17_NY,
    ),
    (
        "1033 partial outage, Enterprise (triage)",
        customer(1033, ENTERPRISE),
        MONDAY_9_NY,
        "Partial outage: several of our users are affected",
        P1,
        utc(2025, 6, 9, 17),
        WED_17_NY,
    ),
]


@pytest.mark.parametrize(
    ("case", "who", "received", "subject", "priority", "first_due", "resolution_due"),
    SPEC_CASES,
    ids=[row[0] for row in SPEC_CASES],
)
def test_procedure_examples_end_to_end(
    classifier: Classifier,
    case: str,
    who: Customer,
    received: dt.datetime,
    subject: str,
    priority: Priority,
    first_due: dt.datetime,
    resolution_due: dt.datetime,
) -> None:
    classification = classifier.classify(subject, "")
    deadlines = compute_deadlines(received, classification.priority, who)
    assert classification.priority is priority
    assert (deadlines.first_response_due, deadlines.resolution_due) == (first_due, resolution_due)


@pytest.mark.parametrize(
    ("plan", "targets"),
    [(STARTER, (1, 24, 48, 72)), (PRO, (1, 12, 24, 48)), (ENTERPRISE, (1, 4, 12, 24))],
)
def test_first_response_targets_are_the_section_3_1_table(
    plan: Plan, targets: tuple[int, ...]
) -> None:
    who = customer(1, plan, "GB", "Europe/London")
    for priority, hours in zip(Priority, targets, strict=True):
        deadlines = compute_deadlines(utc(2025, 1, 13, 9), priority, who)
        assert deadlines.first_response_target == hours * H
        assert deadlines.sla_row == f"{plan}/{priority}"


def test_resolution_targets() -> None:
    assert [DEFAULT_SLA_POLICY.resolution[p] for p in Priority] == [4 * H, 24 * H, 72 * H, 72 * H]


def test_uk_edge_case_explains_the_clock_start() -> None:
    deadlines = compute_deadlines(
        utc(2025, 1, 13, 7), P1, customer(1009, ENTERPRISE, "GB", "Europe/London")
    )
    assert deadlines.clock_start == utc(2025, 1, 13, 9)
    assert (
        deadlines.calendar_description == "Mon-Fri 09:00-17:00 Europe/London, public holidays of GB"
    )
    assert deadlines.explanation[:4] == (
        "SLA row Enterprise × P1: first response within 4 h,"
        " resolution within 24 h of working time",
        "calendar: Mon-Fri 09:00-17:00 Europe/London, public holidays of GB"
        " (Enterprise plan hours)",
        "received 2025-01-13 07:00 UTC (Mon 07:00 Europe/London);"
        " clock starts 2025-01-13 09:00 UTC (Mon 09:00 Europe/London)",
        "first response due 2025-01-13 13:00 UTC (Mon 13:00 Europe/London)",
    )


def test_summer_time_in_london_shifts_utc_due_times() -> None:
    deadlines = compute_deadlines(
        utc(2025, 7, 14, 6), P1, customer(1009, ENTERPRISE, "GB", "Europe/London")
    )
    assert (deadlines.clock_start, deadlines.first_response_due) == (
        utc(2025, 7, 14, 8),
        utc(2025, 7, 14, 12),
    )


def test_holidays_skipped_are_explained() -> None:
    deadlines = compute_deadlines(
        utc(2025, 12, 24, 15), P2, customer(1009, ENTERPRISE, "GB", "Europe/London")
    )
    assert deadlines.first_response_due == utc(2025, 12, 30, 11)
    assert deadlines.explanation[-1] == (
        "holidays skipped: 2025-12-25 Christmas Day, 2025-12-26 Boxing Day,"
        " 2026-01-01 New Year's Day"
    )


def test_customer_business_hours_win_over_the_plan() -> None:
    early = customer(1, ENTERPRISE, "GB", "Europe/London", business_hours="Mon-Fri 08:00-16:00")
    deadlines = compute_deadlines(utc(2025, 1, 13, 7), P1, early)
    assert deadlines.first_response_due == utc(2025, 1, 13, 12)
    assert deadlines.explanation[1].endswith("(customer hours)")


@pytest.mark.parametrize(
    ("changes", "note", "first_due"),
    [
        (
            {"business_hours": "weekdays"},
            "cannot read 'weekdays'; using the Enterprise plan hours",
            13,
        ),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'; using UTC", 13),
        ({"country": "XX"}, "no public-holiday calendar for country 'XX'", 13),
    ],
)
def test_unusable_customer_data_falls_back_and_says_so(
    changes: dict[str, Any], note: str, first_due: int
) -> None:
    who = dataclasses.replace(customer(1, ENTERPRISE, "GB", "Europe/London"), **changes)
    deadlines = compute_deadlines(utc(2025, 1, 13, 7), P1, who)
    assert deadlines.first_response_due == utc(2025, 1, 13, first_due)
    assert any(line.endswith(note) for line in deadlines.explanation)


def test_recomputing_after_a_priority_or_plan_change_uses_the_original_receipt() -> None:
    who = customer(1017, PRO)
    as_p2 = compute_deadlines(MONDAY_9_NY, P2, who)
    as_p1 = compute_deadlines(MONDAY_9_NY, P1, who)
    upgraded = compute_deadlines(MONDAY_9_NY, P1, dataclasses.replace(who, plan=ENTERPRISE))
    assert as_p2.first_response_due == WED_17_NY
    assert as_p1.first_response_due == utc(2025, 6, 10, 17)
    assert upgraded.first_response_due == utc(2025, 6, 9, 17)
    assert {d.received_at for d in (as_p2, as_p1, upgraded)} == {MONDAY_9_NY}


def test_a_closed_pause_moves_only_the_resolution_due() -> None:
    who = customer(1001, STARTER)
    waiting = [Pause(utc(2025, 6, 10, 14), utc(2025, 6, 10, 18))]  # Tue 10:00-14:00 EDT
    deadlines = compute_deadlines(MONDAY_9_NY, P1, who, pauses=waiting)
    assert deadlines.first_response_due == WED_17_NY
    assert deadlines.resolution_due == utc(2025, 6, 12, 17)  # Thu 13:00 EDT
    assert deadlines.paused == 4 * H
    assert "resolution clock paused 4 h of working time while waiting" in deadlines.explanation


def test_pausing_can_be_turned_off() -> None:
    policy = sla_policy_from_config(
        {"clock": "business_hours", "pause_resolution_while_waiting": False}
    )
    waiting = [Pause(utc(2025, 6, 10, 14), utc(2025, 6, 10, 18)), Pause(utc(2025, 6, 11, 14))]
    deadlines = compute_deadlines(MONDAY_9_NY, P1, customer(1, STARTER), policy, waiting)
    assert (deadlines.resolution_due, deadlines.paused) == (WED_17_NY, dt.timedelta(0))


def test_an_open_pause_stops_the_resolution_clock() -> None:
    open_pause = [Pause(utc(2025, 6, 10, 14))]
    deadlines = compute_deadlines(MONDAY_9_NY, P1, customer(1, STARTER), pauses=open_pause)
    assert (deadlines.first_response_due, deadlines.resolution_due) == (WED_17_NY, None)
    assert deadlines.explanation[-1] == (
        "resolution clock paused: waiting since 2025-06-10 14:00 UTC (Tue 10:00 America/New_York)"
    )
    late_pause = [Pause(utc(2025, 6, 12, 14))]  # begins after the due time: breach stands
    deadlines = compute_deadlines(MONDAY_9_NY, P1, customer(1, STARTER), pauses=late_pause)
    assert deadlines.resolution_due == WED_17_NY


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        compute_deadlines(dt.datetime(2025, 6, 9, 13), P1, customer(1, STARTER))
    with pytest.raises(ValueError, match="naive"):
        compute_deadlines(
            MONDAY_9_NY,
            P1,
            customer(1, STARTER),
            pauses=[Pause(dt.datetime(2025, 6, 9, 14), dt.datetime(2025, 6, 9, 15))],
        )


def test_config_overlays_the_defaults_key_by_key() -> None:
    policy = sla_policy_from_config(
        {
            "first_response_hours": {"Enterprise": {"P1": 2}},
            "resolution_hours": {"P2": 40},
            "business_hours": {"Enterprise": "Mon-Sat 08:00-20:00"},
            "always_on": ["P0", "P1"],
            "clock": "business_hours",
        }
    )
    assert policy.first_response[ENTERPRISE][P1] == 2 * H
    assert policy.first_response[ENTERPRISE][P2] == 12 * H
    assert policy.first_response[STARTER][P1] == 24 * H
    assert (policy.resolution[P2], policy.resolution[P3]) == (40 * H, 72 * H)
    calendar, notes = customer_calendar(customer(1, ENTERPRISE), P1, policy)
    assert calendar.hours.always and notes == ("calendar: P1 clocks run 24x7, holidays included",)
    saturday = compute_deadlines(utc(2025, 6, 14, 13), P2, customer(1, ENTERPRISE), policy)
    assert saturday.first_response_due == utc(2025, 6, 16, 13)  # Sat 09:00-20:00, Mon 08:00-09:00


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"first_response": {}}, "first_response"),
        ({"first_response_hours": {"Gold": {"P1": 1}}}, "Gold"),
        ({"first_response_hours": {"Starter": {"P1": 0}}}, "greater than 0"),
        ({"resolution_hours": {"P9": 3}}, "P9"),
        ({"business_hours": {"Starter": "9 to 5"}}, "Starter"),
        ({"always_on": "P0"}, "always_on"),
    ],
)
def test_bad_config_is_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(SlaError, match=message):
        sla_policy_from_config(config)


CUSTOMERS = [
    customer(1009, ENTERPRISE, "GB", "Europe/London"),
    customer(1011, ENTERPRISE, "MX", "America/Mexico_City", "es"),
    customer(1002, STARTER),
    customer(1017, PRO, "FR", "Europe/Paris", "fr"),
    customer(
        7, PRO, "ES", "Europe/Madrid", "es", "Mon-Thu 08:00-14:00,15:00-18:00; Fri 08:00-15:00"
    ),
]
receipts = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CUSTOMERS), st.sampled_from(list(Priority)), receipts)
def test_due_times_follow_receipt_and_fall_in_working_time(
    who: Customer, priority: Priority, received: dt.datetime
) -> None:
    deadlines = compute_deadlines(received, priority, who)
    assert deadlines.resolution_due is not None
    assert received <= deadlines.clock_start < deadlines.first_response_due
    assert deadlines.first_response_due <= deadlines.resolution_due
    calendar, _ = customer_calendar(who, priority)
    for due in (deadlines.first_response_due, deadlines.resolution_due):
        assert is_working_time(calendar, due - dt.timedelta(microseconds=1))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(CUSTOMERS),
    st.sampled_from(list(Priority)),
    receipts,
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=5)),
)
def test_due_times_are_monotonic_in_receipt(
    who: Customer, priority: Priority, received: dt.datetime, delay: dt.timedelta
) -> None:
    early = compute_deadlines(received, priority, who)
    late = compute_deadlines(received + delay, priority, who)
    assert early.first_response_due <= late.first_response_due
    assert early.resolution_due is not None and late.resolution_due is not None
    assert early.resolution_due <= late.resolution_due

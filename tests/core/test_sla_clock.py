"""The two SLA clocks (issue 14 part 1): business_start (the default) starts at the next
business-hours start in the customer's zone and counts elapsed hours; business_hours counts
working hours only. P0 runs 24x7 in both. Promised updates never fall on a day off."""

from __future__ import annotations

import datetime as dt

import pytest

from mailproc.core.model import Customer, Plan, Priority
from mailproc.core.sla import (
    DEFAULT_SLA_POLICY,
    ClockMode,
    Pause,
    SlaError,
    compute_deadlines,
    customer_calendar,
    sla_policy_from_config,
    update_promise,
)

H = dt.timedelta(hours=1)
HOURS = sla_policy_from_config({"clock": "business_hours"})


def utc(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=dt.UTC)


def uk(plan: Plan = Plan.ENTERPRISE) -> Customer:
    """Customer 1009, Thames Valley Energy (GB, Europe/London: GMT in winter)."""
    return Customer(1009, "Thames Valley Energy", "Oliver", (), plan, "GB", "en", "Europe/London")


def test_the_default_clock_starts_at_9_gmt_for_a_uk_p1_written_at_7() -> None:
    """§3.2: "4-hour P1 SLA starts at 9 AM GMT" (Wednesday, December 9, 2026)."""
    assert DEFAULT_SLA_POLICY.clock is ClockMode.BUSINESS_START
    deadlines = compute_deadlines(utc(12, 9, 7), Priority.P1, uk())
    assert deadlines.clock == "business_start" and deadlines.clock_start == utc(12, 9, 9)
    assert deadlines.first_response_due == utc(12, 9, 13)
    assert deadlines.resolution_due == utc(12, 10, 9)  # P1 <24 hours (§4.3)
    assert "elapsed from the start of business hours" in deadlines.explanation[0]


def test_p2_p3_resolution_is_72_hours_not_nine_working_days() -> None:
    """§7.3, §10.1: P2-P3 resolution <72 hours; working hours only would be 9 working days."""
    received = utc(12, 9, 10)  # Wednesday 10:00 GMT
    for priority in (Priority.P2, Priority.P3):
        elapsed = compute_deadlines(received, priority, uk(Plan.STARTER))
        assert elapsed.resolution_due == received + 72 * H
        working = compute_deadlines(received, priority, uk(Plan.STARTER), HOURS)
        assert working.clock == "business_hours"
        assert working.resolution_due == utc(12, 22, 10)  # 9 working days later


def test_p0_runs_24x7_in_both_modes() -> None:
    saturday_night = utc(12, 12, 3)
    for policy in (DEFAULT_SLA_POLICY, HOURS):
        deadlines = compute_deadlines(saturday_night, Priority.P0, uk(), policy)
        assert deadlines.clock == "24x7"
        assert deadlines.first_response_due == saturday_night + H
        assert deadlines.resolution_due == saturday_night + 4 * H


def test_waiting_moves_the_elapsed_resolution_clock_by_the_wait() -> None:
    received = utc(12, 9, 7)  # the clock starts at 09:00
    waits = [Pause(utc(12, 9, 8), utc(12, 9, 11))]  # 2 of its 3 hours after the clock start
    deadlines = compute_deadlines(received, Priority.P1, uk(), pauses=waits)
    assert deadlines.first_response_due == utc(12, 9, 13)
    assert deadlines.resolution_due == utc(12, 10, 11)
    assert deadlines.paused == 2 * H
    assert "resolution clock paused 2 h while waiting" in deadlines.explanation


def test_an_update_promised_on_friday_afternoon_is_not_due_on_saturday() -> None:
    friday_4pm = utc(12, 11, 16)
    calendar, _ = customer_calendar(uk(), Priority.P1, DEFAULT_SLA_POLICY)
    moved = update_promise(calendar, DEFAULT_SLA_POLICY, friday_4pm, 24 * H)
    assert (moved.due, moved.within) == (utc(12, 14, 9), None)  # Monday 09:00, time only
    working = update_promise(calendar, HOURS, friday_4pm, 24 * H)
    assert (working.due, working.within) == (utc(12, 16, 16), 24 * H)  # 24 working hours
    weekday = update_promise(calendar, DEFAULT_SLA_POLICY, utc(12, 9, 10), 24 * H)
    assert (weekday.due, weekday.within, weekday.starts_later) == (utc(12, 10, 10), 24 * H, False)
    p0, _ = customer_calendar(uk(), Priority.P0, DEFAULT_SLA_POLICY)
    outage = update_promise(p0, DEFAULT_SLA_POLICY, friday_4pm, 24 * H)
    assert (outage.due, outage.within) == (utc(12, 12, 16), 24 * H)  # P0: Saturday is fine


def test_an_unknown_clock_is_refused() -> None:
    with pytest.raises(SlaError, match="clock"):
        sla_policy_from_config({"clock": "wall"})

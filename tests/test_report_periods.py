"""Issue 16: report periods in the company's time zone and the schedule of report mails."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from mailproc.config import Settings
from mailproc.reports.mailing import ReportKind, scheduled
from mailproc.reports.periods import Period, PeriodKind, choose_period

BERLIN = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 12, 9, 12, tzinfo=dt.UTC)  # a Wednesday


def test_default_is_the_last_full_week_in_the_company_zone() -> None:
    week = choose_period(NOW, BERLIN)
    assert (week.first, week.last, week.kind) == (
        dt.date(2026, 11, 30),
        dt.date(2026, 12, 6),
        PeriodKind.WEEK,
    )
    assert week.start == dt.datetime(2026, 11, 29, 23, tzinfo=dt.UTC)  # Monday 00:00 CET
    assert week.end == dt.datetime(2026, 12, 6, 23, tzinfo=dt.UTC)  # --to is included
    assert week.label() == "2026-W49"


def test_periods_named_by_options() -> None:
    month = choose_period(NOW, BERLIN, kind=PeriodKind.MONTH)
    assert (month.first, month.last) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    quarter = choose_period(NOW, BERLIN, first=dt.date(2026, 2, 14), kind=PeriodKind.QUARTER)
    assert (quarter.first, quarter.last, quarter.label()) == (
        dt.date(2026, 1, 1),
        dt.date(2026, 3, 31),
        "2026-Q1",
    )
    custom = choose_period(NOW, BERLIN, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert custom.kind is PeriodKind.CUSTOM and len(custom.days) == 31
    # the day clocks change (29 March 2026 in Berlin) is 23 hours long
    assert custom.end - custom.start == dt.timedelta(days=31, hours=-1)
    ending = choose_period(NOW, BERLIN, last=dt.date(2026, 12, 2))
    assert (ending.first, ending.last) == (dt.date(2026, 11, 26), dt.date(2026, 12, 2))
    with pytest.raises(ValueError, match="cannot end"):
        choose_period(NOW, BERLIN, dt.date(2026, 3, 2), dt.date(2026, 3, 1))


def test_previous_periods() -> None:
    march = Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31), BERLIN, PeriodKind.MONTH)
    assert march.previous().last == dt.date(2026, 2, 28)
    q1 = Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31), BERLIN, PeriodKind.QUARTER)
    assert (q1.previous().first, q1.previous().label()) == (dt.date(2025, 10, 1), "2025-Q4")
    ten = Period(dt.date(2026, 3, 11), dt.date(2026, 3, 20), BERLIN)
    assert (ten.previous().first, ten.previous().last) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 10),
    )


@pytest.mark.parametrize(
    ("kind", "now", "due", "label"),
    [
        # Monday 08:00 in Berlin is 07:00 UTC in winter
        (ReportKind.WEEKLY, "2026-12-07T06:59:00", "2026-11-30T07:00:00", "2026-W48"),
        (ReportKind.WEEKLY, "2026-12-07T07:00:00", "2026-12-07T07:00:00", "2026-W49"),
        (ReportKind.MONTHLY, "2026-12-01T06:59:00", "2026-11-01T07:00:00", "2026-10"),
        (ReportKind.MONTHLY, "2026-12-01T07:00:00", "2026-12-01T07:00:00", "2026-11"),
        (ReportKind.QUARTERLY, "2027-01-01T07:00:00", "2027-01-01T07:00:00", "2026-Q4"),
        (ReportKind.QUARTERLY, "2026-12-31T23:00:00", "2026-10-01T06:00:00", "2026-Q3"),
    ],
)
def test_schedule_in_the_company_zone(kind: ReportKind, now: str, due: str, label: str) -> None:
    at, period = scheduled(kind, dt.datetime.fromisoformat(now).replace(tzinfo=dt.UTC), BERLIN)
    assert at == dt.datetime.fromisoformat(due).replace(tzinfo=dt.UTC)
    assert period.label() == label


def test_settings_check_the_zone_and_the_leadership_address() -> None:
    settings = Settings.model_validate(
        {
            "company": {"timezone": "Europe/Berlin"},
            "notify": {"leadership_address": "Board@DataFlow.com"},
        }
    )
    assert settings.company.timezone == "Europe/Berlin"
    assert settings.notify.leadership_address == "board@dataflow.com"
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings.model_validate({"company": {"timezone": "Mars/Base"}})

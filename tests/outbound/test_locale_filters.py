"""The locale filters remember what they formatted; what they remember never changes a text.

A date and time is remembered by what its text shows (the minute, the zone, daylight saving
or not), so the same instant in two zones, or the repeated hour when clocks go back, keep
texts of their own; a filter that has seen thousands of values says what a fresh one says.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.outbound.i18n import locale_filters

ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Mexico_City")
# 2026-11-01: New York goes back from EDT to EST at 02:00, so 01:30 comes twice.
FIRST_0130 = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT
SECOND_0130 = dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC)  # 01:30 EST


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_repeated_hour_keeps_its_own_zone_name(locale: str) -> None:
    datetime_filter = locale_filters(locale)["datetime"]
    first = datetime_filter(FIRST_0130, "America/New_York")
    second = datetime_filter(SECOND_0130, "America/New_York")
    assert first != second
    assert first == locale_filters(locale)["datetime"](FIRST_0130, "America/New_York")
    assert second == locale_filters(locale)["datetime"](SECOND_0130, "America/New_York")
    if locale == "en":
        assert first.endswith("(Eastern Daylight Time)")
        assert second.endswith("(Eastern Standard Time)")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_one_instant_in_two_zones_reads_in_each(locale: str) -> None:
    datetime_filter = locale_filters(locale)["datetime"]
    instant = dt.datetime(2026, 12, 7, 9, 15, tzinfo=dt.UTC)
    in_london = datetime_filter(instant, "Europe/London")
    in_paris = datetime_filter(instant, "Europe/Paris")
    assert in_london != in_paris
    assert "9:15" in in_london or "09:15" in in_london
    assert "10:15" in in_paris


def test_seconds_do_not_show_minutes_do() -> None:
    datetime_filter = locale_filters("en")["datetime"]
    base = dt.datetime(2026, 12, 7, 9, 15, 0, tzinfo=dt.UTC)
    assert datetime_filter(base, "UTC") == datetime_filter(base.replace(second=59), "UTC")
    assert datetime_filter(base, "UTC") != datetime_filter(base.replace(minute=16), "UTC")


instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2035, 12, 31),
    timezones=st.just(dt.UTC),
)


@settings(max_examples=60, deadline=None)
@given(
    locale=st.sampled_from(SUPPORTED_LOCALES),
    values=st.lists(st.tuples(instants, st.sampled_from(ZONES)), min_size=1, max_size=40),
    spans=st.lists(st.integers(1, 60 * 24 * 9), min_size=1, max_size=10),
)
def test_a_warm_filter_says_what_a_fresh_one_says(
    locale: str, values: list[tuple[dt.datetime, str]], spans: list[int]
) -> None:
    warm = locale_filters(locale)
    for value, zone in values:  # remember them all, then ask again
        warm["datetime"](value, zone)
        warm["date"](value, zone)
    for minutes in spans:
        warm["span"](dt.timedelta(minutes=minutes))
    for value, zone in reversed(values):
        fresh = locale_filters(locale)
        assert warm["datetime"](value, zone) == fresh["datetime"](value, zone)
        assert warm["date"](value, zone) == fresh["date"](value, zone)
    for minutes in spans:
        fresh = locale_filters(locale)
        for name in ("span", "span_hours"):
            span = dt.timedelta(minutes=minutes)
            assert warm[name](span) == fresh[name](span)


def test_a_full_memory_starts_again_and_stays_right() -> None:
    filters = locale_filters("fr")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    minutes = [start + dt.timedelta(minutes=7 * n) for n in range(5000)]  # more than it keeps
    said = [filters["datetime"](value, "Europe/Paris") for value in minutes]
    assert said[0] == filters["datetime"](minutes[0], "Europe/Paris")
    assert said[-1] == locale_filters("fr")["datetime"](minutes[-1], "Europe/Paris")
    assert len(set(said)) == len(minutes)

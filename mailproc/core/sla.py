"""SLA policy (§3.1 first-response table, resolution targets, plan calendars) and due times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError

from mailproc.core.business_calendar import (
    ALWAYS,
    BusinessCalendar,
    CalendarError,
    add_business_time,
    as_utc,
    business_time_between,
    holidays_between,
    holidays_supported,
    next_working_time,
    parse_business_hours,
)
from mailproc.core.model import Customer, Plan, Priority

# Defaults, in the shape of the [sla] config table (hours; business hours unless always_on).
DEFAULT_SLA: Mapping[str, Any] = MappingProxyType(
    {
        "first_response_hours": {  # §3.1
            "Starter": {"P0": 1, "P1": 24, "P2": 48, "P3": 72},
            "Professional": {"P0": 1, "P1": 12, "P2": 24, "P3": 48},
            "Enterprise": {"P0": 1, "P1": 4, "P2": 12, "P3": 24},
        },
        "resolution_hours": {"P0": 4, "P1": 24, "P2": 72, "P3": 72},  # §3.1, §4.3, §7.3
        "business_hours": {  # §3.2: the P1 clock of a UK customer starts at 9 AM local time
            "Starter": "Mon-Fri 09:00-17:00",
            "Professional": "Mon-Fri 09:00-17:00",
            "Enterprise": "Mon-Fri 09:00-17:00",
        },
        "always_on": ["P0"],  # priorities whose clocks run 24x7, holidays included
        "pause_resolution_while_waiting": True,
    }
)


class SlaError(ValueError):
    """SLA settings (defaults or config) are malformed."""


class _SlaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_response_hours: dict[Plan, dict[Priority, PositiveFloat]]
    resolution_hours: dict[Priority, PositiveFloat]
    business_hours: dict[Plan, str]
    always_on: list[Priority]
    pause_resolution_while_waiting: bool


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets per plan and priority, default working hours per plan, clock options."""

    first_response: Mapping[Plan, Mapping[Priority, dt.timedelta]]
    resolution: Mapping[Priority, dt.timedelta]
    business_hours: Mapping[Plan, str]
    always_on: frozenset[Priority]
    pause_resolution: bool


def _overlay(default: Any, override: Any) -> Any:
    """``override`` laid over ``default``: tables merge key by key, other values replace."""
    if isinstance(default, Mapping) and isinstance(override, Mapping):
        return {
            key: _overlay(default.get(key), override.get(key)) for key in {**default, **override}
        }
    return default if override is None else override


def sla_policy_from_config(config: Mapping[str, Any] | None = None) -> SlaPolicy:
    """The policy from the ``[sla]`` config table laid over the defaults, key by key."""
    try:
        data = _SlaConfig.model_validate(_overlay(DEFAULT_SLA, config))
    except ValidationError as exc:
        raise SlaError(f"sla settings: {exc}") from exc
    for plan, spec in data.business_hours.items():
        try:
            parse_business_hours(spec)
        except CalendarError as exc:
            raise SlaError(f"sla business_hours for {plan}: {exc}") from exc
    return SlaPolicy(
        first_response=MappingProxyType(
            {
                plan: MappingProxyType({p: dt.timedelta(hours=h) for p, h in row.items()})
                for plan, row in data.first_response_hours.items()
            }
        ),
        resolution=MappingProxyType(
            {p: dt.timedelta(hours=h) for p, h in data.resolution_hours.items()}
        ),
        business_hours=MappingProxyType(dict(data.business_hours)),
        always_on=frozenset(data.always_on),
        pause_resolution=data.pause_resolution_while_waiting,
    )


DEFAULT_SLA_POLICY = sla_policy_from_config()


@dataclass(frozen=True, slots=True)
class Pause:
    """A stretch of waiting on the customer; ``end`` None means still waiting."""

    start: dt.datetime
    end: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Due times of one ticket and how they were reached."""

    priority: Priority
    plan: Plan
    received_at: dt.datetime
    clock_start: dt.datetime
    first_response_due: dt.datetime
    resolution_due: dt.datetime | None  # None while the resolution clock is paused
    first_response_target: dt.timedelta
    resolution_target: dt.timedelta
    paused: dt.timedelta  # working time the resolution clock stood still
    sla_row: str
    calendar_description: str
    explanation: tuple[str, ...]


def customer_calendar(
    customer: Customer, priority: Priority, policy: SlaPolicy = DEFAULT_SLA_POLICY
) -> tuple[BusinessCalendar, tuple[str, ...]]:
    """The calendar that times ``priority`` tickets of ``customer``, with notes on fallbacks.

    Customer hours win over the plan's; an unreadable value falls back (and says so).
    """
    notes: list[str] = []
    try:
        zone = ZoneInfo(customer.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        notes.append(f"unknown time zone {customer.timezone!r}; using UTC")
        zone = ZoneInfo("UTC")
    if priority in policy.always_on:
        calendar = BusinessCalendar(hours=parse_business_hours(ALWAYS), zone=zone, country=None)
        return calendar, (f"calendar: {priority} clocks run 24x7, holidays included", *notes)
    hours = parse_business_hours(policy.business_hours[customer.plan])
    source = f"{customer.plan} plan hours"
    if customer.business_hours:
        try:
            hours, source = parse_business_hours(customer.business_hours), "customer hours"
        except CalendarError as exc:
            notes.append(f"{exc}; using the {source}")
    country: str | None = customer.country.upper()
    if not holidays_supported(customer.country):
        notes.append(f"no public-holiday calendar for country {customer.country!r}")
        country = None
    calendar = BusinessCalendar(hours=hours, zone=zone, country=country)
    return calendar, (f"calendar: {calendar.description} ({source})", *notes)


def compute_deadlines(
    received_at: dt.datetime,
    priority: Priority,
    customer: Customer,
    policy: SlaPolicy = DEFAULT_SLA_POLICY,
    pauses: Sequence[Pause] = (),
) -> Deadlines:
    """First-response and resolution due times for a ticket received at ``received_at``.

    Pure and repeatable: call it again with the current priority, plan (on ``customer``) and
    the ticket's waiting ``pauses`` whenever one of them changes. Clocks start at receipt (or
    at the next working moment) and count only working time; with ``pause_resolution`` the
    resolution clock also stands still while waiting on the customer.
    """
    received = as_utc(received_at)
    plan = customer.plan
    first_target = policy.first_response[plan][priority]
    resolution_target = policy.resolution[priority]
    calendar, notes = customer_calendar(customer, priority, policy)
    start = next_working_time(calendar, received)
    first_due = add_business_time(calendar, received, first_target)
    waits = [(p.start, p.end) for p in pauses if p.end is not None]
    due = add_business_time(
        calendar, received, resolution_target, waits if policy.pause_resolution else ()
    )
    paused = business_time_between(calendar, received, due) - resolution_target
    waiting_since = min((as_utc(p.start) for p in pauses if p.end is None), default=None)
    waiting = policy.pause_resolution and waiting_since is not None and waiting_since < due
    resolution_due = None if waiting else due
    lines = [
        f"SLA row {plan} × {priority}: first response within {_fmt(first_target)},"
        f" resolution within {_fmt(resolution_target)} of working time",
        *notes,
        f"received {_local(received, calendar)}; clock starts {_local(start, calendar)}",
        f"first response due {_local(first_due, calendar)}",
    ]
    if paused:
        lines.append(f"resolution clock paused {_fmt(paused)} of working time while waiting")
    if waiting_since is not None and resolution_due is None:
        lines.append(f"resolution clock paused: waiting since {_local(waiting_since, calendar)}")
    else:
        lines.append(f"resolution due {_local(due, calendar)}")
    skipped = holidays_between(calendar, received, resolution_due or first_due)
    if skipped:
        lines.append("holidays skipped: " + ", ".join(f"{d} {name}" for d, name in skipped))
    return Deadlines(
        priority=priority,
        plan=plan,
        received_at=received,
        clock_start=start,
        first_response_due=first_due,
        resolution_due=resolution_due,
        first_response_target=first_target,
        resolution_target=resolution_target,
        paused=paused,
        sla_row=f"{plan}/{priority}",
        calendar_description=calendar.description,
        explanation=tuple(lines),
    )


def _fmt(duration: dt.timedelta) -> str:
    minutes = round(duration.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def _local(moment: dt.datetime, calendar: BusinessCalendar) -> str:
    local = moment.astimezone(calendar.zone)
    return f"{moment:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {calendar.zone.key})"

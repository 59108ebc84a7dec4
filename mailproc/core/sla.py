"""SLA policy (§3.1 first-response table, resolution targets, plan calendars) and due times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError

from mailproc.core.business_calendar import (
    ALWAYS,
    BusinessCalendar,
    CalendarError,
    Span,
    add_business_time,
    as_utc,
    business_time_between,
    holidays_between,
    holidays_supported,
    is_working_day,
    next_working_time,
    parse_business_hours,
)
from mailproc.core.model import Customer, Plan, Priority


class ClockMode(StrEnum):
    """How a target is counted on a customer's calendar (``[sla] clock``)."""

    BUSINESS_START = "business_start"  # starts at the next working moment, then elapsed hours
    BUSINESS_HOURS = "business_hours"  # only working hours count


ALWAYS_ON_CLOCK = "24x7"  # the clock of an always-on priority (P0): elapsed time from receipt

# Defaults, in the shape of the [sla] config table (hours; counted as ``clock`` says).
DEFAULT_SLA: Mapping[str, Any] = MappingProxyType(
    {
        "clock": ClockMode.BUSINESS_START.value,  # §3.2: "4-hour P1 SLA starts at 9 AM GMT"
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
        "unknown_sender_plan": "Starter",  # the SLA row of a sender not in the customer list
    }
)


class SlaError(ValueError):
    """SLA settings (defaults or config) are malformed."""


class _SlaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clock: ClockMode
    first_response_hours: dict[Plan, dict[Priority, PositiveFloat]]
    resolution_hours: dict[Priority, PositiveFloat]
    business_hours: dict[Plan, str]
    always_on: list[Priority]
    pause_resolution_while_waiting: bool
    unknown_sender_plan: Plan


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets per plan and priority, default working hours per plan, clock options."""

    clock: ClockMode
    first_response: Mapping[Plan, Mapping[Priority, dt.timedelta]]
    resolution: Mapping[Priority, dt.timedelta]
    business_hours: Mapping[Plan, str]
    always_on: frozenset[Priority]
    pause_resolution: bool
    unknown_sender_plan: Plan = Plan.STARTER


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
        clock=data.clock,
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
        unknown_sender_plan=data.unknown_sender_plan,
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
    clock: str  # ClockMode value, or ALWAYS_ON_CLOCK for a 24x7 priority
    first_response_due: dt.datetime
    resolution_due: dt.datetime | None  # None while the resolution clock is paused
    first_response_target: dt.timedelta
    resolution_target: dt.timedelta
    paused: dt.timedelta  # clock time the resolution clock stood still while waiting
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


def clock_of(calendar: BusinessCalendar, policy: SlaPolicy) -> str:
    """The clock that times a ticket on ``calendar``: the policy's mode, or 24x7."""
    return ALWAYS_ON_CLOCK if calendar.hours.always else policy.clock.value


def due_after(
    calendar: BusinessCalendar,
    clock: str,
    start: dt.datetime,
    target: dt.timedelta,
    pauses: Sequence[Span] = (),
) -> dt.datetime:
    """When ``target`` has run out on ``clock`` from ``start``; time in ``pauses`` stands still.

    ``business_hours`` counts working time only; ``business_start`` (and 24x7) starts at the
    next working moment and counts elapsed time.
    """
    if clock == ClockMode.BUSINESS_HOURS:
        return add_business_time(calendar, start, target, pauses)
    begin = next_working_time(calendar, start)
    due = begin + target
    for pause_start, pause_end in sorted((as_utc(a), as_utc(b)) for a, b in pauses):
        if pause_end > begin and pause_start < due:
            due += pause_end - max(pause_start, begin)
    return due


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
    at the next working moment) and count as ``policy.clock`` says (24x7 for always-on
    priorities); with ``pause_resolution`` the resolution clock also stands still while
    waiting on the customer.
    """
    received = as_utc(received_at)
    plan = customer.plan
    first_target = policy.first_response[plan][priority]
    resolution_target = policy.resolution[priority]
    calendar, notes = customer_calendar(customer, priority, policy)
    clock = clock_of(calendar, policy)
    start = next_working_time(calendar, received)
    first_due = due_after(calendar, clock, received, first_target)
    waits = [(p.start, p.end) for p in pauses if p.end is not None]
    due = due_after(
        calendar, clock, received, resolution_target, waits if policy.pause_resolution else ()
    )
    counted = (
        business_time_between(calendar, received, due)
        if clock == ClockMode.BUSINESS_HOURS
        else due - start
    )
    paused = counted - resolution_target  # clock time the resolution clock stood still
    waiting_since = min((as_utc(p.start) for p in pauses if p.end is None), default=None)
    waiting = policy.pause_resolution and waiting_since is not None and waiting_since < due
    resolution_due = None if waiting else due
    elapsed = clock == ClockMode.BUSINESS_START
    lines = [
        f"SLA row {plan} × {priority}: first response within {_fmt(first_target)},"
        f" resolution within {_fmt(resolution_target)}"
        + (" elapsed from the start of business hours" if elapsed else " of working time"),
        *notes,
        f"received {_local(received, calendar)}; clock starts {_local(start, calendar)}",
        f"first response due {_local(first_due, calendar)}",
    ]
    if paused:
        lines.append(
            f"resolution clock paused {_fmt(paused)}{'' if elapsed else ' of working time'}"
            " while waiting"
        )
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
        clock=clock,
        first_response_due=first_due,
        resolution_due=resolution_due,
        first_response_target=first_target,
        resolution_target=resolution_target,
        paused=paused,
        sla_row=f"{plan}/{priority}",
        calendar_description=calendar.description,
        explanation=tuple(lines),
    )


@dataclass(frozen=True, slots=True)
class Promise:
    """A time told to a customer and the duration stated beside it, which always agree.

    ``within`` counted on ``clock`` from ``start`` gives ``due``; ``within`` is None when only
    the time is stated (an update promise moved off a non-working day). ``start`` is later
    than the moment of the promise when the clock waits for business hours.
    """

    within: dt.timedelta | None
    due: dt.datetime
    clock: str
    start: dt.datetime
    starts_later: bool


def sla_promise(
    clock: str,
    made_at: dt.datetime,
    clock_start: dt.datetime,
    within: dt.timedelta,
    due: dt.datetime,
) -> Promise:
    """The promise of a stored SLA target (Template 1, Template 3), as the ticket was timed."""
    start = clock_start if clock != ClockMode.BUSINESS_HOURS else as_utc(made_at)
    return Promise(within, as_utc(due), clock, start, start > as_utc(made_at))


def update_promise(
    calendar: BusinessCalendar, policy: SlaPolicy, now: dt.datetime, within: dt.timedelta
) -> Promise:
    """An update promised ``within`` from ``now`` (Template 2, Template 3).

    Counted like the SLA clock; a time that would fall on a non-working day moves to the
    next working moment (only the time is stated then). 24x7 calendars (P0) never move.
    """
    now = as_utc(now)
    clock = clock_of(calendar, policy)
    due = due_after(calendar, clock, now, within)
    start = now if clock == ClockMode.BUSINESS_HOURS else next_working_time(calendar, now)
    if clock == ClockMode.BUSINESS_START and not is_working_day(calendar, due):
        return Promise(None, next_working_time(calendar, due), clock, start, start > now)
    return Promise(within, due, clock, start, start > now)


def _fmt(duration: dt.timedelta) -> str:
    minutes = round(duration.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def _local(moment: dt.datetime, calendar: BusinessCalendar) -> str:
    local = moment.astimezone(calendar.zone)
    return f"{moment:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {calendar.zone.key})"

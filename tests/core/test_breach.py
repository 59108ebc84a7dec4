"""Breach notifier decisions (§3.2, Template 3): what is due, to whom, keyed to go out once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.core.breach import CUSTOMER, BreachKind, BreachNotice, SlaState, breach_notices
from mailproc.core.escalation import IdempotencyKey
from mailproc.core.identity import AgentRole
from mailproc.core.model import Customer, Plan, Priority, TicketStatus
from mailproc.core.sla import compute_deadlines

T0 = dt.datetime(2026, 11, 26, 14, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
APOLOGY, ALERT, LATE = (
    BreachKind.SLA_BREACH_APOLOGY,
    BreachKind.BREACH_ALERT,
    BreachKind.RESOLUTION_ALERT,
)
OPEN = TicketStatus.OPEN


def state(
    status: TicketStatus = OPEN,
    responded: dt.datetime | None = None,
    resolution_due: dt.datetime | None = T0 + 20 * HOUR,
    resolved: dt.datetime | None = None,
) -> SlaState:
    return SlaState(12, status, T0 + 4 * HOUR, responded, resolution_due, resolved)


# (what, state, now, kinds due)
CASES = [
    ("before the first-response deadline", state(), T0 + HOUR, []),
    ("exactly at the deadline is not late", state(), T0 + 4 * HOUR, []),
    ("one minute late", state(), T0 + 4 * HOUR + MIN, [APOLOGY, ALERT]),
    ("answered in time", state(responded=T0 + HOUR), T0 + 5 * HOUR, []),
    ("answered late: the reply has gone out", state(responded=T0 + 5 * HOUR), T0 + 6 * HOUR, []),
    ("resolution overdue", state(responded=T0 + HOUR), T0 + 21 * HOUR, [LATE]),
    ("both overdue", state(), T0 + 21 * HOUR, [APOLOGY, ALERT, LATE]),
    ("resolution clock paused", state(resolution_due=None), T0 + 99 * HOUR, [APOLOGY, ALERT]),
    (
        "waiting with the clock running",
        state(TicketStatus.WAITING),
        T0 + 21 * HOUR,
        [APOLOGY, ALERT, LATE],
    ),
    ("resolved", state(TicketStatus.RESOLVED, resolved=T0 + HOUR), T0 + 99 * HOUR, []),
    ("closed", state(TicketStatus.CLOSED), T0 + 99 * HOUR, []),
    ("resolved_at set, status not yet updated", state(resolved=T0 + HOUR), T0 + 99 * HOUR, []),
]


@pytest.mark.parametrize(("sla", "now", "kinds"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_notices_due(sla: SlaState, now: dt.datetime, kinds: list[BreachKind]) -> None:
    assert [n.kind for n in breach_notices(sla, now)] == kinds


def test_apology_to_customer_alerts_to_the_support_manager() -> None:
    now = T0 + 21 * HOUR
    apology, alert, late = breach_notices(state(), now, apology_credit=Decimal(50))
    assert apology == BreachNotice(
        12,
        APOLOGY,
        CUSTOMER,
        T0 + 4 * HOUR,
        17 * HOUR,
        "no first response; it was due at 2026-11-26 18:00 UTC",
        Decimal(50),
    )
    assert (alert.recipient, alert.credit, alert.reason) == (
        AgentRole.SUPPORT_MANAGER,
        None,
        apology.reason,
    )
    assert (late.recipient, late.due_at, late.overdue_by) == (
        AgentRole.SUPPORT_MANAGER,
        T0 + 20 * HOUR,
        HOUR,
    )
    assert late.credit is None
    assert [n.key for n in (apology, alert, late)] == [
        (12, "sla_breach_apology", T0 + 4 * HOUR),
        (12, "breach_alert", T0 + 4 * HOUR),
        (12, "resolution_alert", T0 + 20 * HOUR),
    ]
    assert breach_notices(state(), now)[0].credit is None  # no credit unless configured


def test_keys_are_utc_whatever_zone_the_store_returns() -> None:
    zone = ZoneInfo("Europe/London")
    local = dataclasses.replace(
        state(),
        first_response_due=(T0 + 4 * HOUR).astimezone(zone),
        resolution_due=(T0 + 20 * HOUR).astimezone(zone),
    )
    now = (T0 + 21 * HOUR).astimezone(ZoneInfo("Asia/Tokyo"))
    assert [n.key for n in breach_notices(local, now)] == [
        n.key for n in breach_notices(state(), T0 + 21 * HOUR)
    ]


def test_a_new_deadline_after_a_priority_change_is_a_new_key() -> None:
    before = breach_notices(state(), T0 + 5 * HOUR)
    moved = dataclasses.replace(state(), first_response_due=T0 + 2 * HOUR)
    after = breach_notices(moved, T0 + 5 * HOUR)
    assert {n.key for n in before}.isdisjoint({n.key for n in after})


def test_overlapping_cron_runs_on_several_hosts_send_each_notice_once() -> None:
    """The outbox's unique key is the only guard: every run may propose the same notices."""
    outbox: dict[IdempotencyKey, BreachNotice] = {}
    runs = [T0 + 4 * HOUR + m * MIN for m in (1, 1, 2, 3, 3, 60, 60 * 17)]  # two hosts, replays
    for now in runs:
        for notice in breach_notices(state(), now, apology_credit=Decimal(50)):
            outbox.setdefault(notice.key, notice)
    assert sorted(key[1] for key in outbox) == [
        "breach_alert",
        "resolution_alert",
        "sla_breach_apology",
    ]


def test_customer_1018_enterprise_p1_four_hours() -> None:
    """§3.2 use case: 1018 (Enterprise, New York) gets a 4-hour P1 first response."""
    customer = Customer(
        1018,
        "Atlas Insurance Group",
        "Robert Fitzgerald",
        ("robert@atlasinsurance.example",),
        Plan.ENTERPRISE,
        "US",
        "en",
        "America/New_York",
    )
    received = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)  # Tuesday 10:00 in New York
    deadlines = compute_deadlines(received, Priority.P1, customer)
    sla = SlaState(1, OPEN, deadlines.first_response_due, None, deadlines.resolution_due, None)
    assert deadlines.first_response_due == received + 4 * HOUR
    assert breach_notices(sla, received + 4 * HOUR) == ()
    assert [n.kind for n in breach_notices(sla, received + 4 * HOUR + MIN)] == [APOLOGY, ALERT]


_MOMENTS = st.datetimes(
    min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1), timezones=st.just(dt.UTC)
)
_STATES = st.builds(
    SlaState,
    ticket=st.integers(1, 10**6),
    status=st.sampled_from(TicketStatus),
    first_response_due=_MOMENTS,
    first_responded_at=st.one_of(st.none(), _MOMENTS),
    resolution_due=st.one_of(st.none(), _MOMENTS),
    resolved_at=st.one_of(st.none(), _MOMENTS),
)


@given(_STATES, _MOMENTS, _MOMENTS)
def test_keys_do_not_depend_on_when_the_cron_runs(
    sla: SlaState, first: dt.datetime, second: dt.datetime
) -> None:
    early, late = sorted((first, second))
    early_keys = {n.key for n in breach_notices(sla, early)}
    late_notices = breach_notices(sla, late)
    assert early_keys <= {n.key for n in late_notices}  # once due, due with the same key
    assert len({n.key for n in late_notices}) == len(late_notices)
    for notice in late_notices:
        assert notice.due_at < late and notice.overdue_by == late - notice.due_at
        assert notice.key == (sla.ticket, notice.kind.value, notice.due_at)
        assert notice.due_at in (sla.first_response_due, sla.resolution_due)

"""Escalation timers (§4.1, §2.2) from the procedures' use cases, and P0 incidents (§4.3, §7.3)."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailproc.core.catalog import Catalog, load_default_catalog
from mailproc.core.classify import Classifier, Intent, classifier_from_config
from mailproc.core.escalation import (
    EscalationPolicy,
    Incident,
    P0Report,
    TicketState,
    Timer,
    TimerKind,
    escalation_timers,
    incident_decision,
    timer_fires,
    timer_void_reason,
)
from mailproc.core.identity import AgentRole
from mailproc.core.model import Priority, TicketStatus

R = AgentRole
P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3
T0 = dt.datetime(2026, 11, 26, 14, 12, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_default_catalog()


@pytest.fixture(scope="module")
def classifier(catalog: Catalog) -> Classifier:
    return classifier_from_config(catalog)


# (what, subject, text, timers as (kind, due after receipt, team, notified))
USE_CASES = [
    (
        "§2.1 customer 1003: Error 503 outage",
        "URGENT: Error 503 Service Unavailable - all dashboards down",
        'Since 14:05 UTC every dashboard returns "Error 503: Service Unavailable".',
        [(TimerKind.P0_DEVOPS, 30 * MIN, R.DEVOPS, (R.CTO, R.SUPPORT_DIRECTOR))],
    ),
    (
        "§4.1 customer 1036: platform outage DB-2002",
        "Platform down",
        "DB-2002 on every workspace since 9:00.",
        [(TimerKind.P0_DEVOPS, 30 * MIN, R.DEVOPS, (R.CTO, R.SUPPORT_DIRECTOR))],
    ),
    (
        "§2.2 customer 1006: API-4004 is P1, Engineering after 2 h",
        "API-4004: Too Many Requests breaks our integration",
        "Our nightly sync gets API-4004: Too Many Requests after about 200 calls.",
        [(TimerKind.P1_ENGINEERING, 2 * HOUR, R.ENGINEERING, (R.SUPPORT_MANAGER,))],
    ),
    (
        "§4.3 customer 1004: DB-2003 goes to Engineering (catalog team)",
        "Dashboards are slow",
        "DB-2003: Slow Loading on every dashboard since Monday.",
        [(TimerKind.MINOR, 24 * HOUR, R.ENGINEERING, ())],
    ),
    (
        "§4.1 customer 1023: map widget fix MOB-6007 to Product",
        "Map widget",
        "MOB-6007 on the map widget of the mobile app.",
        [(TimerKind.MINOR, 24 * HOUR, R.PRODUCT, ())],
    ),
    (
        "feature request to Product",
        "Feature request",
        "It would be great if we could export dashboards to PowerPoint.",
        [(TimerKind.MINOR, 24 * HOUR, R.PRODUCT, ())],
    ),
    (
        "§6.2 customer 1002: a refund escalates nowhere",
        "Refund request for our Starter plan",
        "Could you refund the $49 and cancel the subscription?",
        [],
    ),
    (
        "§2.2 edge case: unclear priority to the Support Manager in 30 min",
        "Something is off",
        "We see errors here and there, not sure what is going on.",
        [
            (TimerKind.MINOR, 24 * HOUR, R.PRODUCT, ()),
            (TimerKind.TRIAGE, 30 * MIN, R.SUPPORT_MANAGER, ()),
        ],
    ),
]


@pytest.mark.parametrize(
    ("subject", "text", "expected"), [u[1:] for u in USE_CASES], ids=[u[0] for u in USE_CASES]
)
def test_use_cases(
    classifier: Classifier,
    catalog: Catalog,
    subject: str,
    text: str,
    expected: list[tuple[TimerKind, dt.timedelta, AgentRole, tuple[AgentRole, ...]]],
) -> None:
    found = classifier.classify(subject, text)
    code = catalog.get(found.error_codes[0]) if found.error_codes else None
    timers = escalation_timers(
        7,
        found.priority,
        found.intent,
        T0,
        code_team=code.team if code else None,
        triage_within=found.triage_within,
    )
    assert [(t.kind, t.due_at - T0, t.team, t.notify_roles) for t in timers] == expected
    assert all(t.ticket == 7 and t.priority is found.priority and "§" in t.reason for t in timers)


# (priority, intent, catalog team, expected (kind, team) or None)
ROUTES = [
    (P0, Intent.OUTAGE, "Engineering", (TimerKind.P0_DEVOPS, R.DEVOPS)),  # P0 always DevOps
    (P1, Intent.TECHNICAL_ISSUE, None, (TimerKind.P1_ENGINEERING, R.ENGINEERING)),
    (P1, Intent.TECHNICAL_ISSUE, "Product", (TimerKind.P1_ENGINEERING, R.PRODUCT)),
    (P1, Intent.BILLING_QUESTION, None, (TimerKind.P1_ENGINEERING, R.ENGINEERING)),
    (P2, Intent.TECHNICAL_ISSUE, " devops ", (TimerKind.MINOR, R.DEVOPS)),
    (P2, Intent.OUTAGE, None, (TimerKind.MINOR, R.PRODUCT)),
    (P3, Intent.FEATURE_REQUEST, "Security", (TimerKind.MINOR, R.PRODUCT)),  # unknown team
    (P3, Intent.BILLING_QUESTION, None, None),
    (P3, Intent.SURVEY_ANSWER, None, None),
    (P3, Intent.OTHER, None, None),
    (P2, Intent.REFUND_CANCELLATION, None, None),
]


@pytest.mark.parametrize(("priority", "intent", "team", "expected"), ROUTES)
def test_routes(
    priority: Priority,
    intent: Intent,
    team: str | None,
    expected: tuple[TimerKind, AgentRole] | None,
) -> None:
    timers = escalation_timers(1, priority, intent, T0, code_team=team)
    assert [(t.kind, t.team) for t in timers] == ([expected] if expected else [])


def test_catalog_team_is_named_in_the_reason() -> None:
    (timer,) = escalation_timers(1, P2, Intent.TECHNICAL_ISSUE, T0, code_team="Engineering")
    assert "catalog team Engineering" in timer.reason


def test_policy_sets_the_delays() -> None:
    policy = EscalationPolicy(
        p0_within=dt.timedelta(0), p1_after=HOUR, minor_within=dt.timedelta(hours=8)
    )
    assert escalation_timers(1, P0, Intent.OUTAGE, T0, policy=policy)[0].due_at == T0
    assert escalation_timers(1, P1, Intent.OUTAGE, T0, policy=policy)[0].due_at == T0 + HOUR
    (minor,) = escalation_timers(1, P3, Intent.FEATURE_REQUEST, T0, policy=policy)
    assert minor.due_at == T0 + 8 * HOUR
    assert "8 h" in minor.reason


def test_keys_are_utc_and_stable() -> None:
    local = T0.astimezone(ZoneInfo("America/Chicago"))
    first = escalation_timers(9, P1, Intent.TECHNICAL_ISSUE, T0)
    again = escalation_timers(9, P1, Intent.TECHNICAL_ISSUE, local)
    assert first == again
    assert first[0].key == (9, "escalate_p1", T0 + 2 * HOUR)
    assert first[0].due_at.tzinfo is dt.UTC


def test_naive_receipt_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        escalation_timers(1, P0, Intent.OUTAGE, T0.replace(tzinfo=None))


@given(
    priority=st.sampled_from(Priority),
    intent=st.sampled_from(Intent),
    received=st.datetimes(max_value=dt.datetime(9000, 1, 1), timezones=st.just(dt.UTC)),
    triage=st.one_of(st.none(), st.timedeltas(dt.timedelta(0), dt.timedelta(hours=4))),
    team=st.sampled_from([None, "DevOps", "Engineering", "Product", "Other"]),
)
def test_every_timer_is_due_at_or_after_receipt(
    priority: Priority,
    intent: Intent,
    received: dt.datetime,
    triage: dt.timedelta | None,
    team: str | None,
) -> None:
    timers = escalation_timers(3, priority, intent, received, code_team=team, triage_within=triage)
    assert all(t.due_at >= received for t in timers)
    assert len({t.key for t in timers}) == len(timers)
    assert timers == escalation_timers(
        3, priority, intent, received, code_team=team, triage_within=triage
    )


# --- when a timer comes due ------------------------------------------------------------------

P1_TIMER = escalation_timers(5, P1, Intent.TECHNICAL_ISSUE, T0)[0]
TRIAGE_TIMER = escalation_timers(5, P2, Intent.OTHER, T0, triage_within=30 * MIN)[0]
OPEN = TicketStatus.OPEN

# (what, timer, state, void reason or None when it fires)
FIRES = [
    ("P1 still open after 2 h", P1_TIMER, TicketState(OPEN, P1), None),
    ("waiting is still unresolved", P1_TIMER, TicketState(TicketStatus.WAITING, P1), None),
    ("resolved before 2 h", P1_TIMER, TicketState(TicketStatus.RESOLVED, P1), "resolved"),
    ("closed", P1_TIMER, TicketState(TicketStatus.CLOSED, P1), "closed"),
    (
        "agent escalated already",
        P1_TIMER,
        TicketState(OPEN, P1, frozenset({R.ENGINEERING})),
        "already escalated to engineering",
    ),
    (
        "escalated elsewhere only",
        P1_TIMER,
        TicketState(OPEN, P1, frozenset({R.PRODUCT})),
        None,
    ),
    ("downgraded to P2", P1_TIMER, TicketState(OPEN, P2), "priority changed from P1 to P2"),
    ("triage still needed", TRIAGE_TIMER, TicketState(OPEN, P2), None),
    (
        "triage: priority set by an agent",
        TRIAGE_TIMER,
        TicketState(OPEN, P1, triaged=True),
        "agent",
    ),
    ("triage: same priority confirmed", TRIAGE_TIMER, TicketState(OPEN, P2, triaged=True), "agent"),
    ("triage: priority moved by a rule only", TRIAGE_TIMER, TicketState(OPEN, P3), None),
]


@pytest.mark.parametrize(
    ("timer", "state", "void"), [f[1:] for f in FIRES], ids=[f[0] for f in FIRES]
)
def test_timer_fires(timer: Timer, state: TicketState, void: str | None) -> None:
    reason = timer_void_reason(timer, state)
    assert timer_fires(timer, state) is (void is None)
    if void is None:
        assert reason is None
    else:
        assert reason is not None and void in reason


# --- incidents -------------------------------------------------------------------------------


def report(ticket: int, customer: int | None, minutes: float, code: str = "DB-2002") -> P0Report:
    return P0Report(ticket, customer, code, T0 + dt.timedelta(minutes=minutes))


def test_1036_1048_and_a_third_customer_are_one_incident() -> None:
    reports = [report(101, 1036, 0), report(102, 1048, 12), report(103, 1003, 25)]
    (incident,) = incident_decision(reports)
    assert incident == Incident(
        code="DB-2002",
        tickets=(101, 102, 103),
        customer_ids=(1003, 1036, 1048),
        started_at=T0,
        detected_at=T0 + 25 * MIN,
        reason="3 customers reported DB-2002 within 30 min (threshold 3)",
    )
    assert incident.devops_key == (101, "incident_devops", T0)
    resolved = T0 + 3 * HOUR
    assert incident.resolution_keys(resolved) == tuple(
        (ticket, "incident_resolved", resolved) for ticket in (101, 102, 103)
    )


# (what, reports, expected tickets of each incident)
INCIDENTS = [
    ("two customers are not enough", [report(1, 1036, 0), report(2, 1048, 5)], []),
    (
        "one customer twice counts once",
        [report(1, 1036, 0), report(2, 1036, 5), report(3, 1048, 9)],
        [],
    ),
    (
        "same customer twice is linked once the threshold is met",
        [report(1, 1036, 0), report(2, 1036, 5), report(3, 1048, 9), report(4, 1003, 10)],
        [(1, 2, 3, 4)],
    ),
    ("too far apart", [report(1, 1036, 0), report(2, 1048, 31), report(3, 1003, 62)], []),
    (
        "the window is inclusive",
        [report(1, 1036, 0), report(2, 1048, 15), report(3, 1003, 30)],
        [(1, 2, 3)],
    ),
    (
        "different codes are different outages",
        [report(1, 1036, 0), report(2, 1048, 5, "API-4001"), report(3, 1003, 9)],
        [],
    ),
    (
        "codes compare case-insensitively",
        [report(1, 1036, 0), report(2, 1048, 5, "db-2002"), report(3, 1003, 9)],
        [(1, 2, 3)],
    ),
    (
        "unknown senders are linked but not counted",
        [report(1, None, 0), report(2, None, 1), report(3, 1036, 2), report(4, 1048, 3)],
        [],
    ),
    (
        "an ongoing outage chains: earlier reports join",
        [report(1, 1036, 0), report(2, 1048, 25), report(3, 1003, 50), report(4, 1001, 55)],
        [(1, 2, 3, 4)],
    ),
    (
        "a gap over the window starts a new chain",
        [
            *(report(i, 1000 + i, i) for i in (1, 2, 3)),
            *(report(i, 1000 + i, 100 + i) for i in (4, 5, 6)),
        ],
        [(1, 2, 3), (4, 5, 6)],
    ),
    (
        "the same ticket reported twice counts once",
        [report(1, 1036, 0), report(1, 1036, 0), report(2, 1048, 1)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("reports", "expected"), [i[1:] for i in INCIDENTS], ids=[i[0] for i in INCIDENTS]
)
def test_incident_decision(reports: list[P0Report], expected: list[tuple[int, ...]]) -> None:
    assert [i.tickets for i in incident_decision(reports)] == expected


def test_devops_is_told_once_as_the_incident_grows() -> None:
    first = [report(101, 1036, 0), report(102, 1048, 12), report(103, 1003, 25)]
    (early,) = incident_decision(first)
    (later,) = incident_decision([*first, report(104, 1020, 40), report(105, 1042, 65)])
    assert later.devops_key == early.devops_key
    assert later.tickets == (101, 102, 103, 104, 105)  # every linked customer gets the update
    assert later.detected_at == early.detected_at


def test_threshold_and_window_are_parameters() -> None:
    reports = [report(1, 1036, 0), report(2, 1048, 50)]
    assert incident_decision(reports, window=HOUR, threshold=2)[0].tickets == (1, 2)
    with pytest.raises(ValueError):
        incident_decision(reports, threshold=1)
    with pytest.raises(ValueError):
        incident_decision(reports, window=dt.timedelta(0))


@given(
    st.lists(
        st.tuples(
            st.integers(1, 40),
            st.one_of(st.none(), st.integers(1000, 1006)),
            st.integers(0, 240),
            st.sampled_from(["DB-2002", "API-4001"]),
        ),
        max_size=25,
        unique_by=lambda r: r[0],
    ),
    st.randoms(),
)
def test_incidents_do_not_depend_on_report_order(
    rows: list[tuple[int, int | None, int, str]], rnd: random.Random
) -> None:
    reports = [report(t, c, m, code) for t, c, m, code in rows]
    shuffled = reports[:]
    rnd.shuffle(shuffled)
    incidents = incident_decision(reports)
    assert incidents == incident_decision(shuffled)
    for incident in incidents:
        assert len(incident.customer_ids) >= 3
        assert incident.started_at <= incident.detected_at
    linked = [t for incident in incidents for t in incident.tickets]
    assert len(linked) == len(set(linked))

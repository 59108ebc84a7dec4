"""Escalation timers (§4.1, §2.2 triage) and multi-customer P0 incidents (§4.3, §7.3)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby

from mailproc.core.business_calendar import as_utc
from mailproc.core.classify import Intent
from mailproc.core.identity import AgentRole
from mailproc.core.model import Priority, TicketStatus

IdempotencyKey = tuple[int, str, dt.datetime]  # (ticket, kind, due_at): unique in the store

_CLOSED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})
# P2-P3 mail that goes to a team: bugs and feature requests (§4.1), not billing or surveys.
_MINOR_INTENTS = frozenset({Intent.TECHNICAL_ISSUE, Intent.OUTAGE, Intent.FEATURE_REQUEST})
_CATALOG_TEAMS = {
    "devops": AgentRole.DEVOPS,
    "engineering": AgentRole.ENGINEERING,
    "product": AgentRole.PRODUCT,
}


class TimerKind(StrEnum):
    """What a timer escalates."""

    P0_DEVOPS = "escalate_p0"
    P1_ENGINEERING = "escalate_p1"
    MINOR = "escalate_p2_p3"
    TRIAGE = "triage"
    UPDATE = "update_promise"  # a promised update (Template 2, 3): the manager told if missed


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """How long after receipt each escalation is due (§4.1)."""

    p0_within: dt.timedelta = dt.timedelta(minutes=30)
    p1_after: dt.timedelta = dt.timedelta(hours=2)
    minor_within: dt.timedelta = dt.timedelta(hours=24)


DEFAULT_ESCALATION_POLICY = EscalationPolicy()


@dataclass(frozen=True, slots=True)
class Timer:
    """An escalation due at ``due_at`` (UTC) unless the ticket no longer needs it.

    ``priority`` is the priority the timer was made for: a later change voids it.
    """

    ticket: int
    kind: TimerKind
    due_at: dt.datetime
    team: AgentRole
    notify_roles: tuple[AgentRole, ...]
    priority: Priority
    reason: str

    @property
    def key(self) -> IdempotencyKey:
        """The store's unique key: scheduling the same timer twice keeps one."""
        return (self.ticket, self.kind.value, self.due_at)


@dataclass(frozen=True, slots=True)
class TicketState:
    """What a timer needs to know about its ticket when it comes due."""

    status: TicketStatus
    priority: Priority
    escalated_to: frozenset[AgentRole] = frozenset()
    triaged: bool = False  # an agent has set (or confirmed) the priority
    customer_updated_at: dt.datetime | None = None  # staff's latest mail to the customer


def escalation_timers(
    ticket: int,
    priority: Priority,
    intent: Intent,
    received_at: dt.datetime,
    *,
    code_team: str | None = None,
    triage_within: dt.timedelta | None = None,
    policy: EscalationPolicy = DEFAULT_ESCALATION_POLICY,
) -> tuple[Timer, ...]:
    """The timers to schedule for a ticket, all counted from receipt (§4.1, §2.2).

    ``code_team`` is the catalog team of the ticket's error code (``ErrorCode.team``); it
    routes P1-P3 escalations (a P0 always goes to DevOps). ``triage_within`` is
    ``Classification.triage_within``: set exactly when the priority is unclear.
    """
    received = as_utc(received_at)
    team = _CATALOG_TEAMS.get((code_team or "").strip().lower())
    via = f" (catalog team {code_team})" if team is not None else ""
    timers = []
    if priority is Priority.P0:
        timers.append(
            Timer(
                ticket,
                TimerKind.P0_DEVOPS,
                received + policy.p0_within,
                AgentRole.DEVOPS,
                (AgentRole.CTO, AgentRole.SUPPORT_DIRECTOR),
                priority,
                f"P0 outage: escalate to DevOps within {_span(policy.p0_within)} of receipt;"
                " notify the CTO and the Support Director (§4.1)",
            )
        )
    elif priority is Priority.P1:
        team = team or AgentRole.ENGINEERING
        timers.append(
            Timer(
                ticket,
                TimerKind.P1_ENGINEERING,
                received + policy.p1_after,
                team,
                (AgentRole.SUPPORT_MANAGER,),
                priority,
                f"P1 still unresolved {_span(policy.p1_after)} after receipt: escalate to"
                f" {team}{via}; notify the Support Manager (§4.1)",
            )
        )
    elif intent in _MINOR_INTENTS:
        team = team or AgentRole.PRODUCT
        timers.append(
            Timer(
                ticket,
                TimerKind.MINOR,
                received + policy.minor_within,
                team,
                (),
                priority,
                f"{priority} {intent}: escalate to {team}{via} within"
                f" {_span(policy.minor_within)} if unresolved (§4.1)",
            )
        )
    if triage_within is not None:
        timers.append(
            Timer(
                ticket,
                TimerKind.TRIAGE,
                received + triage_within,
                AgentRole.SUPPORT_MANAGER,
                (),
                priority,
                f"priority unclear: escalate to the Support Manager within"
                f" {_span(triage_within)} of receipt (§2.2)",
            )
        )
    return tuple(timers)


def timer_void_reason(
    timer: Timer, state: TicketState, made_at: dt.datetime | None = None
) -> str | None:
    """Why a due timer must not fire any more, or None when it fires.

    ``made_at`` is when an update timer's promise was made: staff mail since keeps it.
    """
    if state.status in _CLOSED:
        return f"ticket {state.status} before the timer came due"
    if timer.kind is TimerKind.UPDATE:
        updated = state.customer_updated_at
        kept = updated is not None and made_at is not None and as_utc(updated) >= as_utc(made_at)
        return "staff wrote to the customer after the promise" if kept else None
    if timer.team in state.escalated_to:
        return f"already escalated to {timer.team}"
    if timer.kind is TimerKind.TRIAGE:
        return "an agent has set the priority" if state.triaged else None
    if state.priority != timer.priority:
        return f"priority changed from {timer.priority} to {state.priority}"
    return None


def timer_fires(timer: Timer, state: TicketState) -> bool:
    """Whether a due timer still escalates (the ticket is open and still needs it)."""
    return timer_void_reason(timer, state) is None


# --- incidents -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class P0Report:
    """One P0 ticket; ``code`` is its error code, or any key the caller groups code-less
    outages by (e.g. ``HTTP-503``); ``customer_id`` None for an unknown sender."""

    ticket: int
    customer_id: int | None
    code: str
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Incident:
    """P0 reports of one code from several customers: one outage, handled once (§4.3).

    Reports join while each comes within the window of the previous one, so an ongoing
    outage stays one incident; tickets before the threshold was reached belong to it too.
    """

    code: str
    tickets: tuple[int, ...]  # in order of receipt; the first is the lead ticket
    customer_ids: tuple[int, ...]  # distinct known customers, sorted
    started_at: dt.datetime
    detected_at: dt.datetime  # receipt of the report that reached the threshold
    reason: str

    @property
    def devops_key(self) -> IdempotencyKey:
        """The key of the one DevOps notification of this incident."""
        return (self.tickets[0], "incident_devops", self.started_at)

    def resolution_keys(self, resolved_at: dt.datetime) -> tuple[IdempotencyKey, ...]:
        """One update per linked ticket when the incident is resolved (every customer told)."""
        resolved = as_utc(resolved_at)
        return tuple((ticket, "incident_resolved", resolved) for ticket in self.tickets)


def incident_decision(
    reports: Sequence[P0Report],
    window: dt.timedelta = dt.timedelta(minutes=30),
    threshold: int = 3,
) -> tuple[Incident, ...]:
    """The incidents among P0 reports: ``threshold`` distinct customers, one code, ``window``.

    Pass every P0 report of the look-back period whatever its status, so that an incident's
    lead ticket and start, hence its keys, stay the same from one run to the next.
    """
    if threshold < 2 or window <= dt.timedelta(0):
        raise ValueError("an incident needs a threshold of 2 or more and a positive window")
    unique = {report.ticket: report for report in reports}.values()
    ordered = sorted(unique, key=lambda r: (r.code.upper(), as_utc(r.received_at), r.ticket))
    incidents = []
    for code, same_code in groupby(ordered, key=lambda r: r.code.upper()):
        for chain in _chains(list(same_code), window):
            detected = _threshold_reached(chain, window, threshold)
            if detected is not None:
                known = {r.customer_id for r in chain if r.customer_id is not None}
                customers = tuple(sorted(known))
                incidents.append(
                    Incident(
                        code=code,
                        tickets=tuple(r.ticket for r in chain),
                        customer_ids=customers,
                        started_at=as_utc(chain[0].received_at),
                        detected_at=detected,
                        reason=f"{len(customers)} customers reported {code} within"
                        f" {_span(window)} (threshold {threshold})",
                    )
                )
    return tuple(sorted(incidents, key=lambda i: (i.started_at, i.code)))


def _chains(reports: list[P0Report], window: dt.timedelta) -> list[list[P0Report]]:
    """Runs of reports in which each comes within ``window`` of the one before."""
    chains: list[list[P0Report]] = []
    for report in reports:
        if chains and as_utc(report.received_at) - as_utc(chains[-1][-1].received_at) <= window:
            chains[-1].append(report)
        else:
            chains.append([report])
    return chains


def _threshold_reached(
    chain: list[P0Report], window: dt.timedelta, threshold: int
) -> dt.datetime | None:
    """When ``threshold`` distinct customers first fall within one ``window``, else None."""
    counts: Counter[int] = Counter()
    start = 0
    for report in chain:
        end_at = as_utc(report.received_at)
        if report.customer_id is not None:
            counts[report.customer_id] += 1
        while end_at - as_utc(chain[start].received_at) > window:
            dropped = chain[start].customer_id
            if dropped is not None:
                counts[dropped] -= 1
                if not counts[dropped]:
                    del counts[dropped]
            start += 1
        if len(counts) >= threshold:
            return end_at
    return None


def _span(duration: dt.timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"

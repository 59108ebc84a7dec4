"""Assess a new ticket: priority and intent by the named rules, due times by the SLA calendar.

The result carries everything the event log and ``tickets show`` need to explain it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from mailproc.core.classify import Classification
from mailproc.core.model import Customer, Plan, Priority
from mailproc.core.sla import Deadlines, Pause, SlaPolicy, compute_deadlines

# A sender we do not know: the plan of ``[sla] unknown_sender_plan`` on UTC working hours.
_UNKNOWN_SENDER = Customer(
    id=0,
    company="(unknown customer)",
    contact_name="",
    emails=(),
    plan=Plan.STARTER,
    country="ZZ",
    language="en",
    timezone="UTC",
)


def unknown_customer(policy: SlaPolicy) -> Customer:
    """Who an unknown sender is timed as: ``[sla] unknown_sender_plan`` on UTC working hours."""
    return dataclasses.replace(_UNKNOWN_SENDER, plan=policy.unknown_sender_plan)


def _deadlines(
    received_at: dt.datetime,
    priority: Priority,
    customer: Customer | None,
    policy: SlaPolicy,
    pauses: tuple[Pause, ...] = (),
) -> Deadlines:
    if customer is not None:
        return compute_deadlines(received_at, priority, customer, policy, pauses)
    deadlines = compute_deadlines(received_at, priority, unknown_customer(policy), policy, pauses)
    why = (
        "unknown sender: not in the customer list, timed on the"
        f" {policy.unknown_sender_plan} row ([sla] unknown_sender_plan)"
    )
    return dataclasses.replace(deadlines, explanation=(why, *deadlines.explanation))


@dataclass(frozen=True)
class Assessment:
    """A classification and the deadlines that follow from it."""

    classification: Classification
    deadlines: Deadlines
    triage_due: dt.datetime | None

    def classification_record(self) -> dict[str, Any]:
        """The classification as stored on the ticket (JSON)."""
        c = self.classification
        return {
            "priority_rule": c.priority_rule,
            "rule_hits": [
                {
                    "rule": h.rule,
                    "priority": h.priority,
                    "intent": h.intent,
                    "reason": h.reason,
                    "triage": h.triage,
                }
                for h in c.rule_hits
            ],
            "error_codes": list(c.error_codes),
            "unknown_codes": list(c.unknown_codes),
            "http_statuses": list(c.http_statuses),
        }

    def explain_priority(self) -> str:
        """One line for the event log: the priority and the rules that set it."""
        c = self.classification
        hits = "; ".join(f"{h.rule}: {h.reason}" for h in c.rule_hits) or "no rule fired"
        source = f"rule {c.priority_rule}" if c.priority_rule else "the default priority"
        return f"{c.priority} / {c.intent} by {source} ({hits})"


def sla_record(deadlines: Deadlines) -> dict[str, Any]:
    """Deadlines as stored on the ticket (JSON): row, calendar, targets and the explanation."""
    return {
        "sla_row": deadlines.sla_row,
        "plan": deadlines.plan,
        "calendar": deadlines.calendar_description,
        "clock": deadlines.clock,
        "clock_start": deadlines.clock_start.isoformat(),
        "first_response_target_hours": deadlines.first_response_target.total_seconds() / 3600,
        "resolution_target_hours": deadlines.resolution_target.total_seconds() / 3600,
        "explanation": list(deadlines.explanation),
    }


def assess(
    classification: Classification,
    customer: Customer | None,
    received_at: dt.datetime,
    policy: SlaPolicy,
) -> Assessment:
    """The due times that follow from a new ticket's classification and its customer."""
    deadlines = _deadlines(received_at, classification.priority, customer, policy)
    triage_due = (
        received_at + classification.triage_within
        if classification.needs_triage and classification.triage_within is not None
        else None
    )
    return Assessment(classification, deadlines, triage_due)


def recompute(
    received_at: dt.datetime,
    priority: Priority,
    customer: Customer | None,
    policy: SlaPolicy,
    pauses: tuple[Pause, ...] = (),
) -> Deadlines:
    """Due times after a change of priority, plan or waiting periods, from the ticket's history."""
    return _deadlines(received_at, priority, customer, policy, pauses)

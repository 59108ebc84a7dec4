"""The live SLA board: open tickets with the time left to their nearest deadline.

The query reads plain columns (no ORM objects), so 10,000 open tickets stay cheap; the
time-left and colour rules are pure functions of the ticket's due times and ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.store.models import Customer, Ticket

OPEN_STATUSES = ("new", "open", "waiting")
PRIORITIES = ("P0", "P1", "P2", "P3")
AMBER_FRACTION = 0.25

Colour = Literal["red", "amber", "green", "none"]
DeadlineKind = Literal["triage", "first response", "resolution"]


@dataclass(frozen=True, slots=True)
class Deadline:
    """One due time of a ticket and the length of its SLA target."""

    kind: DeadlineKind
    due: dt.datetime
    target: dt.timedelta


def nearest_deadline(
    *,
    received_at: dt.datetime,
    needs_triage: bool,
    triage_due: dt.datetime | None,
    first_response_due: dt.datetime | None,
    first_responded_at: dt.datetime | None,
    resolution_due: dt.datetime | None,
    first_response_target_hours: float | None,
    resolution_target_hours: float | None,
) -> Deadline | None:
    """The earliest deadline still running: triage, first response (until answered), resolution.

    A resolution clock paused while waiting on the customer has no due time and is skipped.
    A target missing from the stored SLA record falls back to the span from receipt to due.
    """
    candidates: list[Deadline] = []
    if needs_triage and triage_due is not None:
        candidates.append(Deadline("triage", triage_due, triage_due - received_at))
    if first_response_due is not None and first_responded_at is None:
        candidates.append(
            Deadline(
                "first response",
                first_response_due,
                _target(first_response_target_hours, first_response_due, received_at),
            )
        )
    if resolution_due is not None:
        candidates.append(
            Deadline(
                "resolution",
                resolution_due,
                _target(resolution_target_hours, resolution_due, received_at),
            )
        )
    return min(candidates, key=lambda d: d.due, default=None)


def _target(hours: float | None, due: dt.datetime, received_at: dt.datetime) -> dt.timedelta:
    return dt.timedelta(hours=hours) if hours else due - received_at


def colour(left: dt.timedelta, target: dt.timedelta) -> Colour:
    """Red when overdue, amber when less than 25% of the SLA target is left, else green.

    ``left`` is wall-clock time to the due time; ``target`` is the SLA's working-time length.
    """
    if left < dt.timedelta(0):
        return "red"
    if left < target * AMBER_FRACTION:
        return "amber"
    return "green"


def format_left(left: dt.timedelta) -> str:
    """``2d 4h``, ``3h 05m``, ``12m``; overdue times get a leading minus."""
    seconds = int(left.total_seconds())
    sign = "-" if seconds < 0 else ""
    minutes = abs(seconds) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    return f"{sign}{minutes}m"


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One open ticket on the board."""

    number: int
    priority: str
    status: str
    subject: str
    customer_id: int | None
    company: str | None
    plan: str | None
    requester: str | None
    assignee: str | None
    escalated_to: tuple[str, ...]
    deadline: Deadline | None
    left: dt.timedelta | None
    colour: Colour

    @property
    def waiting(self) -> bool:
        """Whether the ticket waits on the customer."""
        return self.status == "waiting"

    @property
    def left_text(self) -> str:
        """The time left for display, or why there is none."""
        if self.left is not None:
            return format_left(self.left)
        return "paused" if self.waiting else "-"

    def as_json(self) -> dict[str, Any]:
        """The row for ``board --json`` and the dashboard's JSON endpoint (stable keys)."""
        deadline = self.deadline
        return {
            "number": self.number,
            "priority": self.priority,
            "status": self.status,
            "subject": self.subject,
            "customer_id": self.customer_id,
            "company": self.company,
            "plan": self.plan,
            "requester": self.requester,
            "assignee": self.assignee,
            "escalated_to": list(self.escalated_to),
            "waiting_on_customer": self.waiting,
            "deadline": deadline.kind if deadline else None,
            "due": deadline.due.isoformat() if deadline else None,
            "seconds_left": int(self.left.total_seconds()) if self.left is not None else None,
            "left": self.left_text,
            "colour": self.colour,
        }


@dataclass(frozen=True, slots=True)
class Board:
    """Open tickets, most urgent first, and their counts by priority and state."""

    now: dt.datetime
    rows: tuple[BoardRow, ...]

    def counts(self) -> dict[str, dict[str, int]]:
        """Open tickets per priority (``P0``.., ``none``) and state, with totals and overdue."""
        table: dict[str, Counter[str]] = {}
        for row in self.rows:
            cell = table.setdefault(row.priority, Counter())
            cell[row.status] += 1
            cell["total"] += 1
            cell["overdue"] += row.colour == "red"
        order = [*PRIORITIES, *sorted(set(table) - set(PRIORITIES))]
        keys = (*OPEN_STATUSES, "total", "overdue")
        return {p: {k: table.get(p, Counter())[k] for k in keys} for p in order}

    @property
    def overdue(self) -> int:
        """How many open tickets are past a deadline."""
        return sum(row.colour == "red" for row in self.rows)

    def as_json(self) -> dict[str, Any]:
        """The whole board as JSON."""
        return {
            "now": self.now.isoformat(),
            "open": len(self.rows),
            "overdue": self.overdue,
            "counts": self.counts(),
            "tickets": [row.as_json() for row in self.rows],
        }


def sort_key(row: BoardRow) -> tuple[int, float, str, int]:
    """Tickets with a deadline by time left (overdue first), then the rest by priority."""
    if row.left is None:
        return (1, 0.0, row.priority, row.number)
    return (0, row.left.total_seconds(), row.priority, row.number)


def load_board(session: Session, now: dt.datetime) -> Board:
    """The open tickets (new, open, waiting) with their nearest deadline, most urgent first."""
    query = (
        select(
            Ticket.number,
            Ticket.priority,
            Ticket.status,
            Ticket.subject,
            Ticket.customer_id,
            Customer.company,
            Customer.plan,
            Ticket.requester,
            Ticket.assignee,
            Ticket.escalated_to,
            Ticket.received_at,
            Ticket.needs_triage,
            Ticket.triage_due,
            Ticket.first_response_due,
            Ticket.first_responded_at,
            Ticket.resolution_due,
            Ticket.sla,
        )
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.status.in_(OPEN_STATUSES))
    )
    rows = []
    for r in session.execute(query):
        sla = r.sla or {}
        deadline = nearest_deadline(
            received_at=r.received_at,
            needs_triage=r.needs_triage,
            triage_due=r.triage_due,
            first_response_due=r.first_response_due,
            first_responded_at=r.first_responded_at,
            resolution_due=r.resolution_due,
            first_response_target_hours=sla.get("first_response_target_hours"),
            resolution_target_hours=sla.get("resolution_target_hours"),
        )
        left = deadline.due - now if deadline else None
        rows.append(
            BoardRow(
                number=r.number,
                priority=r.priority or "none",
                status=r.status,
                subject=r.subject,
                customer_id=r.customer_id,
                company=r.company,
                plan=r.plan,
                requester=r.requester,
                assignee=r.assignee,
                escalated_to=tuple(r.escalated_to or ()),
                deadline=deadline,
                left=left,
                colour=colour(left, deadline.target) if deadline and left is not None else "none",
            )
        )
    rows.sort(key=sort_key)
    return Board(now, tuple(rows))

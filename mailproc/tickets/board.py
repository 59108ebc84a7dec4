"""The live SLA board: open tickets with the time left to their nearest deadline.

The query reads plain columns (no ORM objects), so 10,000 open tickets stay cheap; the
time-left and colour rules are pure functions of the ticket's due times and ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailproc.store.models import Customer, Ticket

OPEN_STATUSES = ("new", "open", "waiting")
PRIORITIES = ("P0", "P1", "P2", "P3")
AMBER_FRACTION = 0.25

Colour = Literal["red", "amber", "green", "none"]
DeadlineKind = Literal["triage", "first response", "resolution"]


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, 10,000 a board
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
    answered: bool,
    resolution_due: dt.datetime | None,
    first_response_target_hours: float | None,
    resolution_target_hours: float | None,
) -> Deadline | None:
    """The earliest deadline still running: triage, first response (until ``answered``),
    resolution.

    A resolution clock paused while waiting on the customer has no due time and is skipped.
    A target missing from the stored SLA record falls back to the span from receipt to due.
    """
    best: Deadline | None = None
    if needs_triage and triage_due is not None:
        best = Deadline("triage", triage_due, triage_due - received_at)
    running = first_response_due is not None and not answered
    if running and first_response_due and (best is None or first_response_due < best.due):
        target = _target(first_response_target_hours, first_response_due, received_at)
        best = Deadline("first response", first_response_due, target)
    if resolution_due is not None and (best is None or resolution_due < best.due):
        target = _target(resolution_target_hours, resolution_due, received_at)
        best = Deadline("resolution", resolution_due, target)
    return best


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


@dataclass(slots=True)  # not frozen, as Deadline
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

    def as_json(self, limit: int | None = None) -> dict[str, Any]:
        """The board as JSON: counts of every open ticket, the ``limit`` most urgent rows."""
        return {
            "now": self.now.isoformat(),
            "open": len(self.rows),
            "overdue": self.overdue,
            "counts": self.counts(),
            "tickets": [row.as_json() for row in self.rows[:limit]],
        }


def sort_key(row: BoardRow) -> tuple[int, float, str, int]:
    """Tickets with a deadline by time left (overdue first), then the rest by priority."""
    if row.left is None:
        return (1, 0.0, row.priority, row.number)
    return (0, row.left.total_seconds(), row.priority, row.number)


def raw_time(column: InstrumentedAttribute[dt.datetime | None]) -> ColumnElement[Any]:
    """A timestamp column read without its type's per-value processing (see ``utc``)."""
    return type_coerce(column, String).label(column.key)


def utc(value: str | dt.datetime | None) -> dt.datetime | None:
    """A timestamp read by ``raw_time``: SQLite's naive UTC text or PostgreSQL's datetime.

    Reading 10,000 tickets, this took the board query from about 220 to 90 ms: the column
    type's processing costs about 1.5 us a value, five values a ticket.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value + "+00:00")  # 6x faster than .replace(tzinfo)
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


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
            raw_time(Ticket.received_at),
            Ticket.needs_triage,
            raw_time(Ticket.triage_due),
            raw_time(Ticket.first_response_due),
            raw_time(Ticket.first_responded_at),
            raw_time(Ticket.resolution_due),
            Ticket.sla["first_response_target_hours"].as_float().label("first_target"),
            Ticket.sla["resolution_target_hours"].as_float().label("resolution_target"),
        )
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.status.in_(OPEN_STATUSES))
    )
    rows = []
    for (
        number,
        priority,
        status,
        subject,
        customer_id,
        company,
        plan,
        requester,
        assignee,
        escalated_to,
        received_at,
        needs_triage,
        triage_due,
        first_response_due,
        first_responded_at,
        resolution_due,
        first_target,
        resolution_target,
    ) in session.connection().execute(query).all():  # Core rows; times parsed only if used
        answered = first_responded_at is not None
        deadline = nearest_deadline(
            received_at=utc(received_at) or now,
            needs_triage=needs_triage,
            triage_due=utc(triage_due) if needs_triage else None,
            first_response_due=None if answered else utc(first_response_due),
            answered=answered,
            resolution_due=utc(resolution_due),
            first_response_target_hours=first_target,
            resolution_target_hours=resolution_target,
        )
        left = deadline.due - now if deadline else None
        rows.append(
            BoardRow(
                number=number,
                priority=priority or "none",
                status=status,
                subject=subject,
                customer_id=customer_id,
                company=company,
                plan=plan,
                requester=requester,
                assignee=assignee,
                escalated_to=tuple(escalated_to or ()),
                deadline=deadline,
                left=left,
                colour=colour(left, deadline.target) if deadline and left is not None else "none",
            )
        )
    rows.sort(key=sort_key)
    return Board(now, tuple(rows))

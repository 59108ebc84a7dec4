"""The ticket work list: filters, sorting and the SLA state of each ticket (issue 16)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, SQLColumnExpression, String, case, cast, func, or_, select
from sqlalchemy.orm import Session

from mailproc.store.models import Customer, Ticket
from mailproc.tickets.ops import OPEN_STATUSES
from mailproc.tickets.views import ticket_summary

SORTS: Final = ("due", "created", "priority")


@dataclass(frozen=True, slots=True)
class WorkFilter:
    """What the work list shows; every field left at its default selects everything."""

    status: str | None = None
    priorities: tuple[str, ...] = ()
    assignee: str | None = None
    customer: str | None = None  # a customer id, or part of the company name or requester
    overdue: bool = False
    due_within: dt.timedelta | None = None
    escalated: bool = False
    since: dt.datetime | None = None
    translation_requested: bool = False  # only tickets whose customer asked for another language
    limit: int | None = None
    sort: str | None = None  # None: newest first


def next_due() -> ColumnElement[dt.datetime | None]:
    """The deadline a ticket works toward: first response until answered, then resolution."""
    return case(
        (Ticket.first_responded_at.is_(None), Ticket.first_response_due),
        else_=Ticket.resolution_due,
    )


def work_list(session: Session, work: WorkFilter, now: dt.datetime) -> list[dict[str, Any]]:
    """The tickets ``work`` selects, in its order, with their SLA state as of ``now``."""
    query = select(Ticket)
    if work.status:
        query = query.where(Ticket.status == work.status)
    if work.priorities:
        query = query.where(Ticket.priority.in_(work.priorities))
    if work.assignee:
        query = query.where(func.lower(Ticket.assignee) == work.assignee.lower())
    if work.customer:
        query = query.where(_customer_matches(work.customer))
    if work.overdue or work.due_within is not None:
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    if work.overdue:
        query = query.where(
            or_(
                Ticket.first_responded_at.is_(None) & (Ticket.first_response_due < now),
                Ticket.resolution_due < now,
            )
        )
    if work.due_within is not None:
        query = query.where(next_due() >= now, next_due() <= now + work.due_within)
    if work.escalated:
        query = query.where(cast(Ticket.escalated_to, String).like('%"%'))
    if work.since is not None:
        query = query.where(Ticket.received_at >= work.since)
    if work.translation_requested:
        query = query.where(Ticket.translation_requested.is_(True))
    query = query.order_by(*_order(work.sort))
    if work.limit is not None:
        query = query.limit(work.limit)
    return [work_item(ticket, now) for ticket in session.scalars(query)]


def work_item(ticket: Ticket, now: dt.datetime) -> dict[str, Any]:
    """A ticket's listing fields plus who works it and whether its deadlines were missed."""
    first_due, resolution_due = ticket.first_response_due, ticket.resolution_due
    return {
        **ticket_summary(ticket),
        "first_responded_at": _iso(ticket.first_responded_at),
        "resolved_at": _iso(ticket.resolved_at),
        "assignee": ticket.assignee,
        "escalated_to": list(ticket.escalated_to),
        "survey_score": ticket.survey_score,
        "first_response_breached": _missed(first_due, ticket.first_responded_at, now),
        "resolution_breached": _missed(resolution_due, ticket.resolved_at, now),
    }


def _missed(due: dt.datetime | None, done: dt.datetime | None, now: dt.datetime) -> bool:
    if due is None:
        return False
    return done > due if done is not None else now > due


def _customer_matches(text: str) -> ColumnElement[bool]:
    if text.isdigit():
        return Ticket.customer_id == int(text)
    pattern = f"%{text.lower()}%"
    company = select(Customer.id).where(func.lower(Customer.company).like(pattern))
    return or_(Ticket.customer_id.in_(company), func.lower(Ticket.requester).like(pattern))


def _order(sort: str | None) -> tuple[SQLColumnExpression[Any], ...]:
    due = next_due()
    if sort == "due":
        return (due.is_(None), due, Ticket.number)
    if sort == "priority":
        return (Ticket.priority.is_(None), Ticket.priority, due.is_(None), due, Ticket.number)
    if sort == "created":
        return (Ticket.received_at.desc(), Ticket.number.desc())
    return (Ticket.number.desc(),)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None

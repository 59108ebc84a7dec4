"""Mail that is stored but changes no ticket's state: automatic, bulk and spam mail (noted on
the ticket it belongs to, else kept without one) and old mail imported as history."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from mailproc.core.events import EventKind
from mailproc.core.ticket_threading import ThreadAction, Trust
from mailproc.processing.context import OutcomeAction
from mailproc.processing.rows import Understood, mark_undeliverable, message_detail
from mailproc.store.models import Inbound, Ticket
from mailproc.store.repo import record_event

Routed = tuple[Ticket | None, OutcomeAction, str]  # the ticket, what was done, why


def route_automatic(
    session: Session,
    inbound: Inbound,
    understood: Understood,
    target: Ticket | None,
    now: dt.datetime,
) -> Routed:
    """Automatic, bulk or spam mail: noted on its ticket (state unchanged), or kept without
    one; a live bounce marks the failed recipients of our mail it returns."""
    kind = understood.detection.kind
    evidence = "; ".join(understood.detection.reasons)
    detail = message_detail(understood)
    if (
        target is not None
        and understood.thread.action in (ThreadAction.ATTACH, ThreadAction.REOPEN)
        and understood.thread.trust is not Trust.STRANGER_TAG
    ):
        reason = f"{kind.value} ({evidence}); {understood.thread.reason}; ticket state unchanged"
        if understood.detection.bounce is not None and inbound.imported_at is None:
            ignored = mark_undeliverable(session, target, inbound, understood, now)
            reason = f"{reason}; {ignored}" if ignored else reason
        record_event(
            session,
            now,
            EventKind.for_mail(kind),
            reason,
            ticket=target,
            inbound_id=inbound.id,
            detail=detail,
        )
        return target, OutcomeAction.NOTED, reason
    reason = f"{kind.value} ({evidence}) that matches no ticket: no ticket opened"
    record_event(
        session,
        now,
        EventKind.INBOUND_NOT_TICKETED,
        reason,
        inbound_id=inbound.id,
        detail=detail,
    )
    return None, OutcomeAction.KEPT, reason


def add_history(
    session: Session, inbound: Inbound, understood: Understood, target: Ticket, now: dt.datetime
) -> Routed:
    """Old mail of a ticket's thread, imported as history: added, the ticket's state unchanged
    (a history ticket is handled as of its latest mail), nothing sent."""
    if target.imported_at is not None and target.resolved_at is not None:
        handled = max(target.resolved_at, inbound.received_at)
        target.resolved_at = target.closed_at = handled
    reason = f"{understood.thread.reason}; history import: ticket state unchanged, nothing sent"
    record_event(
        session,
        now,
        EventKind.MESSAGE_HISTORY,
        reason,
        ticket=target,
        inbound_id=inbound.id,
        detail=message_detail(understood),
    )
    return target, OutcomeAction.APPENDED, reason

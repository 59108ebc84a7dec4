"""Promote a stored bulk or spam message to a person's mail: it opens a ticket after all."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailproc.core.detect import PROMOTABLE_KINDS
from mailproc.core.events import EventKind
from mailproc.core.model import InboundStatus
from mailproc.errors import NotFoundError, PermanentError
from mailproc.processing.context import Outcome, ProcessingContext
from mailproc.processing.worker import process_one
from mailproc.store import repo
from mailproc.store.models import MessageRecord, Ticket


def promote(
    session: Session, inbound_id: int, context: ProcessingContext, now: dt.datetime
) -> Outcome:
    """Process a kept bulk or spam message again as a person's mail, in the caller's
    transaction: it opens a ticket timed from now, acknowledged and announced as any other
    (a history import's stays silent). The promotion is kept on the row, so replays agree."""
    found = repo.load_with_raw(session, [inbound_id])
    if not found:
        raise NotFoundError(f"no inbound message {inbound_id}")
    inbound, raw = found[0]
    kinds = {kind.value for kind in PROMOTABLE_KINDS}
    if inbound.status != InboundStatus.PROCESSED or inbound.kind not in kinds:
        raise PermanentError(
            f"inbound {inbound_id} is {inbound.status} {inbound.kind or ''}".rstrip()
            + f": only processed {' or '.join(sorted(kinds))} mail can be promoted"
        )
    message = session.scalars(
        select(MessageRecord)
        .where(MessageRecord.inbound_id == inbound_id)
        .options(selectinload(MessageRecord.attachments))
    ).first()
    if message is not None and message.ticket_id is not None:
        number = session.scalar(select(Ticket.number).where(Ticket.id == message.ticket_id))
        raise PermanentError(f"inbound {inbound_id} is already on ticket #{number}")
    if message is not None:
        session.delete(message)  # written again by processing, with its ticket
        session.flush()
    repo.record_event(
        session,
        now,
        EventKind.INBOUND_PROMOTED,
        f"{inbound.kind} promoted by an admin: a person's mail",
        inbound_id=inbound_id,
        detail={"was": inbound.kind, "kind_reason": inbound.kind_reason},
    )
    inbound.promoted_at = now
    inbound.status = InboundStatus.PENDING
    return process_one(session, inbound, raw, context)

"""The worker: turn pending raw mail into parsed messages and tickets; quarantine and release.

A batch of claimed rows is decided in memory against a preloaded view of the tickets it
touches, then written with one flush in one transaction. If the database refuses the batch,
it is redone one message at a time in savepoints, and a message that fails on its own is
quarantined with its reason. Nothing is dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import exc, select
from sqlalchemy.orm import Session, sessionmaker

from mailproc.core.events import EventKind
from mailproc.core.model import InboundStatus
from mailproc.errors import PermanentError
from mailproc.processing.batch import Batch
from mailproc.processing.budget import WriteBudget
from mailproc.processing.context import (
    Outcome,
    OutcomeAction,
    ProcessingContext,
    ProcessSummary,
    quarantine,
)
from mailproc.processing.parsepool import PrepareResult
from mailproc.processing.readahead import ReadAhead
from mailproc.store import repo
from mailproc.store.db import is_transient, transaction
from mailproc.store.models import Inbound
from mailproc.store.staged import staging

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def process_pending(
    factory: sessionmaker[Session],
    context: ProcessingContext,
    *,
    batch_size: int = 250,
    progress: Progress | None = None,
    before_batch: Callable[[], None] | None = None,
    budget: WriteBudget | None = None,
) -> ProcessSummary:
    """Process every pending inbound message; safe to run in several processes at once.

    The pending mail is read and parsed before the transaction that claims and writes it
    begins, one part at a time (processing/readahead.py: a large message alone), so that no
    message holds the write lock while it is parsed. ``before_batch`` runs right before each
    transaction begins (``serve`` uses it to let the listener's commits go first on SQLite),
    and a ``budget`` cuts a part further, into transactions its measured time allows
    (processing/budget.py). Each transaction claims the oldest pending rows: the part's next
    ones, whose parsing is ready (a row another worker took is replaced by one parsed here).
    """
    summary = ProcessSummary()
    reader = ReadAhead(factory, context, batch_size)
    while (part := reader.next()) is not None:
        prepared = part.results(context)  # outside any transaction
        left = len(part.jobs)
        while left > 0:  # the part in transactions of at most the budget's limit
            count = left if budget is None else min(left, budget.limit)
            if before_batch is not None:
                before_batch()
            started = budget.start() if budget is not None else 0.0
            with transaction(factory) as session:
                claimed = repo.claim_pending(session, count)
                ready = context.complete(claimed, prepared)  # rows another worker left: here
                summary.outcomes.extend(process_batch(session, claimed, context, ready))
            if not claimed:  # what is pending is held by other workers (PostgreSQL): theirs
                return summary
            if budget is not None:
                budget.record(len(claimed), started)
            left -= len(claimed)
            if progress is not None:
                progress(len(claimed))
    return summary


def process_batch(
    session: Session,
    claimed: Sequence[tuple[Inbound, bytes]],
    context: ProcessingContext,
    ready: Mapping[int, PrepareResult] | None = None,
) -> list[Outcome]:
    """Process claimed rows with one flush; fall back to one savepoint per message on failure.

    ``ready`` holds results prepared ahead of time by inbound id. Transient database errors
    are re-raised so that the caller's transaction is retried.
    """
    if not claimed:
        return []
    context.staff.refresh(session)  # an agent added by `mailproc agents add` counts at once
    try:
        with session.begin_nested():
            batch = Batch(session, context)
            with staging(session):
                outcomes = batch.run(claimed, ready or {})
                session.flush()
            batch.notify()
    except exc.SQLAlchemyError as error:
        if is_transient(error):
            raise
        log.warning("batch of %d refused (%s); retrying one by one", len(claimed), error)
        outcomes = [process_one(session, inbound, raw, context) for inbound, raw in claimed]
    _tell_quarantined(session, claimed, outcomes, context)
    return outcomes


def _tell_quarantined(
    session: Session,
    claimed: Sequence[tuple[Inbound, bytes]],
    outcomes: Sequence[Outcome],
    context: ProcessingContext,
) -> None:
    """A known customer's quarantined mail: the agents and the customer are told (each in a
    savepoint: a mail that cannot even be announced stays quarantined, and is logged)."""
    if context.desk is None:
        return
    quarantined = {o.inbound_id for o in outcomes if o.action is OutcomeAction.QUARANTINED}
    for inbound, raw in claimed:
        if inbound.id not in quarantined:
            continue
        try:
            with session.begin_nested(), staging(session):
                context.desk.mail_quarantined(session, inbound, raw, context.clock.now())
        except (PermanentError, ValueError, exc.SQLAlchemyError) as error:
            if isinstance(error, exc.SQLAlchemyError) and is_transient(error):
                raise
            log.warning("inbound %s: quarantine notice failed: %s", inbound.id, error)


def process_one(
    session: Session, inbound: Inbound, raw: bytes, context: ProcessingContext
) -> Outcome:
    """Process one message in its own savepoint; quarantine it if even that fails."""
    try:
        with session.begin_nested():
            batch = Batch(session, context)
            with staging(session):
                [outcome] = batch.run([(inbound, raw)])
                session.flush()
            batch.notify()
        return outcome
    except exc.SQLAlchemyError as error:
        if is_transient(error):
            raise
        reason = f"database refused the message: {type(error).__name__}: {error}"
    inbound.attempts += 1
    return quarantine(session, inbound, reason, context.clock.now())


def release(session: Session, inbound_ids: Sequence[int], now: dt.datetime) -> list[int]:
    """Return quarantined messages to the pending queue; returns the ids released."""
    rows = session.scalars(
        select(Inbound).where(
            Inbound.id.in_(list(inbound_ids)), Inbound.status == InboundStatus.QUARANTINED
        )
    ).all()
    for inbound in rows:
        inbound.status = InboundStatus.PENDING
        repo.record_event(
            session,
            now,
            EventKind.INBOUND_RELEASED,
            "released from quarantine by an admin",
            inbound_id=inbound.id,
            detail={"previous_error": inbound.last_error},
        )
    return [inbound.id for inbound in rows]

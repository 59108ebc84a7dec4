"""Delivery attempts on the outbox: claim a batch of due mail, record the results, back off.

These functions run inside a transaction the caller opens and commits; none talks to the network
and none renders: a claim carries the stored bytes or the context to build them from.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Row,
    RowMapping,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session, selectinload

from mailproc.config_transport import OutboxSettings
from mailproc.core.events import EventKind
from mailproc.outbound.build import BuiltMail, complete_thread_records
from mailproc.outbound.buildpool import BuildJob
from mailproc.outbound.outbox import OutboxStatus
from mailproc.outbound.outbox_state import (
    STATE_COLUMNS,
    OutboxState,
    RecipientState,
    with_recipients,
    write_states,
)
from mailproc.store.models import OUTBOX_UNFINISHED, Outbox, Ticket, UndeliverableAddress
from mailproc.store.repo import record_event
from mailproc.store.staged import staging, table_of

log = logging.getLogger(__name__)

_MAX_BACKOFF_DOUBLINGS: Final = 62


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a recipient did not get a mail this time; permanent failures are not retried."""

    reason: str
    permanent: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbound mail taken for one delivery attempt: what to send, from whom, to whom.

    ``raw`` is None for a deferred mail not built yet: the deliverer builds it from
    ``template``, ``locale``, ``context`` and ``envelope`` and keeps the bytes before sending.
    ``finished`` is set, and ``recipients`` empty, when no deliverable recipient was left and
    the row was closed without an attempt. ``due_at`` is when the row was due before the claim.
    """

    outbox_id: int
    ticket_number: int | None
    template: str
    locale: str
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes | None
    context: dict[str, Any] | None
    envelope: dict[str, Any] | None
    attempt: int
    due_at: dt.datetime
    finished: OutboxStatus | None = None


def count_due(session: Session, now: dt.datetime) -> int:
    """How many mails are due for an attempt at ``now``."""
    return int(session.scalar(select(func.count()).select_from(Outbox).where(_due(now))) or 0)


def due_mails(session: Session, now: dt.datetime) -> list[str]:
    """One line per mail due for an attempt at ``now`` (template, recipients, due time)."""
    rows = session.scalars(
        select(Outbox)
        .where(_due(now))
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .options(selectinload(Outbox.recipients))
    )
    lines = []
    for row in rows:
        to = [r.address for r in row.recipients if r.status == OutboxStatus.PENDING]
        lines.append(
            f"{row.template} ({row.locale}) to {', '.join(to) or '-'}, "
            f"due {row.next_attempt_at.isoformat()}"
        )
    return lines


_OUTBOX: Final = table_of(Outbox)
_CONTENT: Final = (
    _OUTBOX.c.template,
    _OUTBOX.c.locale,
    _OUTBOX.c.envelope_from,
    _OUTBOX.c.raw,
    _OUTBOX.c.context,
    _OUTBOX.c.envelope,
)


def due_unbuilt(
    session: Session, now: dt.datetime, limit: int, *, offset: int = 0
) -> list[BuildJob]:
    """The rows among the first ``limit`` due (in claim order) past the first ``offset``
    whose mail is not built yet, with their stored context and envelope as JSON text (built
    elsewhere, decoded there)."""
    query = (
        select(
            _OUTBOX.c.id,
            _OUTBOX.c.template,
            _OUTBOX.c.locale,
            cast(_OUTBOX.c.context, Text).label("context"),
            cast(_OUTBOX.c.envelope, Text).label("envelope"),
            _OUTBOX.c.raw.is_(None).label("unbuilt"),
        )
        .where(_due(now))
        .order_by(*_CLAIM_ORDER)
        .limit(limit)
    )
    found = _in_index_order(session, query.offset(offset) if offset else query)
    return [
        (row.id, row.template, row.locale, row.context, row.envelope)
        for row in found
        if row.unbuilt
    ]


def claim_due(
    session: Session,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int = 1,
    *,
    undeliverable_for: dt.timedelta = dt.timedelta(days=30),
    built: Mapping[int, BuiltMail] | None = None,
) -> list[Claim]:
    """Take up to ``limit`` due mails for one attempt each: ``sending`` until ``now + lease``.

    Customer-facing mail (lane 0) comes before internal mail, then the oldest due first; the
    query reads the partial index ``ix_outbox_due``. Rows other deliverers hold are skipped
    (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite serializes writers). A ``sending`` row whose
    lease ran out is taken again: its previous attempt ended without a recorded result.
    Recipients whose address bounced permanently within ``undeliverable_for`` are marked failed
    here; a row with none left is finished without an attempt. Mail ``built`` ahead (by
    outbox id) for a claimed row not built yet is kept now, with its thread record. Plain
    rows, no ORM objects: four queries and one ``executemany`` per table for the batch.
    """
    found = _in_index_order(
        session,
        select(*STATE_COLUMNS, *_CONTENT)
        .where(_due(now))
        .order_by(*_CLAIM_ORDER)
        .limit(limit)
        .with_for_update(skip_locked=True, of=_OUTBOX),
    )
    if not found:
        return []
    rows = with_recipients(
        session, [OutboxState(*values[: len(STATE_COLUMNS)]) for values in found]
    )
    tickets = {row.ticket_id for row in rows.values() if row.ticket_id is not None}
    numbers = {
        id_: number
        for id_, number in session.execute(
            select(Ticket.id, Ticket.number).where(Ticket.id.in_(tickets))
        )
    }
    bounced = _bounced(session, rows.values(), now - undeliverable_for)
    claims = []
    kept: dict[str, BuiltMail] = {}
    with staging(session):
        for values in found:
            row = rows[values.id]
            number = numbers.get(row.ticket_id) if row.ticket_id is not None else None
            mail = (built or {}).get(row.id) if values.raw is None else None
            claim = _claim(session, row, values._mapping, now, lease, bounced, number, mail)
            if mail is not None and claim.finished is None:
                row.built_raw = mail.raw
                kept[claim.message_id] = mail
            claims.append(claim)
        write_states(session, rows.values())
        complete_thread_records(session, kept)
    return claims


def _claim(
    session: Session,
    row: OutboxState,
    content: RowMapping,
    now: dt.datetime,
    lease: dt.timedelta,
    bounced: Mapping[str, str],
    ticket_number: int | None,
    built: BuiltMail | None,
) -> Claim:
    due_at = row.next_attempt_at
    if row.status == OutboxStatus.SENDING:
        log.warning("outbox %s: attempt %s left no result; sending again", row.id, row.attempts)
        record_event(
            session,
            now,
            EventKind.OUTBOUND_RETRY,
            f"attempt {row.attempts} left no result within its lease (interrupted);"
            " sending again with the same Message-ID",
            ticket_id=row.ticket_id,
            detail=_attempt_detail(row),
        )
    for recipient in row.pending():
        if recipient.address in bounced:
            reason = bounced[recipient.address]
            recipient.set(
                OutboxStatus.FAILED, f"undeliverable address, our mail bounced ({reason})"
            )
    recipients = tuple(r.address for r in row.pending())
    finished = None
    if recipients:
        row.attempts += 1
        row.status = OutboxStatus.SENDING
        row.next_attempt_at = now + lease
    else:
        finished = _finish(session, row, now)
    return Claim(
        outbox_id=row.id,
        ticket_number=ticket_number,
        template=content["template"],
        locale=content["locale"],
        message_id=row.message_id,
        envelope_from=content["envelope_from"],
        recipients=recipients,
        raw=built.raw if built is not None else content["raw"],
        context=content["context"],
        envelope=content["envelope"],
        attempt=row.attempts,
        due_at=due_at,
        finished=finished,
    )


def _bounced(session: Session, rows: Iterable[OutboxState], since: dt.datetime) -> dict[str, str]:
    """The pending recipients of these rows our mail bounced from permanently ``since`` then
    (an older mark has expired: the address is tried again)."""
    pending = {r.address for row in rows for r in row.pending()}
    if not pending:
        return {}
    found = session.execute(
        select(UndeliverableAddress.address, UndeliverableAddress.reason).where(
            UndeliverableAddress.address.in_(pending),
            UndeliverableAddress.permanent.is_(True),
            UndeliverableAddress.last_seen >= since,
        )
    )
    return {address: reason for address, reason in found}


def record_results(
    session: Session,
    results: Sequence[tuple[Claim, Mapping[str, Failure]]],
    now: dt.datetime,
    settings: OutboxSettings,
) -> list[OutboxStatus | None]:
    """Record a batch of attempts, each with the recipients the relay refused (the others were
    accepted); the rows' statuses, in order.

    Transiently refused recipients are retried after an exponential backoff, the last time at
    the row's deadline; then they fail. A claim whose lease ran out and whose row another
    attempt has taken over since is not recorded (None): the attempt number fences it.
    """
    rows = _locked(session, [claim for claim, _ in results])
    statuses: list[OutboxStatus | None] = []
    accepted: list[str] = []
    recorded: list[OutboxState] = []
    with staging(session):
        for claim, refused in results:
            row = rows.get(claim.outbox_id)
            if row is None or not _current(row, claim):
                log.warning(
                    "outbox %s: attempt %s was superseded, not recorded",
                    claim.outbox_id,
                    claim.attempt,
                )
                statuses.append(None)
            else:
                statuses.append(_record(session, row, claim, refused, now, settings, accepted))
                recorded.append(row)
        write_states(session, recorded)
        if accepted:  # delivered since it bounced: no longer marked
            session.connection().execute(
                delete(table_of(UndeliverableAddress)).where(
                    UndeliverableAddress.address.in_(sorted(set(accepted)))
                )
            )
    return statuses


def release(session: Session, claims: Sequence[Claim]) -> None:
    """Give back claims that were never attempted (the relay went away first): each row is due
    again as it was, its attempt count as before the claim (one statement; a row another
    attempt has taken over since is left alone)."""
    if not claims:
        return
    session.connection().execute(
        _OUTBOX.update()
        .where(
            _OUTBOX.c.id == bindparam("b_id"),
            _OUTBOX.c.status == OutboxStatus.SENDING,
            _OUTBOX.c.attempts == bindparam("b_claimed"),
        )
        .values(
            status=OutboxStatus.PENDING,
            attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_due"),
        ),
        [
            {
                "b_id": claim.outbox_id,
                "b_claimed": claim.attempt,
                "b_attempts": claim.attempt - 1,
                "b_due": claim.due_at,
            }
            for claim in claims
        ],
    )


def _locked(session: Session, claims: Sequence[Claim]) -> dict[int, OutboxState]:
    if not claims:
        return {}
    found = session.execute(
        select(*STATE_COLUMNS)
        .where(_OUTBOX.c.id.in_([claim.outbox_id for claim in claims]))
        .with_for_update()
    )
    return with_recipients(session, [OutboxState(*values) for values in found])


def _current(row: OutboxState, claim: Claim) -> bool:
    return row.status == OutboxStatus.SENDING and row.attempts == claim.attempt


def _record(
    session: Session,
    row: OutboxState,
    claim: Claim,
    refused: Mapping[str, Failure],
    now: dt.datetime,
    settings: OutboxSettings,
    accepted: list[str],
) -> OutboxStatus:
    """Record one attempt; the recipients the relay accepted are added to ``accepted``."""
    for recipient in row.recipients:
        if recipient.address not in claim.recipients:
            continue
        failure = refused.get(recipient.address)
        if failure is None:
            recipient.set(OutboxStatus.SENT, "")
            accepted.append(recipient.address)
        else:
            permanent = failure.permanent
            recipient.set(OutboxStatus.FAILED if permanent else recipient.status, failure.reason)
    pending = row.pending()
    if pending and now < row.deadline_at:
        row.status = OutboxStatus.PENDING
        row.next_attempt_at = min(now + backoff_delay(row.attempts, settings), row.deadline_at)
        row.last_error = _summary(pending)
        log.warning("outbox %s: attempt %s failed: %s", row.id, row.attempts, row.last_error)
        record_event(
            session,
            now,
            EventKind.OUTBOUND_RETRY,
            f"attempt {row.attempts} failed: {row.last_error};"
            f" next attempt at {row.next_attempt_at.isoformat()}",
            ticket_id=row.ticket_id,
            detail=_attempt_detail(row),
        )
        return OutboxStatus.PENDING
    for recipient in pending:
        recipient.set(
            OutboxStatus.FAILED,
            f"retry deadline passed after {row.attempts} attempts: {recipient.reason}",
        )
    return _finish(session, row, now)


def backoff_delay(attempts: int, settings: OutboxSettings) -> dt.timedelta:
    """The wait after failed attempt number ``attempts``: doubling from the initial, capped."""
    doublings = min(max(attempts - 1, 0), _MAX_BACKOFF_DOUBLINGS)
    seconds = settings.backoff_initial_s * 2**doublings
    return dt.timedelta(seconds=min(seconds, settings.backoff_max_s))


def _in_index_order(session: Session, query: Select[Any]) -> Sequence[Row[Any]]:
    """The rows of a query for the first due rows, read by walking the due index in order.

    PostgreSQL is told so for this query alone: right after a burst of queued mail its
    statistics still say few rows are due, and it would fetch and sort every due row for each
    batch (10 ms a claim with 10,000 due, growing with the backlog) instead of reading ``limit``
    index entries. SQLite walks the index already.
    """
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(query).all()
    session.execute(_WALK_INDEX, {"on": "off"})
    try:
        return session.execute(query).all()
    finally:
        session.execute(_WALK_INDEX, {"on": "on"})


_WALK_INDEX: Final = text(
    "SELECT set_config('enable_sort', :on, true), set_config('enable_bitmapscan', :on, true)"
)


# the order of the due index: customer lane first, then the oldest due
_CLAIM_ORDER: Final = (_OUTBOX.c.lane, _OUTBOX.c.next_attempt_at, _OUTBOX.c.id)


def _due(now: dt.datetime) -> ColumnElement[bool]:
    """Due rows, in the words of the due index (``OUTBOX_UNFINISHED``) so that it serves."""
    return and_(text(OUTBOX_UNFINISHED), _OUTBOX.c.next_attempt_at <= now)


def _finish(session: Session, row: OutboxState, now: dt.datetime) -> OutboxStatus:
    """Close a row none of whose recipients is pending: sent if anyone got it, else failed."""
    failed = [r for r in row.recipients if r.status == OutboxStatus.FAILED]
    row.last_error = _summary(failed) or None
    if any(r.status == OutboxStatus.SENT for r in row.recipients):
        row.status = OutboxStatus.SENT
        row.sent_at = now
        log.info("outbox %s: sent <%s>", row.id, row.message_id)
        reason = "accepted by the relay" + (f"; not delivered: {row.last_error}" if failed else "")
        record_event(
            session,
            now,
            EventKind.OUTBOUND_SENT,
            reason,
            ticket_id=row.ticket_id,
            detail=_attempt_detail(row),
        )
    else:
        row.status = OutboxStatus.FAILED
        log.error("outbox %s: failed: %s", row.id, row.last_error)
        record_event(
            session,
            now,
            EventKind.OUTBOUND_FAILED,
            row.last_error or "no recipient",
            ticket_id=row.ticket_id,
            detail=_attempt_detail(row),
        )
    return OutboxStatus(row.status)


def _summary(recipients: Iterable[RecipientState]) -> str:
    """Reasons with the recipients they apply to: ``550 no such user (a@x.example)``."""
    by_reason: dict[str, list[str]] = {}
    for recipient in recipients:
        by_reason.setdefault(recipient.reason, []).append(recipient.address)
    return "; ".join(
        f"{reason} ({', '.join(addresses)})" for reason, addresses in by_reason.items()
    )


def _attempt_detail(row: OutboxState) -> dict[str, object]:
    """What an outbound event records about the attempt."""
    return {
        "outbox_id": row.id,
        "key": row.key,
        "message_id": row.message_id,
        "attempt": row.attempts,
        "recipients": {r.address: r.status for r in row.recipients},
    }

"""Delivery attempts on the outbox: claim a due mail, record each recipient's result, back off.

These functions run inside a transaction the caller opens and commits; none talks to the network.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from mailproc.config_transport import OutboxSettings
from mailproc.core.events import EventKind
from mailproc.outbound.compose import HeaderError
from mailproc.outbound.outbox import OutboxStatus, materialize
from mailproc.outbound.render import Renderer, RenderError
from mailproc.store.models import Outbox, OutboxRecipient, UndeliverableAddress
from mailproc.store.repo import record_event

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

    ``finished`` is set, and ``recipients`` empty, when no deliverable recipient was left and
    the row was closed without an attempt.
    """

    outbox_id: int
    ticket_id: int | None
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    attempt: int
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


def claim_next(
    session: Session, now: dt.datetime, lease: dt.timedelta, renderer: Renderer
) -> Claim | None:
    """Take the next due mail for one attempt: mark it ``sending`` until ``now + lease``.

    Rows other deliverers hold are skipped (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite
    serializes writers). A ``sending`` row whose lease ran out is taken again: its previous
    attempt ended without a recorded result. Recipients whose address bounced permanently are
    marked failed here; if none is left, the row is finished without an attempt.
    """
    row = session.scalars(
        select(Outbox)
        .where(_due(now))
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
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
    _drop_undeliverable(session, row)
    recipients = tuple(r.address for r in row.recipients if r.status == OutboxStatus.PENDING)
    finished = None
    if recipients:
        try:
            materialize(session, row, renderer)
        except (RenderError, HeaderError) as error:
            for recipient in row.recipients:
                if recipient.status == OutboxStatus.PENDING:
                    recipient.status, recipient.reason = OutboxStatus.FAILED, str(error)
            recipients = ()
    if recipients:
        row.attempts += 1
        row.status = OutboxStatus.SENDING
        row.next_attempt_at = now + lease
    else:
        finished = _finish(session, row, now)
    return Claim(
        outbox_id=row.id,
        ticket_id=row.ticket_id,
        message_id=row.message_id,
        envelope_from=row.envelope_from,
        recipients=recipients,
        raw=row.raw or b"",
        attempt=row.attempts,
        finished=finished,
    )


def record_attempt(
    session: Session,
    claim: Claim,
    refused: Mapping[str, Failure],
    now: dt.datetime,
    settings: OutboxSettings,
) -> OutboxStatus | None:
    """Record an attempt: recipients not in ``refused`` were accepted; return the row's status.

    Transiently refused recipients are retried after an exponential backoff, the last time at
    the row's deadline; then they fail. Returns None, changing nothing, when the claim's lease
    ran out and another attempt has taken the row over since.
    """
    row = session.get(Outbox, claim.outbox_id, with_for_update=True, populate_existing=True)
    if row is None or row.status != OutboxStatus.SENDING or row.attempts != claim.attempt:
        log.warning(
            "outbox %s: attempt %s was superseded, not recorded", claim.outbox_id, claim.attempt
        )
        return None
    for recipient in row.recipients:
        if recipient.address not in claim.recipients:
            continue
        failure = refused.get(recipient.address)
        if failure is None:
            recipient.status, recipient.reason = OutboxStatus.SENT, ""
        else:
            recipient.reason = failure.reason
            if failure.permanent:
                recipient.status = OutboxStatus.FAILED
    pending = [r for r in row.recipients if r.status == OutboxStatus.PENDING]
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
        recipient.status = OutboxStatus.FAILED
        recipient.reason = (
            f"retry deadline passed after {row.attempts} attempts: {recipient.reason}"
        )
    return _finish(session, row, now)


def backoff_delay(attempts: int, settings: OutboxSettings) -> dt.timedelta:
    """The wait after failed attempt number ``attempts``: doubling from the initial, capped."""
    doublings = min(max(attempts - 1, 0), _MAX_BACKOFF_DOUBLINGS)
    seconds = settings.backoff_initial_s * 2**doublings
    return dt.timedelta(seconds=min(seconds, settings.backoff_max_s))


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return Outbox.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)) & (
        Outbox.next_attempt_at <= now
    )


def _drop_undeliverable(session: Session, row: Outbox) -> None:
    """Fail the pending recipients our mail already bounced from permanently."""
    pending = {r.address: r for r in row.recipients if r.status == OutboxStatus.PENDING}
    if not pending:
        return
    bounced = session.execute(
        select(UndeliverableAddress.address, UndeliverableAddress.reason).where(
            UndeliverableAddress.address.in_(list(pending)),
            UndeliverableAddress.permanent.is_(True),
        )
    ).all()
    for address, reason in bounced:
        pending[address].status = OutboxStatus.FAILED
        pending[address].reason = f"undeliverable address, our mail bounced ({reason})"


def _finish(session: Session, row: Outbox, now: dt.datetime) -> OutboxStatus:
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


def _summary(recipients: Iterable[OutboxRecipient]) -> str:
    """Reasons with the recipients they apply to: ``550 no such user (a@x.example)``."""
    by_reason: dict[str, list[str]] = {}
    for recipient in recipients:
        by_reason.setdefault(recipient.reason, []).append(recipient.address)
    return "; ".join(
        f"{reason} ({', '.join(addresses)})" for reason, addresses in by_reason.items()
    )


def _attempt_detail(row: Outbox) -> dict[str, object]:
    """What an outbound event records about the attempt."""
    return {
        "outbox_id": row.id,
        "key": row.key,
        "message_id": row.message_id,
        "attempt": row.attempts,
        "recipients": {r.address: r.status for r in row.recipients},
    }

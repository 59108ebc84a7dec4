"""Outbox rows as plain values for the deliverer's claims and results: read with their
recipients and written back with one ``executemany`` per table, no ORM objects or flushes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import LargeBinary, bindparam, func, select
from sqlalchemy.orm import Session

from mailproc.outbound.outbox import OutboxStatus
from mailproc.store.models import Outbox, OutboxRecipient
from mailproc.store.staged import table_of

_OUTBOX: Final = table_of(Outbox)
_RECIPIENTS: Final = table_of(OutboxRecipient)
# the columns of an OutboxState, in its fields' order
STATE_COLUMNS: Final = (
    _OUTBOX.c.id,
    _OUTBOX.c.key,
    _OUTBOX.c.ticket_id,
    _OUTBOX.c.message_id,
    _OUTBOX.c.status,
    _OUTBOX.c.attempts,
    _OUTBOX.c.next_attempt_at,
    _OUTBOX.c.deadline_at,
    _OUTBOX.c.last_error,
    _OUTBOX.c.sent_at,
)


@dataclass(slots=True)
class RecipientState:
    """An envelope recipient of a locked row; ``changed`` once its status or reason is set."""

    address: str
    status: str
    reason: str
    changed: bool = False

    def set(self, status: str, reason: str) -> None:
        """Change the status and reason (written back by ``write_states``)."""
        self.status, self.reason, self.changed = status, reason, True


@dataclass(slots=True)
class OutboxState:
    """A locked outbox row as plain values, with its recipients by address (in order)."""

    id: int
    key: str
    ticket_id: int | None
    message_id: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    deadline_at: dt.datetime
    last_error: str | None
    sent_at: dt.datetime | None
    recipients: list[RecipientState] = field(default_factory=list)
    built_raw: bytes | None = None  # bytes built for a row that had none: kept with the state

    def pending(self) -> list[RecipientState]:
        """The recipients still waiting for the mail."""
        return [r for r in self.recipients if r.status == OutboxStatus.PENDING]


def with_recipients(session: Session, rows: Sequence[OutboxState]) -> dict[int, OutboxState]:
    """The rows by id, each with its recipients (one query)."""
    by_id = {row.id: row for row in rows}
    if by_id:
        found = session.execute(
            select(
                _RECIPIENTS.c.outbox_id,
                _RECIPIENTS.c.address,
                _RECIPIENTS.c.status,
                _RECIPIENTS.c.reason,
            )
            .where(_RECIPIENTS.c.outbox_id.in_(sorted(by_id)))
            .order_by(_RECIPIENTS.c.outbox_id, _RECIPIENTS.c.address)
        )
        for outbox_id, address, status, reason in found:
            by_id[outbox_id].recipients.append(RecipientState(address, status, reason))
    return by_id


def write_states(session: Session, rows: Iterable[OutboxState]) -> None:
    """Write these rows' state (with bytes built for them) and their changed recipients:
    one ``executemany`` each."""
    state = [
        {
            "b_id": row.id,
            "b_status": row.status,
            "b_attempts": row.attempts,
            "b_next": row.next_attempt_at,
            "b_error": row.last_error,
            "b_sent": row.sent_at,
            "b_raw": row.built_raw,
        }
        for row in rows
    ]
    if not state:
        return
    connection = session.connection()
    connection.execute(_WRITE_STATE, state)
    changed = [
        {"b_id": row["b_id"], "b_address": r.address, "b_status": r.status, "b_reason": r.reason}
        for row, written in zip(state, rows, strict=True)
        for r in written.recipients
        if r.changed
    ]
    if changed:
        connection.execute(_WRITE_RECIPIENT, changed)


_WRITE_STATE: Final = (
    _OUTBOX.update()
    .where(_OUTBOX.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        sent_at=bindparam("b_sent"),
        raw=func.coalesce(bindparam("b_raw", type_=LargeBinary), _OUTBOX.c.raw),
    )
)
_WRITE_RECIPIENT: Final = (
    _RECIPIENTS.update()
    .where(
        _RECIPIENTS.c.outbox_id == bindparam("b_id"),
        _RECIPIENTS.c.address == bindparam("b_address"),
    )
    .values(status=bindparam("b_status"), reason=bindparam("b_reason"))
)

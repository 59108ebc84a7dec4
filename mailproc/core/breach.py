"""What the SLA breach notifier sends (§3.2, §5.2 Template 3), keyed so each goes out once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from mailproc.core.business_calendar import as_utc
from mailproc.core.escalation import IdempotencyKey
from mailproc.core.identity import AgentRole
from mailproc.core.model import TicketStatus

CUSTOMER: Final = "customer"
Recipient = AgentRole | Literal["customer"]

_CLOSED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})


class BreachKind(StrEnum):
    """A breach notification; the value is also the template's name."""

    SLA_BREACH_APOLOGY = "sla_breach_apology"  # Template 3, to the customer
    BREACH_ALERT = "breach_alert"  # first response overdue, to the Support Manager
    RESOLUTION_ALERT = "resolution_alert"  # resolution overdue, to the Support Manager


@dataclass(frozen=True, slots=True)
class SlaState:
    """A ticket's SLA facts as stored; ``resolution_due`` is None while its clock is paused."""

    ticket: int
    status: TicketStatus
    first_response_due: dt.datetime
    first_responded_at: dt.datetime | None
    resolution_due: dt.datetime | None
    resolved_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class BreachNotice:
    """One notification to send; ``due_at`` is the missed deadline (UTC)."""

    ticket: int
    kind: BreachKind
    recipient: Recipient
    due_at: dt.datetime
    overdue_by: dt.timedelta
    reason: str
    credit: Decimal | None = None  # the apology's account credit (Template 3)

    @property
    def key(self) -> IdempotencyKey:
        """Unique in the outbox: overlapping runs on several hosts send each notice once."""
        return (self.ticket, self.kind.value, self.due_at)


def breach_notices(
    state: SlaState, now: dt.datetime, *, apology_credit: Decimal | None = None
) -> tuple[BreachNotice, ...]:
    """The notices due at ``now``: nothing for a resolved ticket or a deadline not yet passed.

    A first response given late ends the first-response notices: the reply has gone out.
    A new deadline (after a priority change) is a new key, so it is notified again.
    """
    now = as_utc(now)
    if state.status in _CLOSED or state.resolved_at is not None:
        return ()
    notices: list[BreachNotice] = []
    first_due = as_utc(state.first_response_due)
    if state.first_responded_at is None and now > first_due:
        late = now - first_due
        why = f"no first response; it was due at {first_due:%Y-%m-%d %H:%M} UTC"
        notices += [
            BreachNotice(
                state.ticket,
                BreachKind.SLA_BREACH_APOLOGY,
                CUSTOMER,
                first_due,
                late,
                why,
                apology_credit,
            ),
            BreachNotice(
                state.ticket,
                BreachKind.BREACH_ALERT,
                AgentRole.SUPPORT_MANAGER,
                first_due,
                late,
                why,
            ),
        ]
    if state.resolution_due is not None and now > as_utc(state.resolution_due):
        due = as_utc(state.resolution_due)
        notices.append(
            BreachNotice(
                state.ticket,
                BreachKind.RESOLUTION_ALERT,
                AgentRole.SUPPORT_MANAGER,
                due,
                now - due,
                f"not resolved; resolution was due at {due:%Y-%m-%d %H:%M} UTC",
            )
        )
    return tuple(notices)

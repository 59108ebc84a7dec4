"""What the worker's parts share: the processing context, outcomes, and quarantine."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.orm import Session

from mailproc.clock import Clock
from mailproc.core.events import EventKind
from mailproc.core.identity import IdentityPolicy
from mailproc.core.model import InboundStatus
from mailproc.core.sla import SlaPolicy
from mailproc.core.ticket_threading import ThreadPolicy
from mailproc.core.understand import PrepareRules
from mailproc.processing.parsepool import Job, ParsePool, PrepareResult, prepare_all
from mailproc.store import repo
from mailproc.store.models import Inbound
from mailproc.workflows.desk import Desk
from mailproc.workflows.mail import Notifier
from mailproc.workflows.staff import Staff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessingContext:
    """What the worker needs besides the database: policies, limits and the clock."""

    rules: PrepareRules  # limits, detection, classifier: the pure first step's
    support_addresses: frozenset[str]
    staff: Staff  # the agents, re-read at each batch
    threading: ThreadPolicy
    sla: SlaPolicy
    clock: Clock
    notifier: Notifier | None = field(default=None, compare=False)
    desk: Desk | None = field(default=None, compare=False)
    pool: ParsePool | None = field(default=None, compare=False)
    ticket_keys: repo.TicketKeys = field(default_factory=repo.TicketKeys, compare=False)

    @property
    def identity(self) -> IdentityPolicy:
        """Who the agents are now, and how their mail is authenticated."""
        return self.staff.identity

    def complete(
        self, claimed: Sequence[tuple[Inbound, bytes]], ready: Mapping[int, PrepareResult]
    ) -> dict[int, PrepareResult]:
        """``ready`` (results prepared ahead, by inbound id) plus those still missing."""
        missing = [(inbound, raw) for inbound, raw in claimed if inbound.id not in ready]
        jobs = [(raw, inbound.envelope_from) for inbound, raw in missing]
        computed = zip([inbound.id for inbound, _ in missing], self.prepare(jobs), strict=True)
        return {**ready, **dict(computed)}

    def prepare(self, jobs: Sequence[Job]) -> list[PrepareResult]:
        """The pure first step for each (raw, envelope sender), on several cores if pooled."""
        if self.pool is not None:
            return self.pool.prepare(jobs)
        return prepare_all(jobs, self.rules)


class OutcomeAction(StrEnum):
    """What became of one inbound message."""

    CREATED = "created"
    APPENDED = "appended"
    REOPENED = "reopened"
    NOTED = "noted"
    KEPT = "kept"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    HELD = "held"  # set aside for review (quarantined with the reason)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one inbound message did."""

    inbound_id: int
    action: OutcomeAction
    ticket_number: int | None = None
    reason: str = ""


@dataclass
class ProcessSummary:
    """Totals of a processing run."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: OutcomeAction) -> int:
        """How many messages ended with ``action``."""
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    @property
    def quarantined(self) -> list[Outcome]:
        """The messages that were quarantined, with their reasons."""
        return [o for o in self.outcomes if o.action == OutcomeAction.QUARANTINED]


def quarantine(session: Session, inbound: Inbound, reason: str, now: dt.datetime) -> Outcome:
    """Set a message aside with its reason; it is kept and can be released or replayed."""
    log.warning("inbound %s quarantined: %s", inbound.id, reason)
    inbound.status = InboundStatus.QUARANTINED
    inbound.last_error = reason[:4000]
    inbound.quarantined_at = now
    repo.record_event(
        session,
        now,
        EventKind.INBOUND_QUARANTINED,
        reason,
        inbound_id=inbound.id,
        detail={"attempts": inbound.attempts},
    )
    return Outcome(inbound.id, OutcomeAction.QUARANTINED, reason=reason)

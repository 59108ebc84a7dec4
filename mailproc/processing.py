"""The worker: turn pending raw mail into parsed messages and tickets; quarantine and replay.

A batch of claimed rows is decided in memory against a preloaded view of the tickets it
touches, then written with one flush in one transaction. If the database refuses the batch,
it is redone one message at a time in savepoints, and a message that fails on its own is
quarantined with its reason. Nothing is dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import ColumnElement, Insert, bindparam, exc, insert, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailproc.clock import Clock
from mailproc.core import model
from mailproc.core.addresses import normalize_address
from mailproc.core.assess import assess, sla_record
from mailproc.core.detect import AUTOMATIC_KINDS, Detection
from mailproc.core.identity import IdentityPolicy, SenderIdentity, SenderKind, identify_sender
from mailproc.core.model import InboundStatus, ParsedMessage, Priority, TicketStatus
from mailproc.core.parse import parse_message
from mailproc.core.sla import SlaPolicy
from mailproc.core.survey import parse_survey_reply
from mailproc.core.ticket_threading import (
    ThreadAction,
    ThreadDecision,
    ThreadPolicy,
    TicketRef,
    decide_thread,
)
from mailproc.core.understand import Prepared, PrepareRules, content_hash, reply_text
from mailproc.errors import PermanentError
from mailproc.notify import FirstMail, Notifier, Thread, notify_new_ticket
from mailproc.parsepool import Ahead, Job, ParsePool, PrepareResult, prepare_all
from mailproc.store import repo
from mailproc.store.db import is_transient, transaction
from mailproc.store.models import (
    AttachmentRecord,
    Blob,
    Customer,
    CustomerAddress,
    Event,
    Inbound,
    MessageRecord,
    Ticket,
    TicketParticipant,
    UndeliverableAddress,
)
from mailproc.store.staged import (
    insert_new_only,
    stage,
    stage_statement,
    staging,
    table_of,
)
from mailproc.tickets.ops import end_waiting
from mailproc.workflows import Workflows

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
READ_AHEAD = 2  # batches parsed ahead in the workers while one is written
READ_AHEAD_BYTES = 64 * 1024 * 1024  # no further batch is read ahead past this much raw mail


@dataclass(frozen=True)
class ProcessingContext:
    """What the worker needs besides the database: policies, limits and the clock."""

    rules: PrepareRules  # limits, detection, classifier: the pure first step's
    support_addresses: frozenset[str]
    identity: IdentityPolicy
    threading: ThreadPolicy
    sla: SlaPolicy
    clock: Clock
    notifier: Notifier | None = field(default=None, compare=False)
    workflows: Workflows | None = field(default=None, compare=False)
    pool: ParsePool | None = field(default=None, compare=False)
    ticket_keys: repo.TicketKeys = field(default_factory=repo.TicketKeys, compare=False)

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one inbound message did."""

    inbound_id: int
    action: str  # created, appended, reopened, noted, kept, duplicate, quarantined
    ticket_number: int | None = None
    reason: str = ""


@dataclass
class ProcessSummary:
    """Totals of a processing run."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: str) -> int:
        """How many messages ended with ``action``."""
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    @property
    def quarantined(self) -> list[Outcome]:
        """The messages that were quarantined, with their reasons."""
        return [o for o in self.outcomes if o.action == "quarantined"]


def process_pending(
    factory: sessionmaker[Session],
    context: ProcessingContext,
    *,
    batch_size: int = 250,
    progress: Progress | None = None,
    before_batch: Callable[[], None] | None = None,
) -> ProcessSummary:
    """Process every pending inbound message; safe to run in several processes at once.

    ``before_batch`` runs before each batch's transaction begins (``serve`` uses it to let the
    listener's commits go first on SQLite).

    With a parse pool, the next READ_AHEAD batches (fewer past READ_AHEAD_BYTES of raw mail)
    are parsed in the workers while this one is written (read ahead without locks; claimed,
    and checked, in a later transaction), so neither the workers nor this process wait on
    the other's pace from batch to batch.
    """
    summary = ProcessSummary()
    ahead: deque[tuple[int, int, Ahead]] = deque()  # (last inbound id, raw bytes, its batch)
    while True:
        if before_batch is not None:
            before_batch()
        with transaction(factory) as session:
            claimed = repo.claim_pending(session, batch_size)
            current = ahead.popleft()[2] if ahead else None
            if context.pool is not None and len(claimed) == batch_size:
                if current is None:  # the first batch goes to the workers before the next ones
                    current = context.pool.start(_keyed_jobs(claimed))
                after = ahead[-1][0] if ahead else claimed[-1][0].id
                while len(ahead) < READ_AHEAD and sum(b for _, b, _ in ahead) < READ_AHEAD_BYTES:
                    upcoming = repo.peek_pending(session, after, batch_size)
                    if not upcoming:
                        break
                    batch = context.pool.start(_keyed_jobs(upcoming))
                    if batch is None:  # a pool without workers
                        break
                    after = upcoming[-1][0].id
                    ahead.append((after, sum(len(raw) for _, raw in upcoming), batch))
            ready = context.complete(claimed, current.results() if current is not None else {})
            summary.outcomes.extend(process_batch(session, claimed, context, ready))
        if progress is not None and claimed:
            progress(len(claimed))
        if len(claimed) < batch_size:
            for _, _, batch in ahead:
                batch.results()  # let the workers finish before returning
            return summary


def _keyed_jobs(rows: Sequence[tuple[Inbound, bytes]]) -> list[tuple[int, Job]]:
    return [(inbound.id, (raw, inbound.envelope_from)) for inbound, raw in rows]


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
    try:
        with session.begin_nested():
            batch = _Batch(session, context)
            with staging(session):
                outcomes = batch.run(claimed, ready or {})
                session.flush()
            batch.notify()
        return outcomes
    except exc.SQLAlchemyError as error:
        if is_transient(error):
            raise
        log.warning("batch of %d refused (%s); retrying one by one", len(claimed), error)
    return [process_one(session, inbound, raw, context) for inbound, raw in claimed]


def process_one(
    session: Session, inbound: Inbound, raw: bytes, context: ProcessingContext
) -> Outcome:
    """Process one message in its own savepoint; quarantine it if even that fails."""
    try:
        with session.begin_nested():
            batch = _Batch(session, context)
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


def quarantine(session: Session, inbound: Inbound, reason: str, now: dt.datetime) -> Outcome:
    """Set a message aside with its reason; it is kept and can be released or replayed."""
    log.warning("inbound %s quarantined: %s", inbound.id, reason)
    inbound.status = InboundStatus.QUARANTINED
    inbound.last_error = reason[:4000]
    inbound.quarantined_at = now
    repo.record_event(
        session,
        now,
        "inbound.quarantined",
        reason,
        inbound_id=inbound.id,
        detail={"attempts": inbound.attempts},
    )
    return Outcome(inbound.id, "quarantined", reason=reason)


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
            "inbound.released",
            "released from quarantine by an admin",
            inbound_id=inbound.id,
            detail={"previous_error": inbound.last_error},
        )
    return [inbound.id for inbound in rows]


@dataclass(frozen=True)
class _Understood:
    """Everything decided about one message before anything is written."""

    prepared: Prepared
    sender: SenderIdentity
    thread: ThreadDecision

    @property
    def parsed(self) -> ParsedMessage:
        return self.prepared.parsed

    @property
    def detection(self) -> Detection:
        return self.prepared.detection


class _Batch:
    """One batch's view of the tickets it touches: preloaded, changed in memory, then flushed.

    It answers the threading core's questions (the TicketLookup protocol) from memory, so a
    reply later in a batch finds the ticket that an earlier message of the batch opened.
    """

    def __init__(self, session: Session, context: ProcessingContext) -> None:
        self.session = session
        self.context = context
        self.now = context.clock.now()
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._ticket_by_message_id: dict[str, Ticket] = {}
        self._first_inbound: dict[str, tuple[str, Ticket | None]] = {}
        self._unknown_ids: set[str] = set()
        self._tickets: dict[int, Ticket | None] = {}
        self._participants: dict[int, dict[str, str]] = {}
        self._customers: dict[str, Customer | None] = {}
        self._last_number: int | None = None
        self._undecided = 0
        self._outages: list[Ticket] = []  # new P0 tickets: escalated at once, together
        self._requesters: list[str] = []  # of the tickets opened: their auto-reply budgets
        self._followups: list[tuple[Ticket, Callable[[], object]]] = []

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        claimed: Sequence[tuple[Inbound, bytes]],
        ready: Mapping[int, PrepareResult] | None = None,
    ) -> list[Outcome]:
        """Decide and stage every claimed message; the caller flushes."""
        outcomes: dict[int, Outcome] = {}
        prepared: dict[int, Prepared] = {}
        results = self.context.complete(claimed, ready or {})
        for inbound, _ in claimed:
            result = results[inbound.id]
            inbound.attempts += 1
            if isinstance(result, Exception):  # a message the parser cannot take: set aside
                outcomes[inbound.id] = self._quarantine(inbound, result)
            else:
                prepared[inbound.id] = result
        with self.session.no_autoflush:
            self._preload(p.parsed for p in prepared.values())
            self._undecided = len(prepared)
            for inbound, _ in claimed:
                if inbound.id not in outcomes:
                    outcomes[inbound.id] = self._handle(inbound, prepared[inbound.id])
                    self._undecided -= 1
        return [outcomes[inbound.id] for inbound, _ in claimed]

    def _quarantine(self, inbound: Inbound, error: Exception) -> Outcome:
        log.debug("inbound %s traceback", inbound.id, exc_info=error)
        return quarantine(self.session, inbound, f"{type(error).__name__}: {error}", self.now)

    def _handle(self, inbound: Inbound, prepared: Prepared) -> Outcome:
        parsed = prepared.parsed
        earlier = self._first_inbound.get(parsed.message_id) if parsed.message_id else None
        if earlier is not None and earlier[0] == prepared.fingerprint:
            return self._duplicate(inbound, earlier[1])
        try:
            understood = self._understand(inbound, prepared)
        except Exception as error:  # a bug meets odd input: keep the mail, report, go on
            return self._quarantine(inbound, error)
        if earlier is not None:
            inbound.message_id_conflict = True
            self._event(
                earlier[1],
                inbound,
                "inbound.message_id_conflict",
                f"Message-ID {parsed.message_id} was seen before with different content; "
                "kept as its own message",
            )
        return self._apply(inbound, understood)

    def _understand(self, inbound: Inbound, prepared: Prepared) -> _Understood:
        parsed = prepared.parsed
        sender = identify_sender(parsed, self.context.identity, self.customer_by_address)
        thread = decide_thread(
            parsed,
            inbound.envelope_to,
            sender,
            self,
            self.context.threading,
            self.now,
            prepared.detection.bounce,
        )
        return _Understood(prepared, sender, thread)

    def _duplicate(self, inbound: Inbound, ticket: Ticket | None) -> Outcome:
        reason = "same Message-ID and content as a message already stored: a repeated delivery"
        inbound.status = InboundStatus.PROCESSED
        inbound.processed_at = self.now
        inbound.kind = "duplicate"
        inbound.kind_reason = reason
        self._event(ticket, inbound, "inbound.duplicate", reason)
        return Outcome(inbound.id, "duplicate", ticket.number if ticket else None, reason)

    # -- writing -------------------------------------------------------------------------

    def _apply(self, inbound: Inbound, understood: _Understood) -> Outcome:
        detection = understood.detection
        inbound.kind = detection.kind.value
        inbound.kind_reason = "; ".join(detection.reasons)[:2000]
        ticket, action, reason = self._route(inbound, understood)
        self._store_message(inbound, understood, ticket)
        if ticket is not None and detection.kind not in AUTOMATIC_KINDS:
            self._add_participants(ticket, understood)
        inbound.status = InboundStatus.PROCESSED
        inbound.processed_at = self.now
        inbound.last_error = None
        return Outcome(inbound.id, action, ticket.number if ticket else None, reason)

    def _route(self, inbound: Inbound, understood: _Understood) -> tuple[Ticket | None, str, str]:
        thread = understood.thread
        kind = understood.detection.kind
        target = self._tickets.get(thread.ticket) if thread.ticket is not None else None
        if kind in AUTOMATIC_KINDS:
            return self._route_automatic(inbound, understood, target)
        if target is not None and thread.action in (ThreadAction.ATTACH, ThreadAction.REOPEN):
            return self._reply(inbound, understood, target)
        parent = target if thread.action is ThreadAction.NEW_LINKED else None
        ticket = self._open_ticket(inbound, understood, parent)
        return ticket, "created", thread.reason

    def _reply(
        self, inbound: Inbound, understood: _Understood, target: Ticket
    ) -> tuple[Ticket, str, str]:
        """A person's mail on an existing ticket: an agent's, a survey answer, or a reply."""
        thread, sender, parsed = understood.thread, understood.sender, understood.parsed
        new_text = understood.prepared.new_text
        target.updated_at = self.now
        self._event(
            target, inbound, "message.received", thread.reason, self._message_detail(understood)
        )
        workflows = self.context.workflows
        if sender.kind is SenderKind.AGENT and sender.agent is not None:
            agent = sender.agent
            if workflows is not None:
                self._later(
                    target,
                    lambda: workflows.agent_mail(self.session, target, agent, new_text, self.now),
                )
            return target, "appended", f"{thread.reason}; agent {agent.name}"
        answered = target.survey_sent_at is not None and target.survey_answered_at is None
        if answered and workflows is not None and parse_survey_reply(parsed.subject, new_text):
            self._later(
                target,
                lambda: workflows.survey_reply(
                    self.session, target, parsed.subject, new_text, self.now
                ),
            )
            return target, "appended", f"{thread.reason}; survey answer (ticket stays resolved)"
        if thread.action is ThreadAction.REOPEN:
            target.status = TicketStatus.OPEN
            self._event(target, inbound, "ticket.reopened", thread.reason)
            return target, "reopened", thread.reason
        if target.status == TicketStatus.WAITING:
            end_waiting(self.session, target, self.context.sla, self.now)
            self._event(
                target,
                inbound,
                "ticket.customer_replied",
                "the customer replied: no longer waiting on the customer",
            )
        return target, "appended", thread.reason

    def _route_automatic(
        self, inbound: Inbound, understood: _Understood, target: Ticket | None
    ) -> tuple[Ticket | None, str, str]:
        kind = understood.detection.kind
        evidence = "; ".join(understood.detection.reasons)
        detail = self._message_detail(understood)
        if target is not None and understood.thread.action in (
            ThreadAction.ATTACH,
            ThreadAction.REOPEN,
        ):
            reason = (
                f"{kind.value} ({evidence}); {understood.thread.reason}; ticket state unchanged"
            )
            self._event(target, inbound, f"message.{kind.value}", reason, detail)
            if understood.detection.bounce is not None:
                self._mark_undeliverable(target, inbound, understood)
            return target, "noted", reason
        reason = f"{kind.value} ({evidence}) that matches no ticket: no ticket opened"
        self._event(None, inbound, "inbound.not_ticketed", reason, detail)
        return None, "kept", reason

    def _open_ticket(
        self, inbound: Inbound, understood: _Understood, parent: Ticket | None
    ) -> Ticket:
        sender = understood.sender
        customer = (
            self._customers.get(sender.address) if sender.customer and sender.address else None
        )
        ticket_id, number = self._allocate_ticket()
        ticket = Ticket(
            id=ticket_id,
            number=number,
            status=TicketStatus.NEW,
            subject=understood.parsed.subject or "(no subject)",
            customer=customer,
            requester=sender.address,
            unknown_customer=customer is None,
            parent_ticket_id=parent.id if parent is not None else None,
            received_at=inbound.received_at,
            created_at=self.now,
            updated_at=self.now,
            origin=understood.detection.kind.value,
        )
        self.session.add(ticket)
        if sender.address:
            self._requesters.append(sender.address)
        self._tickets[ticket.number] = ticket
        self._participants[ticket.number] = {}
        who = (
            f"customer {customer.id} ({customer.plan})"
            if customer is not None
            else f"{sender.kind.value} sender {sender.address or '(no valid From address)'}"
        )
        reason = f"{understood.thread.reason}; requester is {who} ({sender.reason})"
        self._event(
            ticket,
            inbound,
            "ticket.created",
            reason,
            {
                "customer_id": customer.id if customer else None,
                "linked_to": parent.number if parent is not None else None,
            },
        )
        self._event(
            ticket,
            inbound,
            "message.received",
            understood.detection.reasons[0],
            self._message_detail(understood),
        )
        self._classify(ticket, inbound, understood, sender.customer)
        parsed = understood.parsed
        customer_core = sender.customer
        first = FirstMail(
            thread=Thread(parsed.message_id, parsed.references),
            content_language=parsed.content_language,
            new_text=understood.prepared.new_text,
            language=understood.prepared.language,
            may_auto_reply=understood.detection.may_auto_reply,
            from_agent=sender.kind is SenderKind.AGENT,
        )
        self._later(ticket, lambda: self._announce(ticket, customer_core, first))
        return ticket

    def _classify(
        self,
        ticket: Ticket,
        inbound: Inbound,
        understood: _Understood,
        customer: model.Customer | None,
    ) -> None:
        """Priority, intent and due times at intake (the 15-minute assignment target)."""
        prepared = understood.prepared
        assessment = assess(
            prepared.classification
            or self.context.rules.classifier.classify(prepared.parsed.subject, prepared.new_text),
            customer,
            inbound.received_at,
            self.context.sla,
        )
        found, deadlines = assessment.classification, assessment.deadlines
        ticket.priority = found.priority.value
        ticket.intent = found.intent.value
        ticket.needs_triage = found.needs_triage
        ticket.triage_reason = found.triage_reason
        ticket.triage_due = assessment.triage_due
        ticket.classified_at = self.now
        ticket.first_response_due = deadlines.first_response_due
        ticket.resolution_due = deadlines.resolution_due
        ticket.classification = assessment.classification_record()
        ticket.sla = sla_record(deadlines)
        workflows = self.context.workflows
        if found.priority is Priority.P0 and workflows:
            if not self._outages:  # once per batch; it runs after the flush: it sees every new P0
                self._later(ticket, lambda: workflows.detect_incidents(self.session, self.now))
            self._outages.append(ticket)
        seconds = (self.now - inbound.received_at).total_seconds()
        self._event(
            ticket,
            inbound,
            "ticket.classified",
            assessment.explain_priority(),
            {**ticket.classification, "seconds_after_receipt": seconds},
        )
        self._event(
            ticket,
            inbound,
            "ticket.sla",
            "; ".join(deadlines.explanation),
            {
                "sla_row": deadlines.sla_row,
                "calendar": deadlines.calendar_description,
                "first_response_due": deadlines.first_response_due.isoformat(),
                "resolution_due": deadlines.resolution_due.isoformat()
                if deadlines.resolution_due
                else None,
            },
        )
        if found.needs_triage and assessment.triage_due is not None:
            self._event(
                ticket,
                inbound,
                "ticket.triage_needed",
                f"{found.triage_reason}; Support Manager escalation due by "
                f"{assessment.triage_due.isoformat()}",
                {"triage_due": assessment.triage_due.isoformat()},
            )

    def _later(self, ticket: Ticket, action: Callable[[], object]) -> None:
        """Run ``action`` after the batch is flushed (the ticket has its id by then)."""
        self._followups.append((ticket, action))

    def _announce(self, ticket: Ticket, customer: model.Customer | None, first: FirstMail) -> None:
        notifier, workflows = self.context.notifier, self.context.workflows
        if notifier is not None:
            notify_new_ticket(notifier, self.session, ticket, customer, first, self.now)
        if workflows is not None:
            workflows.ticket_opened(self.session, ticket, first.new_text, self.now)

    def notify(self) -> None:
        """Run the follow-ups (mail, timers, workflows) once the batch has been flushed.

        All run in one savepoint; if one fails, they are redone one savepoint each, so the
        failing one is logged on its ticket and never undoes a ticket or the rest.
        """
        if not self._followups:
            return
        workflows = self.context.workflows
        if self._outages and workflows is not None:  # after every new ticket's timers
            outages = [ticket.id for ticket in self._outages]
            self._later(
                self._outages[-1],
                lambda: workflows.escalate_outages(self.session, outages, self.now),
            )
        try:
            with self.session.begin_nested(), staging(self.session), self.session.no_autoflush:
                if self.context.notifier is not None:
                    self.context.notifier.load_budgets(self.session, self._requesters, self.now)
                for _, action in self._followups:
                    action()
            return
        except (PermanentError, ValueError) as error:
            log.info("follow-ups of a batch failed (%s); retrying one by one", error)
        for ticket, action in self._followups:
            try:
                with (
                    self.session.begin_nested(),
                    staging(self.session),
                    self.session.no_autoflush,
                ):
                    action()
            except (PermanentError, ValueError) as error:
                log.warning("ticket #%s: follow-up failed: %s", ticket.number, error)
                repo.record_event(
                    self.session,
                    self.now,
                    "notify.failed",
                    f"{type(error).__name__}: {error}",
                    ticket_id=ticket.id,
                )

    def _store_message(
        self, inbound: Inbound, understood: _Understood, ticket: Ticket | None
    ) -> None:
        parsed = understood.parsed
        fields = message_fields(
            parsed,
            understood.sender.address,
            understood.prepared.fingerprint,
            understood.prepared.new_text,
            understood.prepared.quoted_text,
        )
        row = {
            "inbound_id": inbound.id,
            "ticket_id": None,
            "direction": "in",
            "created_at": self.now,
            "sender_kind": understood.sender.kind.value,
            **fields,
        }
        stage(self.session, MessageRecord, row, ticket)
        for attachment in parsed.attachments:
            stage_statement(
                self.session,
                insert_new_only(self.session, Blob),
                {"sha256": attachment.sha256, "size": attachment.size, "data": attachment.content},
            )
            stage_statement(
                self.session,
                _attachment_of_inbound(),
                {
                    "inbound_id": inbound.id,
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "size": attachment.size,
                    "sha256": attachment.sha256,
                },
            )
        if parsed.message_id:
            self._first_inbound.setdefault(
                parsed.message_id, (understood.prepared.fingerprint, ticket)
            )
            self._unknown_ids.discard(parsed.message_id)
            if ticket is not None:
                self._ticket_by_message_id.setdefault(parsed.message_id, ticket)

    def _add_participants(self, ticket: Ticket, understood: _Understood) -> None:
        known = self._participants_of(ticket)
        sender = understood.sender
        found: dict[str, str] = {}
        if sender.address:
            role = (
                "agent"
                if sender.kind is SenderKind.AGENT
                else ("requester" if sender.address == ticket.requester else "sender")
            )
            found[sender.address] = role
        for cc in understood.parsed.cc:
            normalized = normalize_address(cc.addr)
            if normalized and normalized not in self.context.support_addresses:
                found.setdefault(normalized, "cc")
        for address, role in found.items():
            if address not in known:
                known[address] = role
                stage(
                    self.session,
                    TicketParticipant,
                    {"ticket_id": None, "address": address, "role": role},
                    ticket,
                )

    def _mark_undeliverable(
        self, ticket: Ticket, inbound: Inbound, understood: _Understood
    ) -> None:
        bounce = understood.detection.bounce
        assert bounce is not None
        for failed in bounce.failed:
            address = normalize_address(failed.address)
            if address is None:
                continue
            row = self.session.get(UndeliverableAddress, address)
            if row is None:
                row = UndeliverableAddress(
                    address=address, permanent=failed.permanent, first_seen=self.now, bounces=0
                )
                self.session.add(row)
            row.permanent = bool(row.permanent) or failed.permanent
            row.bounces = (row.bounces or 0) + 1
            row.last_seen = self.now
            row.ticket_id = ticket.id
            row.inbound_id = inbound.id
            row.reason = "permanent failure" if failed.permanent else "temporary failure"

    def _message_detail(self, understood: _Understood) -> dict[str, object]:
        parsed = understood.parsed
        detail: dict[str, object] = {
            "message_id": parsed.message_id,
            "kind": understood.detection.kind.value,
            "sender": understood.sender.kind.value,
            "sender_reason": understood.sender.reason,
            "trust": understood.thread.trust.value,
            "body_source": parsed.body_source,
            "defects": len(parsed.defects),
        }
        bounce = understood.detection.bounce
        if bounce is not None:
            detail["failed_recipients"] = [
                {"address": f.address, "permanent": f.permanent} for f in bounce.failed
            ]
            detail["original_message_id"] = bounce.original_message_id
        if understood.sender.lookalike_of:
            detail["lookalike_of"] = understood.sender.lookalike_of
        return detail

    def _event(
        self,
        ticket: Ticket | None,
        inbound: Inbound,
        kind: str,
        reason: str,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        stage(
            self.session,
            Event,
            {
                "inbound_id": inbound.id,
                "at": self.now,
                "kind": kind,
                "reason": reason,
                "detail": dict(detail or {}),
                "ticket_id": None,
            },
            ticket,
        )

    def _allocate_ticket(self) -> tuple[int | None, int]:
        """(id, number) of a new ticket; on SQLite the id comes with the insert."""
        if self._postgres:
            return self.context.ticket_keys.take(self.session, self._undecided)
        if self._last_number is None:  # one writer at a time on SQLite: count in memory
            self._last_number = repo.next_ticket_number(self.session) - 1
        self._last_number += 1
        return None, self._last_number

    # -- looking up ----------------------------------------------------------------------

    def _preload(self, messages: Iterable[ParsedMessage]) -> None:
        ids: set[str] = set()
        senders: set[str] = set()
        for parsed in messages:
            ids.update(i for i in (parsed.message_id, *parsed.in_reply_to, *parsed.references) if i)
            address = normalize_address(parsed.sender.addr) if parsed.sender else None
            if address:
                senders.add(address)
        self._load_message_ids(ids)
        self._load_customers(senders)

    def _load_message_ids(self, ids: Iterable[str]) -> None:
        wanted = [
            i
            for i in dict.fromkeys(ids)
            if i not in self._ticket_by_message_id
            and i not in self._first_inbound
            and i not in self._unknown_ids
        ]
        if not wanted:
            return
        rows = self.session.execute(
            select(
                MessageRecord.message_id,
                MessageRecord.ticket_id,
                MessageRecord.direction,
                MessageRecord.content_hash,
            )
            .where(MessageRecord.message_id.in_(wanted))
            .order_by(MessageRecord.id)
        ).all()
        ticket_ids = {row.ticket_id for row in rows if row.ticket_id is not None}
        tickets = self._load_tickets(Ticket.id.in_(ticket_ids)) if ticket_ids else {}
        for message_id, ticket_id, direction, fingerprint in rows:
            if message_id is None:
                continue
            ticket = tickets.get(ticket_id) if ticket_id is not None else None
            if ticket is not None:
                self._ticket_by_message_id.setdefault(message_id, ticket)
            if direction == "in":
                self._first_inbound.setdefault(message_id, (fingerprint, ticket))
        self._unknown_ids.update(set(wanted) - {row.message_id for row in rows})

    def _load_tickets(self, condition: ColumnElement[bool]) -> dict[int, Ticket]:
        found = {t.id: t for t in self.session.scalars(select(Ticket).where(condition))}
        fresh = [t for t in found.values() if self._tickets.get(t.number) is None]
        for ticket in fresh:
            self._tickets[ticket.number] = ticket
            self._participants[ticket.number] = {}
        if fresh:
            rows = self.session.execute(
                select(
                    TicketParticipant.ticket_id, TicketParticipant.address, TicketParticipant.role
                ).where(TicketParticipant.ticket_id.in_([t.id for t in fresh]))
            ).all()
            number_of = {t.id: t.number for t in fresh}
            for ticket_id, address, role in rows:
                self._participants[number_of[ticket_id]][address] = role
        return {t.id: self._tickets[t.number] or t for t in found.values()}

    def _load_customers(self, addresses: Iterable[str]) -> None:
        wanted = [a for a in addresses if a not in self._customers]
        if not wanted:
            return
        rows = self.session.execute(
            select(CustomerAddress.address, Customer)
            .join(Customer, Customer.id == CustomerAddress.customer_id)
            .options(selectinload(Customer.addresses))
            .where(CustomerAddress.address.in_(wanted))
        ).all()
        found = {address: customer for address, customer in rows}
        for address in wanted:
            self._customers[address] = found.get(address)

    def customer_by_address(self, address: str) -> model.Customer | None:
        """The core view of the customer owning ``address`` (for sender identity)."""
        self._load_customers([address])
        row = self._customers.get(address)
        return repo.to_core_customer(row) if row is not None else None

    def tickets_by_message_ids(self, message_ids: Sequence[str]) -> Mapping[str, int]:
        """TicketLookup: ticket numbers of stored or just-staged messages with these ids."""
        self._load_message_ids(message_ids)
        return {
            mid: self._ticket_by_message_id[mid].number
            for mid in message_ids
            if mid in self._ticket_by_message_id
        }

    def ticket_info(self, number: int) -> TicketRef | None:
        """TicketLookup: status and participants of ticket ``number``."""
        if number not in self._tickets:
            self._load_tickets(Ticket.number == number)
            self._tickets.setdefault(number, None)
        ticket = self._tickets[number]
        if ticket is None:
            return None
        participants = set(self._participants_of(ticket))
        if ticket.customer is not None:
            participants.update(a.address for a in ticket.customer.addresses)
        return TicketRef(
            number, TicketStatus(ticket.status), frozenset(participants), ticket.resolved_at
        )

    def _participants_of(self, ticket: Ticket) -> dict[str, str]:
        return self._participants.setdefault(ticket.number, {})


@cache
def _attachment_of_inbound() -> Insert:
    """INSERT of an attachment row whose message is found by its inbound id (staged rows)."""
    messages = table_of(MessageRecord)
    return insert(table_of(AttachmentRecord)).values(
        message_pk=select(messages.c.id)
        .where(messages.c.inbound_id == bindparam("inbound_id"))
        .scalar_subquery()
    )


def message_fields(
    parsed: ParsedMessage, sender: str | None, fingerprint: str, new_text: str, quoted_text: str
) -> dict[str, object]:
    """The columns of a message row that come from its raw mail."""
    return {
        "message_id": parsed.message_id,
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "from_address": sender,
        "from_name": (parsed.sender.name if parsed.sender else "")[:320],
        "to": [[a.name, a.addr] for a in parsed.to],
        "cc": [[a.name, a.addr] for a in parsed.cc],
        "reply_to": [[a.name, a.addr] for a in parsed.reply_to],
        "subject": parsed.subject,
        "sent_at": parsed.date,
        "content_language": ",".join(parsed.content_language)[:64],
        "body_text": parsed.body_text,
        "body_source": parsed.body_source,
        "new_text": new_text,
        "quoted_text": quoted_text,
        "content_hash": fingerprint,
        "defects": list(parsed.defects),
    }


@dataclass(frozen=True)
class ReplaySelection:
    """Which stored raw messages to re-run; at least one criterion must be set."""

    everything: bool = False
    ticket_number: int | None = None
    message_id: str | None = None
    since: dt.datetime | None = None
    quarantined: bool = False

    def is_empty(self) -> bool:
        """True when no criterion was given."""
        return not (
            self.everything
            or self.ticket_number
            or self.message_id
            or self.since
            or self.quarantined
        )


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one stored message did (or, in a dry run, would do)."""

    inbound_id: int
    action: str  # an Outcome action, or updated, unchanged, failed
    detail: str = ""


def select_for_replay(session: Session, selection: ReplaySelection) -> list[int]:
    """The inbound ids a selection names, oldest first."""
    query = select(Inbound.id).order_by(Inbound.id)
    if selection.ticket_number is not None:
        query = (
            query.join(MessageRecord, MessageRecord.inbound_id == Inbound.id)
            .join(Ticket, Ticket.id == MessageRecord.ticket_id)
            .where(Ticket.number == selection.ticket_number)
        )
    if selection.message_id:
        query = query.where(Inbound.message_id == selection.message_id.strip().strip("<>"))
    if selection.since is not None:
        query = query.where(Inbound.received_at >= selection.since)
    if selection.quarantined:
        query = query.where(Inbound.status == InboundStatus.QUARANTINED)
    return list(session.scalars(query))


def replay(
    factory: sessionmaker[Session],
    context: ProcessingContext,
    inbound_ids: Sequence[int],
    *,
    dry_run: bool,
    batch_size: int = 250,
    progress: Progress | None = None,
) -> list[ReplayResult]:
    """Re-run processing from stored raw mail, idempotently.

    Messages not yet processed (pending, quarantined) go through the normal pipeline;
    processed ones are re-parsed and their stored fields brought up to date, keeping their
    ticket. A dry run does the same work and rolls it back, so its report is exact.
    """
    results: list[ReplayResult] = []
    for start in range(0, len(inbound_ids), batch_size):
        chunk = inbound_ids[start : start + batch_size]
        with transaction(factory, commit=not dry_run) as session:
            for inbound, raw in repo.load_with_raw(session, chunk):
                results.append(_replay_one(session, inbound, raw, context))
        if progress is not None:
            progress(len(chunk))
    return results


def _replay_one(
    session: Session, inbound: Inbound, raw: bytes, context: ProcessingContext
) -> ReplayResult:
    if inbound.status != InboundStatus.PROCESSED:
        outcome = process_one(session, inbound, raw, context)
        where = f"ticket #{outcome.ticket_number}" if outcome.ticket_number else ""
        return ReplayResult(
            inbound.id, outcome.action, "; ".join(filter(None, (where, outcome.reason)))
        )
    message = session.scalars(
        select(MessageRecord)
        .where(MessageRecord.inbound_id == inbound.id)
        .options(selectinload(MessageRecord.attachments))
    ).first()
    if message is None:
        return ReplayResult(inbound.id, "unchanged", inbound.kind_reason or "no message stored")
    try:
        parsed = parse_message(raw, context.rules.limits)
    except Exception as error:
        return ReplayResult(inbound.id, "failed", f"{type(error).__name__}: {error}")
    changed = _refresh(session, message, parsed)
    if not changed:
        return ReplayResult(inbound.id, "unchanged")
    repo.record_event(
        session,
        context.clock.now(),
        "message.replayed",
        f"re-parsed from raw mail; changed: {', '.join(changed)}",
        ticket_id=message.ticket_id,
        inbound_id=inbound.id,
        detail={"changed": changed},
    )
    return ReplayResult(inbound.id, "updated", ", ".join(changed))


def _refresh(session: Session, message: MessageRecord, parsed: ParsedMessage) -> list[str]:
    """Bring a stored message's parsed columns and attachments up to date; list what changed."""
    sender = normalize_address(parsed.sender.addr) if parsed.sender else None
    fields = message_fields(parsed, sender, content_hash(parsed), *reply_text(parsed))
    changed = [name for name, value in fields.items() if getattr(message, name) != value]
    for name in changed:
        setattr(message, name, fields[name])
    wanted = [(a.filename, a.content_type, a.size, a.sha256) for a in parsed.attachments]
    have = [(a.filename, a.content_type, a.size, a.sha256) for a in message.attachments]
    if wanted != have:
        changed.append("attachments")
        message.attachments.clear()
        for attachment in parsed.attachments:
            stage_statement(
                session,
                insert_new_only(session, Blob),
                {"sha256": attachment.sha256, "size": attachment.size, "data": attachment.content},
            )
            message.attachments.append(
                AttachmentRecord(
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size=attachment.size,
                    sha256=attachment.sha256,
                )
            )
    return changed

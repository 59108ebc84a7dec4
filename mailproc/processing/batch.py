"""One batch of claimed mail: decided in memory against what it refers to, then staged.

The batch routes each message (duplicate, automatic mail, a reply, a new ticket), changes the
tickets in memory and stages the rows; the caller flushes, then runs the follow-ups.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from mailproc.core import model
from mailproc.core.assess import assess
from mailproc.core.detect import AUTOMATIC_KINDS, for_known_sender, promoted
from mailproc.core.events import EventKind
from mailproc.core.identity import SenderKind, identify_sender
from mailproc.core.model import Address, InboundStatus, Priority, TicketStatus
from mailproc.core.survey import parse_survey_reply
from mailproc.core.ticket_threading import ThreadAction, decide_thread
from mailproc.core.understand import Prepared
from mailproc.processing.assessed import record_assessment, record_history_assessment
from mailproc.processing.context import Outcome, OutcomeAction, ProcessingContext, quarantine
from mailproc.processing.followups import (
    AlertReply,
    AnnounceTicket,
    ApplyAgentMail,
    ApplyKbMail,
    DetectIncidents,
    EscalateOutages,
    FollowUp,
    HeldForReview,
    RecordSurveyReply,
    RefuseAgentMail,
    RefuseCommands,
    run_followups,
)
from mailproc.processing.lookup import BatchLookup
from mailproc.processing.noted import Routed, add_history, route_automatic
from mailproc.processing.parsepool import PrepareResult
from mailproc.processing.review import hold, is_customer_of, refused_command_lines, review_reason
from mailproc.processing.rows import (
    Understood,
    attachment_refs,
    cc_addresses,
    message_detail,
    stage_message,
    stage_participants,
)
from mailproc.store import repo
from mailproc.store.models import Inbound, Ticket
from mailproc.store.repo import record_event
from mailproc.tickets.ops import end_waiting
from mailproc.workflows.agent_mail import AgentMail
from mailproc.workflows.mail import Thread
from mailproc.workflows.new_ticket import FirstMail
from mailproc.workflows.replies import CustomerReply

log = logging.getLogger(__name__)

# What deciding a mail may change on its inbound row. The ORM groups rows whose changed columns
# are the same into one executemany; naming all of them for every row makes it one per batch
# (processed, held and quarantined mail alternate in arrival order).
_OUTCOME_COLUMNS = (
    "status",
    "attempts",
    "last_error",
    "kind",
    "kind_reason",
    "processed_at",
    "quarantined_at",
    "message_id_conflict",
)


class Batch:
    """One batch's view of the tickets it touches: preloaded, changed in memory, then flushed."""

    def __init__(self, session: Session, context: ProcessingContext) -> None:
        self.session = session
        self.context = context
        self.now = context.clock.now()
        self.lookup = BatchLookup(session)
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._last_number: int | None = None
        self._undecided = 0
        self._outages: list[Ticket] = []  # new P0 tickets: escalated at once, together
        self._requesters: list[str] = []  # of the tickets opened: their auto-reply budgets
        self._writers: set[str] = set()  # senders of a person's mail: not undeliverable (now)
        self._followups: list[FollowUp] = []

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
            self.lookup.preload(p.parsed for p in prepared.values())
            self._undecided = len(prepared)
            for inbound, _ in claimed:
                if inbound.id not in outcomes:
                    outcomes[inbound.id] = self._handle(inbound, prepared[inbound.id])
                    self._undecided -= 1
        for inbound, _ in claimed:  # one UPDATE for the batch, not one per change of outcome
            for name in _OUTCOME_COLUMNS:
                flag_modified(inbound, name)
        return [outcomes[inbound.id] for inbound, _ in claimed]

    def notify(self) -> None:
        """Run the follow-ups (mail, timers, workflows) once the batch has been flushed."""
        repo.clear_undeliverable(self.session, self._writers)
        if not self._followups:
            return
        desk = self.context.desk
        if self._outages and desk is not None:  # after every new ticket's timers
            outages = [ticket.id for ticket in self._outages]
            self._followups.append(EscalateOutages(desk, self._outages[-1], outages))
        run_followups(
            self.session, self._followups, self.now, self.context.notifier, self._requesters
        )

    def _quarantine(self, inbound: Inbound, error: Exception) -> Outcome:
        log.debug("inbound %s traceback", inbound.id, exc_info=error)
        return quarantine(self.session, inbound, f"{type(error).__name__}: {error}", self.now)

    def _handle(self, inbound: Inbound, prepared: Prepared) -> Outcome:
        parsed = prepared.parsed
        earlier = self.lookup.first_inbound(parsed.message_id) if parsed.message_id else None
        if earlier is not None and earlier[0] == prepared.fingerprint:
            return self._duplicate(inbound, earlier[1])
        try:
            understood = self._understand(inbound, prepared)
        except Exception as error:  # a bug meets odd input: keep the mail, report, go on
            return self._quarantine(inbound, error)
        if earlier is not None:
            inbound.message_id_conflict = True
            record_event(
                self.session,
                self.now,
                EventKind.INBOUND_MESSAGE_ID_CONFLICT,
                f"Message-ID {parsed.message_id} was seen before with different content; "
                "kept as its own message",
                ticket=earlier[1],
                inbound_id=inbound.id,
            )
        return self._apply(inbound, understood)

    def _understand(self, inbound: Inbound, prepared: Prepared) -> Understood:
        parsed = prepared.parsed
        sender = identify_sender(parsed, self.context.identity, self.lookup.customer_by_address)
        detection = prepared.detection
        if sender.kind is SenderKind.CUSTOMER:
            detection = for_known_sender(detection)
        if inbound.promoted_at is not None:
            detection = promoted(detection)
        thread = decide_thread(
            parsed,
            inbound.envelope_to,
            sender,
            self.lookup,
            self.context.threading,
            inbound.received_at if inbound.imported_at is not None else self.now,
            detection.bounce,
        )
        return Understood(prepared, sender, thread, detection)

    def _duplicate(self, inbound: Inbound, ticket: Ticket | None) -> Outcome:
        reason = "same Message-ID and content as a message already stored: a repeated delivery"
        inbound.status = InboundStatus.PROCESSED
        inbound.processed_at = self.now
        inbound.kind = "duplicate"
        inbound.kind_reason = reason
        record_event(
            self.session,
            self.now,
            EventKind.INBOUND_DUPLICATE,
            reason,
            ticket=ticket,
            inbound_id=inbound.id,
        )
        number = ticket.number if ticket else None
        return Outcome(inbound.id, OutcomeAction.DUPLICATE, number, reason)

    # -- writing -------------------------------------------------------------------------

    def _apply(self, inbound: Inbound, understood: Understood) -> Outcome:
        detection = understood.detection
        inbound.kind = detection.kind.value
        inbound.kind_reason = "; ".join(detection.reasons)[:2000]
        history = inbound.imported_at is not None
        held = None if history else self._hold(inbound, understood)
        if held is not None:
            return held
        ticket, action, reason = self._route(inbound, understood)
        if ticket is not None and understood.prepared.reduced:
            record_event(
                self.session,
                self.now,
                EventKind.MESSAGE_REDUCED,
                understood.parsed.defects[-1],
                ticket=ticket,
                inbound_id=inbound.id,
            )
        stage_message(self.session, inbound, understood, ticket, self.now)
        message_id = understood.parsed.message_id
        if message_id:
            self.lookup.add_message(message_id, understood.prepared.fingerprint, ticket)
        if detection.kind not in AUTOMATIC_KINDS and understood.sender.address and not history:
            self._writers.add(understood.sender.address)
        if (
            ticket is not None
            and detection.kind not in AUTOMATIC_KINDS
            and action is not OutcomeAction.NOTED
        ):
            known = self.lookup.participants_of(ticket)
            support = self.context.support_addresses
            stage_participants(self.session, ticket, understood, known, support)
        inbound.status = InboundStatus.PROCESSED
        inbound.processed_at = self.now
        inbound.last_error = None
        return Outcome(inbound.id, action, ticket.number if ticket else None, reason)

    def _hold(self, inbound: Inbound, understood: Understood) -> Outcome | None:
        """A person's mail by reply token from a stranger to the ticket: held for review."""
        number = understood.thread.ticket
        target = self.lookup.ticket(number) if number is not None else None
        if target is None or understood.detection.kind in AUTOMATIC_KINDS:
            return None
        participants = self.lookup.participants_of(target)
        reason = review_reason(self.session, inbound, understood, target, participants)
        if reason is None:
            return None
        hold(self.session, inbound, target, reason, self.now)
        if self.context.desk is not None:
            text, sender = understood.prepared.read_text, understood.sender.address
            self._followups.append(
                HeldForReview(self.context.desk, target, sender, text, inbound.id)
            )
        return Outcome(inbound.id, OutcomeAction.HELD, target.number, reason)

    def _route(self, inbound: Inbound, understood: Understood) -> Routed:
        thread = understood.thread
        kind = understood.detection.kind
        target = self.lookup.ticket(thread.ticket) if thread.ticket is not None else None
        if kind in AUTOMATIC_KINDS:
            return route_automatic(self.session, inbound, understood, target, self.now)
        if inbound.imported_at is not None:
            return self._route_history(inbound, understood, target)
        kb_mail = self._kb_mail(inbound, understood)
        if kb_mail is not None:
            self._followups.append(kb_mail)
            reason = f"a #kb command mail from {kb_mail.agent.name}: no ticket"
            record_event(
                self.session,
                self.now,
                EventKind.MESSAGE_RECEIVED,
                reason,
                inbound_id=inbound.id,
                detail=message_detail(understood),
            )
            return None, OutcomeAction.KEPT, reason
        if target is not None and thread.action in (ThreadAction.ATTACH, ThreadAction.REOPEN):
            return self._reply(inbound, understood, target)
        parent = target if thread.action is ThreadAction.NEW_LINKED else None
        ticket = self._open_ticket(inbound, understood, parent)
        return ticket, OutcomeAction.CREATED, thread.reason

    def _kb_mail(self, inbound: Inbound, understood: Understood) -> ApplyKbMail | None:
        """A staff member's mail to the knowledge-base address (§9), if this is one."""
        sender, parsed, desk = understood.sender, understood.parsed, self.context.desk
        if desk is None or sender.kind is not SenderKind.AGENT or sender.agent is None:
            return None
        address = desk.context.settings.kb.address
        written = {a.addr.lower() for a in (*parsed.to, *parsed.cc)}
        if address not in written | {a.lower() for a in inbound.envelope_to or ()}:
            return None
        new_text = understood.prepared.read_text
        return ApplyKbMail(desk, None, sender.agent, parsed.subject, new_text)

    def _reply(self, inbound: Inbound, understood: Understood, target: Ticket) -> Routed:
        """A person's mail on an existing ticket: an agent's, a survey answer, or a reply."""
        thread, sender, parsed = understood.thread, understood.sender, understood.parsed
        new_text = understood.prepared.read_text  # bounded: no huge text is scanned here
        desk = self.context.desk
        # a customer's "#..." lines are plain text; anyone else's are refused (an agent's address
        # while agents cannot be authenticated is told so below, with what to configure)
        unauthenticated = sender.unauthenticated_agent is not None
        lines = () if unauthenticated else refused_command_lines(target, sender, new_text)
        if lines:
            if desk is not None and sender.address:
                to = Address(parsed.from_[0].name if parsed.from_ else "", sender.address)
                self._followups.append(RefuseCommands(desk, target, to, lines, inbound.id))
            reason = f"{thread.reason}; command lines from a non-agent: refused, not added"
            return target, OutcomeAction.NOTED, reason
        target.updated_at = self.now
        record_event(
            self.session,
            self.now,
            EventKind.MESSAGE_RECEIVED,
            thread.reason,
            ticket=target,
            inbound_id=inbound.id,
            detail=message_detail(understood),
        )
        if sender.kind is SenderKind.AGENT and sender.agent is not None:
            agent = sender.agent
            if desk is not None:
                mail = AgentMail(
                    inbound.id, new_text, understood.prepared.quoted_text, attachment_refs(parsed)
                )
                self._followups.append(ApplyAgentMail(desk, target, agent, mail))
            return target, OutcomeAction.APPENDED, f"{thread.reason}; agent {agent.name}"
        claimed = sender.unauthenticated_agent
        if claimed is not None:  # an agent's address, but agents cannot be authenticated yet
            if desk is not None:
                mail = AgentMail(inbound.id, new_text)
                self._followups.append(RefuseAgentMail(desk, target, claimed, mail))
            return target, OutcomeAction.APPENDED, f"{thread.reason}; {sender.reason}"
        answered = target.survey_sent_at is not None and target.survey_answered_at is None
        if answered and desk is not None and parse_survey_reply(parsed.subject, new_text):
            if not is_customer_of(target, sender):  # only the ticket's customer rates it
                reason = f"{thread.reason}; a survey answer not from the ticket's customer: ignored"
                return target, OutcomeAction.APPENDED, reason
            self._followups.append(RecordSurveyReply(desk, target, parsed.subject, new_text))
            reason = f"{thread.reason}; survey answer (ticket stays resolved)"
            return target, OutcomeAction.APPENDED, reason
        reopened = thread.action is ThreadAction.REOPEN
        if desk is not None:
            reply = CustomerReply(inbound.id, new_text, reopened, attachment_refs(parsed))
            self._followups.append(AlertReply(desk, target, reply))
        if reopened:
            target.status = TicketStatus.OPEN
            record_event(
                self.session,
                self.now,
                EventKind.TICKET_REOPENED,
                thread.reason,
                ticket=target,
                inbound_id=inbound.id,
            )
            return target, OutcomeAction.REOPENED, thread.reason
        if target.status == TicketStatus.WAITING:
            end_waiting(self.session, target, self.context.sla, self.now)
            record_event(
                self.session,
                self.now,
                EventKind.TICKET_CUSTOMER_REPLIED,
                "the customer replied: no longer waiting on the customer",
                ticket=target,
                inbound_id=inbound.id,
            )
        return target, OutcomeAction.APPENDED, thread.reason

    def _route_history(
        self, inbound: Inbound, understood: Understood, target: Ticket | None
    ) -> Routed:
        """Old mail imported as history: threaded at its own time and stored; a ticket it
        belongs to keeps its state, else it opens one already handled. Nothing is sent."""
        thread = understood.thread
        if target is not None and thread.action in (ThreadAction.ATTACH, ThreadAction.REOPEN):
            return add_history(self.session, inbound, understood, target, self.now)
        parent = target if thread.action is ThreadAction.NEW_LINKED else None
        ticket = self._open_ticket(inbound, understood, parent)
        return ticket, OutcomeAction.CREATED, f"{thread.reason}; history import: already handled"

    def _open_ticket(
        self, inbound: Inbound, understood: Understood, parent: Ticket | None
    ) -> Ticket:
        """A new ticket; a history import's is closed at its mail's time, and announced to
        no one; a promoted mail's is timed from its promotion."""
        history = inbound.imported_at
        sender = understood.sender
        customer = (
            self.lookup.customer(sender.address) if sender.customer and sender.address else None
        )
        ticket_id, number = self._allocate_ticket()
        parsed, notifier = understood.parsed, self.context.notifier
        choice = (  # the language the ticket is answered in (§5.4)
            notifier.locale(sender.customer, parsed.content_language, understood.prepared.language)
            if notifier is not None and history is None
            else None
        )
        ticket = Ticket(
            id=ticket_id,
            number=number,
            status=TicketStatus.CLOSED if history else TicketStatus.NEW,
            subject=parsed.subject or "(no subject)",
            customer=customer,
            requester=sender.address,
            unknown_customer=customer is None,
            parent_ticket_id=parent.id if parent is not None else None,
            received_at=inbound.promoted_at or inbound.received_at,
            resolved_at=inbound.received_at if history else None,
            closed_at=inbound.received_at if history else None,
            imported_at=history,
            created_at=self.now,
            updated_at=self.now,
            origin=understood.detection.kind.value,
            locale=choice.locale if choice is not None else None,
            translation_requested=choice is not None and choice.translation_requested,
        )
        self.session.add(ticket)
        if sender.address and history is None:
            self._requesters.append(sender.address)
        self.lookup.add_ticket(ticket)
        who = (
            f"customer {customer.id} ({customer.plan})"
            if customer is not None
            else f"{sender.kind.value} sender {sender.address or '(no valid From address)'}"
        )
        reason = f"{understood.thread.reason}; requester is {who} ({sender.reason})"
        record_event(
            self.session,
            self.now,
            EventKind.TICKET_CREATED,
            reason,
            ticket=ticket,
            inbound_id=inbound.id,
            detail={
                "customer_id": customer.id if customer else None,
                "linked_to": parent.number if parent is not None else None,
            },
        )
        record_event(
            self.session,
            self.now,
            EventKind.MESSAGE_RECEIVED,
            understood.detection.reasons[0],
            ticket=ticket,
            inbound_id=inbound.id,
            detail=message_detail(understood),
        )
        self._classify(ticket, inbound, understood, sender.customer)
        if notifier is None or choice is None:  # follow-ups off, or a history import
            return ticket
        first = FirstMail(
            thread=Thread(parsed.message_id, parsed.references),
            reply_locale=choice,
            new_text=understood.prepared.read_text,
            may_auto_reply=understood.detection.may_auto_reply,
            from_agent=sender.kind is SenderKind.AGENT,
            cc=cc_addresses(parsed.cc, self.context.support_addresses),
            attachments=attachment_refs(parsed),
        )
        announce = AnnounceTicket(ticket, sender.customer, first, notifier, self.context.desk)
        self._followups.append(announce)
        return ticket

    def _classify(
        self,
        ticket: Ticket,
        inbound: Inbound,
        understood: Understood,
        customer: model.Customer | None,
    ) -> None:
        """Priority, intent and due times at intake (the 15-minute assignment target)."""
        prepared = understood.prepared
        classifier = self.context.rules.classifier
        classification = prepared.classification or classifier.classify(
            prepared.parsed.subject, prepared.read_text
        )
        if understood.detection.borderline:  # e.g. out-of-office wording alone: a person reviews
            reason = "; ".join(understood.detection.reasons)
            classification = classification.flagged(reason, classifier.triage_within)
        assessment = assess(classification, customer, ticket.received_at, self.context.sla)
        if ticket.imported_at is not None:
            record_history_assessment(self.session, ticket, inbound.id, assessment, self.now)
            return
        found = record_assessment(self.session, ticket, inbound.id, assessment, self.now)
        desk = self.context.desk
        if found.priority is Priority.P0 and desk is not None:
            if not self._outages:  # once per batch; it runs after the flush: it sees every new P0
                self._followups.append(DetectIncidents(desk, ticket))
            self._outages.append(ticket)

    def _allocate_ticket(self) -> tuple[int | None, int]:
        """(id, number) of a new ticket; on SQLite the id comes with the insert."""
        if self._postgres:
            return self.context.ticket_keys.take(self.session, self._undecided)
        if self._last_number is None:  # one writer at a time on SQLite: count in memory
            self._last_number = repo.next_ticket_number(self.session) - 1
        self._last_number += 1
        return None, self._last_number

"""The worker: turn pending raw mail into parsed messages and tickets; quarantine and replay.

One transaction per batch of claimed rows and one savepoint per message: a message that
fails is quarantined with its error while the rest of the batch commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import exc, select
from sqlalchemy.orm import Session, sessionmaker

from mailproc.clock import Clock
from mailproc.core.addresses import normalize_address
from mailproc.core.limits import IntakeLimits
from mailproc.core.model import InboundStatus, ParsedMessage, TicketStatus
from mailproc.core.parse import parse_message
from mailproc.intake import store_blob
from mailproc.store import repo
from mailproc.store.db import is_transient, transaction
from mailproc.store.models import AttachmentRecord, Inbound, MessageRecord, Ticket

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ProcessingContext:
    """What the worker needs besides the database: limits, our own addresses, the clock."""

    limits: IntakeLimits
    support_addresses: frozenset[str]
    clock: Clock


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one inbound message did."""

    inbound_id: int
    action: str  # created, appended, reopened, duplicate, quarantined
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
    batch_size: int = 100,
    progress: Progress | None = None,
) -> ProcessSummary:
    """Process every pending inbound message; safe to run in several processes at once."""
    summary = ProcessSummary()
    while True:
        with transaction(factory) as session:
            claimed = repo.claim_pending(session, batch_size)
            for inbound, raw in claimed:
                summary.outcomes.append(process_safely(session, inbound, raw, context))
        if progress is not None and claimed:
            progress(len(claimed))
        if len(claimed) < batch_size:
            return summary


def process_safely(
    session: Session, inbound: Inbound, raw: bytes, context: ProcessingContext
) -> Outcome:
    """Process one message in a savepoint; on failure quarantine it with the reason.

    Transient database errors are re-raised so the whole batch is retried later.
    """
    inbound.attempts += 1
    try:
        with session.begin_nested():
            return _process(session, inbound, raw, context)
    except exc.SQLAlchemyError as error:
        if is_transient(error):
            raise
        reason = f"database refused the message: {type(error).__name__}: {error.orig}"
    except Exception as error:  # anything else is about this message: quarantine it
        reason = f"{type(error).__name__}: {error}"
        log.warning("inbound %s quarantined: %s", inbound.id, reason)
        log.debug("inbound %s traceback", inbound.id, exc_info=True)
    return quarantine(session, inbound, reason, context.clock.now())


def quarantine(session: Session, inbound: Inbound, reason: str, now: dt.datetime) -> Outcome:
    """Set a message aside with its reason; it is kept and can be released or replayed."""
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


def content_hash(parsed: ParsedMessage) -> str:
    """Fingerprint of what a reader sees: sender, subject and body text."""
    sender = parsed.sender.addr.lower() if parsed.sender else ""
    text = "\x00".join((sender, parsed.subject, " ".join(parsed.body_text.split())))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _process(session: Session, inbound: Inbound, raw: bytes, context: ProcessingContext) -> Outcome:
    now = context.clock.now()
    parsed = parse_message(raw, context.limits)
    fingerprint = content_hash(parsed)
    if parsed.message_id:
        earlier = repo.message_by_message_id(session, parsed.message_id)
        if earlier is not None and earlier.content_hash == fingerprint:
            return _mark_duplicate(session, inbound, earlier, now)
        if earlier is not None:
            inbound.message_id_conflict = True
            repo.record_event(
                session,
                now,
                "inbound.message_id_conflict",
                f"Message-ID {parsed.message_id} was seen before with different content; "
                "kept as its own message",
                ticket_id=earlier.ticket_id,
                inbound_id=inbound.id,
                detail={"earlier_message": earlier.id},
            )
    sender = normalize_address(parsed.sender.addr) if parsed.sender else None
    ticket, action, reason = _route(session, inbound, parsed, sender, now)
    message = _store_message(session, inbound, parsed, ticket, sender, fingerprint, now)
    _add_participants(session, ticket, parsed, sender, context.support_addresses)
    repo.record_event(
        session,
        now,
        "message.received",
        reason,
        ticket_id=ticket.id,
        inbound_id=inbound.id,
        detail={
            "message": message.id,
            "message_id": parsed.message_id,
            "body_source": parsed.body_source,
            "defects": len(parsed.defects),
        },
    )
    inbound.status = InboundStatus.PROCESSED
    inbound.processed_at = now
    inbound.last_error = None
    return Outcome(inbound.id, action, ticket.number, reason)


def _mark_duplicate(
    session: Session, inbound: Inbound, earlier: MessageRecord, now: dt.datetime
) -> Outcome:
    reason = f"same Message-ID and content as message {earlier.id}: a repeated delivery"
    inbound.status = InboundStatus.PROCESSED
    inbound.processed_at = now
    inbound.kind = "duplicate"
    inbound.kind_reason = reason
    repo.record_event(
        session,
        now,
        "inbound.duplicate",
        reason,
        ticket_id=earlier.ticket_id,
        inbound_id=inbound.id,
    )
    ticket = session.get(Ticket, earlier.ticket_id) if earlier.ticket_id else None
    return Outcome(inbound.id, "duplicate", ticket.number if ticket else None, reason)


def _route(
    session: Session,
    inbound: Inbound,
    parsed: ParsedMessage,
    sender: str | None,
    now: dt.datetime,
) -> tuple[Ticket, str, str]:
    """Find the ticket a message belongs to by its reply headers, or open a new one."""
    matches = repo.tickets_by_message_ids(session, (*parsed.in_reply_to, *parsed.references))
    for message_id in (*parsed.in_reply_to, *reversed(parsed.references)):
        if message_id in matches:
            ticket = session.get(Ticket, matches[message_id])
            assert ticket is not None
            ticket.updated_at = now
            reason = f"In-Reply-To/References names {message_id}, a message of this ticket"
            if ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                ticket.status = TicketStatus.OPEN
                repo.record_event(
                    session,
                    now,
                    "ticket.reopened",
                    "the customer replied after resolution",
                    ticket_id=ticket.id,
                    inbound_id=inbound.id,
                )
                return ticket, "reopened", reason
            return ticket, "appended", reason
    return _open_ticket(session, inbound, parsed, sender, now)


def _open_ticket(
    session: Session,
    inbound: Inbound,
    parsed: ParsedMessage,
    sender: str | None,
    now: dt.datetime,
) -> tuple[Ticket, str, str]:
    customer = repo.customer_by_address(session, sender)
    ticket = Ticket(
        number=repo.next_ticket_number(session),
        status=TicketStatus.NEW,
        subject=parsed.subject or "(no subject)",
        customer=customer,
        requester=sender,
        unknown_customer=customer is None,
        received_at=inbound.received_at,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    reason = "no reply header matched a known message: new ticket"
    who = (
        f"customer {customer.id} ({customer.plan})"
        if customer
        else f"unknown customer ({sender or 'no valid From address'})"
    )
    repo.record_event(
        session,
        now,
        "ticket.created",
        f"{reason}; requester is {who}",
        ticket_id=ticket.id,
        inbound_id=inbound.id,
        detail={"number": ticket.number, "customer_id": customer.id if customer else None},
    )
    return ticket, "created", reason


def _store_message(
    session: Session,
    inbound: Inbound,
    parsed: ParsedMessage,
    ticket: Ticket,
    sender: str | None,
    fingerprint: str,
    now: dt.datetime,
) -> MessageRecord:
    message = MessageRecord(
        inbound_id=inbound.id, ticket_id=ticket.id, direction="in", created_at=now
    )
    apply_parsed(session, message, parsed, sender, fingerprint)
    session.add(message)
    session.flush()
    return message


def apply_parsed(
    session: Session,
    message: MessageRecord,
    parsed: ParsedMessage,
    sender: str | None,
    fingerprint: str,
) -> list[str]:
    """Copy parsed fields onto a message row; return the names of the fields that changed."""
    fields = {
        "message_id": parsed.message_id,
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "from_address": sender,
        "from_name": parsed.sender.name if parsed.sender else "",
        "to": [[a.name, a.addr] for a in parsed.to],
        "cc": [[a.name, a.addr] for a in parsed.cc],
        "reply_to": [[a.name, a.addr] for a in parsed.reply_to],
        "subject": parsed.subject,
        "sent_at": parsed.date,
        "content_language": ",".join(parsed.content_language),
        "body_text": parsed.body_text,
        "body_source": parsed.body_source,
        "new_text": parsed.body_text,
        "quoted_text": "",
        "content_hash": fingerprint,
        "defects": list(parsed.defects),
    }
    changed = [name for name, value in fields.items() if getattr(message, name) != value]
    for name in changed:
        setattr(message, name, fields[name])
    wanted = [(a.filename, a.content_type, a.size, a.sha256) for a in parsed.attachments]
    have = [(a.filename, a.content_type, a.size, a.sha256) for a in message.attachments]
    if wanted != have:
        changed.append("attachments")
        message.attachments.clear()
        for attachment in parsed.attachments:
            store_blob(session, attachment.content, attachment.sha256)
            message.attachments.append(
                AttachmentRecord(
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    size=attachment.size,
                    sha256=attachment.sha256,
                )
            )
    return changed


def _add_participants(
    session: Session,
    ticket: Ticket,
    parsed: ParsedMessage,
    sender: str | None,
    support_addresses: frozenset[str],
) -> None:
    found: dict[str, str] = {}
    if sender:
        found[sender] = "requester" if sender == ticket.requester else "sender"
    for address in parsed.cc:
        normalized = normalize_address(address.addr)
        if normalized and normalized not in support_addresses:
            found.setdefault(normalized, "cc")
    repo.add_participants(session, ticket.id, found)


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
    action: str  # created, appended, reopened, duplicate, quarantined, updated, unchanged, failed
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
    batch_size: int = 100,
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
        outcome = process_safely(session, inbound, raw, context)
        where = f"ticket #{outcome.ticket_number}" if outcome.ticket_number else ""
        return ReplayResult(
            inbound.id, outcome.action, "; ".join(filter(None, (where, outcome.reason)))
        )
    message = session.scalars(
        select(MessageRecord).where(MessageRecord.inbound_id == inbound.id)
    ).first()
    if message is None:
        return ReplayResult(inbound.id, "unchanged", inbound.kind_reason or "no message stored")
    try:
        parsed = parse_message(raw, context.limits)
    except Exception as error:
        return ReplayResult(inbound.id, "failed", f"{type(error).__name__}: {error}")
    sender = normalize_address(parsed.sender.addr) if parsed.sender else None
    changed = apply_parsed(session, message, parsed, sender, content_hash(parsed))
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

"""Replay: re-run processing from the stored raw mail, idempotently (a dry run rolls back)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailproc.core.addresses import normalize_address
from mailproc.core.events import EventKind
from mailproc.core.model import InboundStatus, ParsedMessage
from mailproc.core.parse import parse_message
from mailproc.core.understand import content_hash, reply_text
from mailproc.processing.context import ProcessingContext
from mailproc.processing.rows import message_fields
from mailproc.processing.worker import Progress, process_one
from mailproc.store import repo
from mailproc.store.db import transaction
from mailproc.store.models import AttachmentRecord, Blob, Inbound, MessageRecord, Ticket
from mailproc.store.staged import insert_new_only, stage_statement


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
        EventKind.MESSAGE_REPLAYED,
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

"""The rows one inbound message leaves: its message record and attachments, the ticket's new
participants, undeliverable addresses and the events; staged to be written with the batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Insert, bindparam, insert, select
from sqlalchemy.orm import Session

from mailproc.core.addresses import normalize_address
from mailproc.core.detect import Detection
from mailproc.core.identity import SenderIdentity, SenderKind
from mailproc.core.model import Address, ParsedMessage
from mailproc.core.ticket_threading import ThreadDecision
from mailproc.core.understand import Prepared
from mailproc.outbound.compose import AttachmentRef
from mailproc.store.models import (
    AttachmentRecord,
    Blob,
    Inbound,
    MessageRecord,
    Ticket,
    TicketParticipant,
    UndeliverableAddress,
)
from mailproc.store.staged import insert_new_only, stage, stage_statement, table_of


@dataclass(frozen=True)
class Understood:
    """Everything decided about one message before anything is written."""

    prepared: Prepared
    sender: SenderIdentity
    thread: ThreadDecision
    detection: Detection  # the detector's verdict, revised once the sender is known

    @property
    def parsed(self) -> ParsedMessage:
        """The parsed mail."""
        return self.prepared.parsed


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


@cache
def _attachment_of_inbound() -> Insert:
    """INSERT of an attachment row whose message is found by its inbound id (staged rows)."""
    messages = table_of(MessageRecord)
    return insert(table_of(AttachmentRecord)).values(
        message_pk=select(messages.c.id)
        .where(messages.c.inbound_id == bindparam("inbound_id"))
        .scalar_subquery()
    )


def stage_message(
    session: Session,
    inbound: Inbound,
    understood: Understood,
    ticket: Ticket | None,
    now: dt.datetime,
) -> None:
    """The inbound message record and its attachments (bytes stored once, by hash)."""
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
        "created_at": now,
        "sender_kind": understood.sender.kind.value,
        **fields,
    }
    stage(session, MessageRecord, row, ticket)
    for attachment in parsed.attachments:
        stage_statement(
            session,
            insert_new_only(session, Blob),
            {"sha256": attachment.sha256, "size": attachment.size, "data": attachment.content},
        )
        stage_statement(
            session,
            _attachment_of_inbound(),
            {
                "inbound_id": inbound.id,
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "sha256": attachment.sha256,
            },
        )


def attachment_refs(parsed: ParsedMessage) -> tuple[AttachmentRef, ...]:
    """The mail's attachments as stored (by hash), to send on with our mail."""
    return tuple(
        AttachmentRef(a.sha256, a.filename, a.content_type, a.size) for a in parsed.attachments
    )


def cc_addresses(cc: Sequence[Address], support_addresses: frozenset[str]) -> tuple[str, ...]:
    """A mail's Cc addresses that become participants: valid, and not our own."""
    found = (normalize_address(address.addr) for address in cc)
    return tuple(dict.fromkeys(a for a in found if a and a not in support_addresses))


def stage_participants(
    session: Session,
    ticket: Ticket,
    understood: Understood,
    known: dict[str, str],
    support_addresses: frozenset[str],
) -> None:
    """The sender and Cc addresses the ticket did not know (``known`` is updated)."""
    sender = understood.sender
    found: dict[str, str] = {}
    if sender.address:
        role = (
            "agent"
            if sender.kind is SenderKind.AGENT
            else ("requester" if sender.address == ticket.requester else "sender")
        )
        found[sender.address] = role
    for address in cc_addresses(understood.parsed.cc, support_addresses):
        found.setdefault(address, "cc")
    for address, role in found.items():
        if address not in known:
            known[address] = role
            stage(
                session,
                TicketParticipant,
                {"ticket_id": None, "address": address, "role": role},
                ticket,
            )


def mark_undeliverable(
    session: Session, ticket: Ticket, inbound: Inbound, understood: Understood, now: dt.datetime
) -> str:
    """Record the addresses a bounce reports as failed, when they were recipients of the mail
    of ours it returns (by its Message-ID); return what was not counted, and why."""
    bounce = understood.detection.bounce
    assert bounce is not None
    parsed = understood.parsed
    returned = {*parsed.in_reply_to, *parsed.references}
    if bounce.original_message_id:
        returned.add(bounce.original_message_id)
    sent_to = _recipients_of(session, ticket, returned)
    ignored = []
    for failed in bounce.failed:
        address = normalize_address(failed.address)
        if address is None:
            continue
        if address not in sent_to:
            ignored.append(address)
            continue
        row = session.get(UndeliverableAddress, address)
        if row is None:
            row = UndeliverableAddress(
                address=address, permanent=failed.permanent, first_seen=now, bounces=0
            )
            session.add(row)
        row.permanent = bool(row.permanent) or failed.permanent
        row.bounces = (row.bounces or 0) + 1
        row.last_seen = now
        row.ticket_id = ticket.id
        row.inbound_id = inbound.id
        row.reason = "permanent failure" if failed.permanent else "temporary failure"
    if not ignored:
        return ""
    return (
        f"not marked undeliverable: {', '.join(ignored)} (not a recipient of a mail of ours"
        " this bounce names by Message-ID)"
    )


def _recipients_of(session: Session, ticket: Ticket, message_ids: set[str]) -> set[str]:
    """The To and Cc addresses of the ticket's outbound mail with these Message-IDs."""
    if not message_ids:
        return set()
    rows = session.execute(
        select(MessageRecord.to, MessageRecord.cc).where(
            MessageRecord.ticket_id == ticket.id,
            MessageRecord.direction == "out",
            MessageRecord.message_id.in_(sorted(message_ids)),
        )
    )
    return {
        address
        for to, cc in rows
        for _, written in (*(to or ()), *(cc or ()))
        if (address := normalize_address(written))
    }


def message_detail(understood: Understood) -> dict[str, object]:
    """The detail of a message's event: its kind, sender, trust and the evidence."""
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

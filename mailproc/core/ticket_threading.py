"""Thread decision: the ticket a mail belongs to (reply token ▸ headers ▸ tag + participant;
a stranger's tag names a ticket only to hold the mail for review)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mailproc.core.addresses import normalize_address
from mailproc.core.detect import BounceDetails
from mailproc.core.identity import SenderIdentity, SenderKind
from mailproc.core.model import ParsedMessage, TicketStatus
from mailproc.core.tokens import ReplyAddressScheme, TokenCheck, check_reply_addresses

_SUBJECT_TAG = re.compile(r"\[Ticket #(\d{1,12})\]", re.IGNORECASE)
_CLOSED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


class ThreadAction(StrEnum):
    """What to do with an inbound mail."""

    ATTACH = "attach"  # add to an open ticket
    REOPEN = "reopen"  # add to a resolved/closed ticket and reopen it
    NEW_LINKED = "new_linked"  # open a new ticket linked to an old, closed one
    NEW = "new"  # open a new ticket


class Trust(StrEnum):
    """Which evidence threaded the mail, strongest first."""

    REPLY_TOKEN = "reply_token"
    MESSAGE_ID = "message_id"
    SUBJECT_TAG = "subject_tag"
    # a subject tag from someone neither on the ticket nor an agent: a person's mail is held
    # for review, automatic mail matches no ticket
    STRANGER_TAG = "stranger_tag"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TicketRef:
    """What threading needs to know about an existing ticket."""

    number: int
    status: TicketStatus
    participants: frozenset[str]  # normalized: the customer's addresses and those on the ticket
    resolved_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    """The decision, the ticket it concerns (target, or the old one for NEW_LINKED), and why."""

    action: ThreadAction
    ticket: int | None
    trust: Trust
    reason: str


class TicketLookup(Protocol):
    """Read-only questions the caller answers from its store."""

    def tickets_by_message_ids(self, message_ids: Sequence[str]) -> Mapping[str, int]:
        """Ticket numbers of stored messages (inbound or outbound) with these Message-IDs."""
        ...

    def ticket_info(self, number: int) -> TicketRef | None:
        """The ticket with this number, or None."""
        ...


@dataclass(frozen=True, slots=True)
class ThreadPolicy:
    """How replies are recognized and how long a resolved ticket may be reopened."""

    reply_scheme: ReplyAddressScheme
    reopen_window: dt.timedelta = dt.timedelta(days=14)


def decide_thread(
    message: ParsedMessage,
    envelope_recipients: Sequence[str],
    sender: SenderIdentity,
    lookup: TicketLookup,
    policy: ThreadPolicy,
    now: dt.datetime,
    bounce: BounceDetails | None = None,
) -> ThreadDecision:
    """Choose the ticket for ``message``; ``bounce`` lets a bounce follow the mail it returns."""
    notes: list[str] = []
    token = _by_token(message, envelope_recipients, bounce, policy, notes)
    if token is not None:
        found = _resolve(token, Trust.REPLY_TOKEN, lookup, policy, now, notes)
        if found is not None:
            return found
    by_header = _by_message_id(message, bounce, lookup, notes)
    if by_header is not None:
        found = _resolve(by_header, Trust.MESSAGE_ID, lookup, policy, now, notes)
        if found is not None:
            return found
    for number in dict.fromkeys(int(n) for n in _SUBJECT_TAG.findall(message.subject)):
        ticket = lookup.ticket_info(number)
        if ticket is None:
            notes.append(f"subject tag [Ticket #{number}] names no ticket")
        elif _is_participant(sender, ticket):
            reason = f"subject tag [Ticket #{number}] from participant {sender.address}"
            return _for_ticket(ticket, Trust.SUBJECT_TAG, reason, policy, now, notes)
        else:
            stranger = (
                f"subject tag [Ticket #{number}] from {sender.address or 'the sender'},"
                " not a participant of that ticket"
            )
            found = _for_ticket(ticket, Trust.STRANGER_TAG, stranger, policy, now, notes)
            if found.action is not ThreadAction.NEW_LINKED:
                return found  # a person's mail is held for review (processing/review.py)
            notes.append(f"{stranger}: rejected, the ticket is past its reopen window")
    return ThreadDecision(ThreadAction.NEW, None, Trust.NONE, _explain("new ticket", notes))


def _by_token(
    message: ParsedMessage,
    envelope_recipients: Sequence[str],
    bounce: BounceDetails | None,
    policy: ThreadPolicy,
    notes: list[str],
) -> int | None:
    """The ticket named by the first valid reply token among the recipients (or the bounce)."""
    addresses = [*envelope_recipients, *(a.addr for a in (*message.to, *message.cc))]
    checks: Iterable[TokenCheck] = check_reply_addresses(policy.reply_scheme, addresses)
    if bounce is not None:
        checks = [*checks, *bounce.reply_tokens]
    valid = [c for c in checks if c.valid and c.ticket is not None]
    notes += [f"rejected: {c.reason}" for c in checks if not c.valid]
    tickets = list(dict.fromkeys(c.ticket for c in valid if c.ticket is not None))
    if len(tickets) > 1:
        notes.append(f"reply tokens for several tickets {tickets}; using the first")
    return tickets[0] if tickets else None


def _by_message_id(
    message: ParsedMessage,
    bounce: BounceDetails | None,
    lookup: TicketLookup,
    notes: list[str],
) -> int | None:
    """The ticket of the referenced message: In-Reply-To first, then the newest Reference."""
    returned = (bounce.original_message_id,) if bounce and bounce.original_message_id else ()
    ids = list(dict.fromkeys((*returned, *message.in_reply_to, *reversed(message.references))))
    if not ids:
        return None
    known = lookup.tickets_by_message_ids(ids)
    ignored = len([i for i in ids if i not in known])
    if ignored:
        notes.append(f"{ignored} referenced Message-ID(s) match nothing of ours; ignored")
    return next((known[i] for i in ids if i in known), None)


def _resolve(
    number: int,
    trust: Trust,
    lookup: TicketLookup,
    policy: ThreadPolicy,
    now: dt.datetime,
    notes: list[str],
) -> ThreadDecision | None:
    """A decision for a ticket found by token or header, or None (with a note) if it is gone."""
    ticket = lookup.ticket_info(number)
    if ticket is None:
        notes.append(f"{trust} names ticket #{number}, which does not exist")
        return None
    reason = "valid reply token" if trust is Trust.REPLY_TOKEN else "In-Reply-To/References"
    return _for_ticket(ticket, trust, f"{reason} for ticket #{number}", policy, now, notes)


def _for_ticket(
    ticket: TicketRef,
    trust: Trust,
    reason: str,
    policy: ThreadPolicy,
    now: dt.datetime,
    notes: list[str],
) -> ThreadDecision:
    """Attach, reopen, or open a linked ticket depending on status and the reopen window."""
    if ticket.status not in _CLOSED:
        return ThreadDecision(ThreadAction.ATTACH, ticket.number, trust, _explain(reason, notes))
    if ticket.resolved_at is not None and now - ticket.resolved_at <= policy.reopen_window:
        why = f"{reason}; {ticket.status} {now - ticket.resolved_at} ago, within the reopen window"
        return ThreadDecision(ThreadAction.REOPEN, ticket.number, trust, _explain(why, notes))
    since = f"{now - ticket.resolved_at} ago" if ticket.resolved_at else "at an unknown time"
    why = (
        f"{reason}; {ticket.status} {since}, past the reopen window of {policy.reopen_window}:"
        f" new ticket linked to #{ticket.number}"
    )
    return ThreadDecision(ThreadAction.NEW_LINKED, ticket.number, trust, _explain(why, notes))


def _is_participant(sender: SenderIdentity, ticket: TicketRef) -> bool:
    """Agents take part in every ticket; others only when their address is on it."""
    if sender.kind is SenderKind.AGENT:
        return True
    address = normalize_address(sender.address) if sender.address else None
    return address is not None and address in ticket.participants


def _explain(reason: str, notes: list[str]) -> str:
    return "; ".join([reason, *notes])

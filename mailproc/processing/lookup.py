"""What a batch knows of the stored tickets, messages and customers: preloaded, then kept.

It answers the threading core's questions (the TicketLookup protocol) from memory, so a reply
later in a batch finds the ticket that an earlier message of the batch opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, selectinload

from mailproc.core import model
from mailproc.core.addresses import normalize_address
from mailproc.core.model import ParsedMessage, TicketStatus
from mailproc.core.ticket_threading import TicketRef
from mailproc.store import repo
from mailproc.store.models import (
    Customer,
    CustomerAddress,
    MessageRecord,
    Ticket,
    TicketParticipant,
)


class BatchLookup:
    """The tickets (with participants), Message-IDs and customers one batch refers to."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._ticket_by_message_id: dict[str, Ticket] = {}
        self._first_inbound: dict[str, tuple[str, Ticket | None]] = {}
        self._unknown_ids: set[str] = set()
        self._tickets: dict[int, Ticket | None] = {}
        self._participants: dict[int, dict[str, str]] = {}
        self._customers: dict[str, Customer | None] = {}

    # -- what the batch has seen ----------------------------------------------------------

    def first_inbound(self, message_id: str) -> tuple[str, Ticket | None] | None:
        """(content fingerprint, ticket) of the first inbound mail with ``message_id``."""
        return self._first_inbound.get(message_id)

    def ticket(self, number: int) -> Ticket | None:
        """Ticket ``number`` if the batch has loaded or opened it."""
        return self._tickets.get(number)

    def customer(self, address: str) -> Customer | None:
        """The loaded customer owning ``address``."""
        return self._customers.get(address)

    def participants_of(self, ticket: Ticket) -> dict[str, str]:
        """The ticket's participants (address → role), changed in place as they are added."""
        return self._participants.setdefault(ticket.number, {})

    def add_ticket(self, ticket: Ticket) -> None:
        """A ticket the batch opened, without participants yet."""
        self._tickets[ticket.number] = ticket
        self._participants[ticket.number] = {}

    def add_message(self, message_id: str, fingerprint: str, ticket: Ticket | None) -> None:
        """An inbound message the batch stored, so later mail of the batch finds it."""
        self._first_inbound.setdefault(message_id, (fingerprint, ticket))
        self._unknown_ids.discard(message_id)
        if ticket is not None:
            self._ticket_by_message_id.setdefault(message_id, ticket)

    # -- loading --------------------------------------------------------------------------

    def preload(self, messages: Iterable[ParsedMessage]) -> None:
        """Load what the messages refer to: their Message-IDs' tickets and their senders."""
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

    # -- the cores' questions -------------------------------------------------------------

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
        participants = set(self.participants_of(ticket))
        if ticket.customer is not None:
            participants.update(a.address for a in ticket.customer.addresses)
        return TicketRef(
            number, TicketStatus(ticket.status), frozenset(participants), ticket.resolved_at
        )

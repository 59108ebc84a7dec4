"""A known customer's mail that was quarantined: the agents are alerted (why, how to release
it) and the customer is told, once, that it arrived but could not be read and what to do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses

from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.addresses import normalize_address
from mailproc.core.detect import HeaderRule
from mailproc.core.events import EventKind
from mailproc.core.model import Address
from mailproc.core.rawmail import split_header_block
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.desk_contexts import (
    MailUnreadableContext,
    QuarantineAlertContext,
    UnreadableProblem,
)
from mailproc.outbound.values import CustomerInfo
from mailproc.store import repo
from mailproc.store.models import Inbound
from mailproc.store.repo import record_event
from mailproc.workflows.context import WorkflowContext
from mailproc.workflows.mail import Thread

SUBJECT_CHARS = 200
_AUTOMATIC_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def mail_quarantined(
    ctx: WorkflowContext, session: Session, inbound: Inbound, raw: bytes, now: dt.datetime
) -> None:
    """Alert the agents and tell the customer, when the sender is a known customer (never for
    a history import)."""
    if inbound.imported_at is not None:
        return
    headers = _headers(raw)
    address = _sender(headers)
    row = repo.customer_by_address(session, address)
    if row is None or address is None:
        return
    notifier = ctx.notifier
    customer = repo.to_core_customer(row)
    info = CustomerInfo(
        name=customer.contact_name or address.split("@")[0],
        email=address,
        timezone=customer.timezone,
        company=customer.company,
        customer_id=customer.id,
    )
    subject = _text(headers, "Subject")[:SUBJECT_CHARS] or "(no subject)"
    reason = inbound.last_error or "quarantined"
    told = False
    filtering = ctx.settings.filtering
    rules = (*filtering.spam_rules(), *filtering.bulk_rules())
    if not _automatic(headers, inbound.envelope_from, rules):
        allowed, _ = notifier.auto_reply_allowed(session, address, now)
        message_id = _text(headers, "Message-ID").strip().strip("<>") or None
        told = allowed and notifier.queue(
            session,
            key=keys.mail_unreadable(inbound.id),
            ticket=None,
            locale=notifier.locale(customer).locale,
            to=(Address(info.name if info.named else "", address),),
            automatic=AutoSubmitted.AUTO_REPLIED,
            now=now,
            thread=Thread(message_id),
            context=MailUnreadableContext(info, subject, inbound.received_at, problem_of(reason)),
        )
    alerted = notifier.queue(
        session,
        key=keys.quarantine_alert(inbound.id),
        ticket=None,
        locale="en",
        to=(Address("Support agents", notifier.settings.notify.agents_address),),
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        context=QuarantineAlertContext(
            info, inbound.id, subject, inbound.received_at, reason, told, info.timezone
        ),
    )
    if alerted:
        record_event(
            session,
            now,
            EventKind.NOTIFY_QUARANTINE_ALERT,
            f"mail of customer {customer.id} quarantined: agents alerted"
            + ("; the customer was told" if told else ""),
            inbound_id=inbound.id,
        )


def problem_of(reason: str) -> UnreadableProblem:
    """What the customer should do, from the quarantine reason."""
    if reason.startswith("LimitExceeded: message is"):
        return UnreadableProblem.TOO_LARGE
    if reason.startswith("LimitExceeded:"):
        return UnreadableProblem.TOO_MANY_PARTS
    return UnreadableProblem.UNREADABLE


def _headers(raw: bytes) -> EmailMessage:
    header, _ = split_header_block(raw)
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(header)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _text(headers: EmailMessage, name: str) -> str:
    """A header's decoded value; empty when it is missing or cannot be decoded."""
    try:
        return " ".join(str(headers.get(name, "")).split())
    except (ValueError, TypeError, IndexError):
        return ""


def _sender(headers: EmailMessage) -> str | None:
    found = getaddresses([_text(headers, "From")])
    if len(found) != 1:
        return None
    return normalize_address(found[0][1])


def _automatic(
    headers: EmailMessage, envelope_from: str | None, rules: Sequence[HeaderRule]
) -> bool:
    """Mail no one should get an answer to: a bounce, an auto-reply, a list's, bulk or spam
    (by the ``[filtering]`` header ``rules``)."""
    auto = _text(headers, "Auto-Submitted").lower()
    precedence = _text(headers, "Precedence").lower()
    null_sender = envelope_from is not None and not envelope_from.strip("<> ")
    return (
        null_sender  # a bounce (None: not known, as for mail fetched by IMAP)
        or (bool(auto) and auto != "no")
        or precedence in _AUTOMATIC_PRECEDENCE
        or bool(_text(headers, "List-Id") or _text(headers, "List-Unsubscribe"))
        or any(
            rule.pattern.search(" ".join(str(value).split()))
            for rule in rules
            for value in headers.get_all(rule.header, ())
        )
    )

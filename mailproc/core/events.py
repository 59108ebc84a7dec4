"""The audit log's vocabulary: every kind of event a ticket or an inbound message can record.

The values are what the ``events.kind`` column holds (``area.what``); reports and tests
read them, so a value never changes once written.
"""

from __future__ import annotations

from enum import StrEnum

from mailproc.core.breach import BreachKind
from mailproc.core.detect import MailKind


class EventKind(StrEnum):
    """One kind of entry in the append-only event log."""

    # inbound mail as it is stored and processed
    INBOUND_DUPLICATE = "inbound.duplicate"
    INBOUND_MESSAGE_ID_CONFLICT = "inbound.message_id_conflict"
    INBOUND_NOT_TICKETED = "inbound.not_ticketed"
    INBOUND_QUARANTINED = "inbound.quarantined"
    INBOUND_RELEASED = "inbound.released"
    INBOUND_HELD = "inbound.held"
    INBOUND_PROMOTED = "inbound.promoted"
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_REPLAYED = "message.replayed"
    MESSAGE_REDUCED = "message.reduced"
    MESSAGE_AUTO_REPLY = "message.auto_reply"
    MESSAGE_BULK = "message.bulk"
    MESSAGE_SPAM = "message.spam"
    MESSAGE_HISTORY = "message.history"
    MESSAGE_BOUNCE = "message.bounce"
    MESSAGE_OWN_MAIL = "message.own_mail"
    MESSAGE_HUMAN = "message.human"
    # the ticket's life
    TICKET_CREATED = "ticket.created"
    TICKET_CLASSIFIED = "ticket.classified"
    TICKET_SLA = "ticket.sla"
    TICKET_SLA_RECOMPUTED = "ticket.sla_recomputed"
    TICKET_TRIAGE_NEEDED = "ticket.triage_needed"
    TICKET_CUSTOMER_REPLIED = "ticket.customer_replied"
    TICKET_REOPENED = "ticket.reopened"
    TICKET_ESCALATED = "ticket.escalated"
    TICKET_NOTE = "ticket.note"
    # agents by mail
    AGENT_COMMAND = "agent.command"
    AGENT_COMMANDS_REFUSED = "agent.commands_refused"
    AGENT_REPLY_RELAYED = "agent.reply_relayed"
    COMMANDS_NOT_FROM_AGENT = "agent.commands_not_from_agent"
    # notifications decided
    NOTIFY_ACK_QUEUED = "notify.ack_queued"
    NOTIFY_ACK_SKIPPED = "notify.ack_skipped"
    NOTIFY_ACK_SUPPRESSED = "notify.ack_suppressed"
    NOTIFY_TRIAGE_REQUEST = "notify.triage_request"
    NOTIFY_P0_ALERT = "notify.p0_alert"
    NOTIFY_REPLY_ALERT = "notify.reply_alert"
    NOTIFY_QUARANTINE_ALERT = "notify.quarantine_alert"
    NOTIFY_HELD_ALERT = "notify.held_alert"
    NOTIFY_FAILED = "notify.failed"
    # timers, SLA and breaches
    TIMER_SCHEDULED = "timer.scheduled"
    TIMER_VOID = "timer.void"
    SLA_FIRST_RESPONSE = "sla.first_response"
    SLA_BREACH_APOLOGY = "sla.sla_breach_apology"
    SLA_BREACH_ALERT = "sla.breach_alert"
    SLA_RESOLUTION_ALERT = "sla.resolution_alert"
    SLA_UPDATE_OVERDUE = "sla.update_overdue"
    # money, surveys, incidents
    REFUND_REQUESTED = "refund.requested"
    REFUND_APPROVED = "refund.approved"
    REFUND_AMOUNT_CLAMPED = "refund.amount_clamped"
    REFUND_DENIED = "refund.denied"
    CANCELLATION_CONFIRMED = "refund.cancellation_confirmed"
    CANCELLATION_DENIED = "refund.cancellation_denied"
    CUSTOMER_METRICS_UPDATED = "customer.metrics_updated"
    CREDIT_RECORDED = "credit.recorded"
    SURVEY_ANSWERED = "survey.answered"
    INCIDENT_LINKED = "incident.linked"
    INCIDENT_NOTICE = "incident.notice"
    INCIDENT_RESOLVED = "incident.resolved"
    # knowledge base (§9)
    KB_RECURRING = "kb.recurring"
    KB_DRAFTED = "kb.drafted"
    KB_UPDATED = "kb.updated"
    KB_PUBLISHED = "kb.published"
    KB_REJECTED = "kb.rejected"
    KB_COMMANDS_REFUSED = "kb.commands_refused"
    # delivery
    OUTBOUND_SENT = "outbound.sent"
    OUTBOUND_RETRY = "outbound.retry"
    OUTBOUND_FAILED = "outbound.failed"

    @classmethod
    def for_mail(cls, kind: MailKind) -> EventKind:
        """The event that records how a mail of this kind was routed."""
        return cls(f"message.{kind.value}")

    @classmethod
    def for_breach(cls, kind: BreachKind) -> EventKind:
        """The event that records a breach notice of this kind."""
        return cls(f"sla.{kind.value}")

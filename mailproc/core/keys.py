"""Idempotency keys: one builder per kind of mail, credit or notice, so nothing is done twice.

A key names the cause of what it guards. Queuing the same key again is a no-op (the outbox
and the credits table are unique on it), so a key must differ exactly when the action should
happen again: an agent's reply is keyed by the inbound mail that carried it, never by the
time of the batch that processed it (two replies in one batch are two mails).
"""

from __future__ import annotations

import datetime as dt

from mailproc.core.escalation import IdempotencyKey


def acknowledgment(ticket: int) -> str:
    """Template 1 for a new ticket."""
    return f"ack:{ticket}"


def new_ticket_alert(ticket: int) -> str:
    """The agents' alert for a new ticket."""
    return f"new:{ticket}"


def p0_alert(ticket: int) -> str:
    """The CTO's and Support Director's alert for a P0 ticket."""
    return f"p0:{ticket}"


def triage_request(ticket: int) -> str:
    """The Support Manager's request to set an unclear priority."""
    return f"triage:{ticket}"


def agent_reply(ticket: int, inbound: int) -> str:
    """An agent's reply relayed to the customer, keyed by the agent's inbound mail."""
    return f"reply:{ticket}:{inbound}"


def resolved_notice(ticket: int, inbound: int) -> str:
    """The customer's notice that an agent's command resolved the ticket."""
    return f"resolved:{ticket}:{inbound}"


def command_error(ticket: int, inbound: int) -> str:
    """The one error mail answering the refused commands of an inbound mail."""
    return f"cmd-error:{ticket}:{inbound}"


def customer_reply_alert(ticket: int, inbound: int) -> str:
    """The assignee's (or the agents') alert that the customer wrote again on a ticket."""
    return f"reply-alert:{ticket}:{inbound}"


def held_mail_alert(ticket: int, inbound: int) -> str:
    """The assignee's (or the agents') alert that a mail on the ticket was held for review."""
    return f"held-alert:{ticket}:{inbound}"


def quarantine_alert(inbound: int) -> str:
    """The agents' alert that a known customer's mail was quarantined."""
    return f"quarantine-alert:{inbound}"


def mail_unreadable(inbound: int) -> str:
    """The customer's notice that their quarantined mail could not be read (once per mail)."""
    return f"unreadable:{inbound}"


def refund_approval_request(ticket: int) -> str:
    """The approver's request to decide a refund case."""
    return f"refund-approval:{ticket}"


def refund_confirmation(ticket: int, inbound: int) -> str:
    """Template 4 for what one agent's mail decided (a refund, a credit, a cancellation)."""
    return f"refund:{ticket}:{inbound}"


def partial_credit(ticket: int) -> str:
    """The partial credit approved on a ticket's case (§6.1 level 2)."""
    return f"partial-credit:{ticket}"


def escalation_alert(ticket: int, team: str) -> str:
    """A team's alert that a ticket was escalated to it."""
    return f"escalate:{ticket}:{team}"


def escalation_notice(ticket: int, team: str) -> str:
    """Template 2: the customer is told of an escalation to a team."""
    return f"escalation-notice:{ticket}:{team}"


def survey(ticket: int) -> str:
    """The satisfaction survey of a resolved ticket."""
    return f"survey:{ticket}"


def low_score_credit(ticket: int) -> str:
    """The credit given for a low survey score."""
    return f"lowscore:{ticket}"


def low_score_followup(ticket: int) -> str:
    """Template 5 for a low survey score."""
    return f"lowscore-followup:{ticket}"


def low_score_alert(ticket: int) -> str:
    """The Support Manager's alert for a low survey score."""
    return f"lowscore-alert:{ticket}"


def timed(key: IdempotencyKey) -> str:
    """A (ticket, kind, due time) key: timers, breach notices and their credits."""
    ticket, kind, due_at = key
    return f"{kind}:{ticket}:{due_at.astimezone(dt.UTC).isoformat()}"


def incident_alert(key: IdempotencyKey) -> str:
    """DevOps' alert for an incident, keyed by its lead ticket and start."""
    return f"incident:{timed(key)}"


def incident_resolved(incident: int, customer: str) -> str:
    """A linked customer's notice that the incident is resolved, once per customer."""
    return f"incident-resolved:{incident}:{customer}"


def kb_alert(key: str, month: str) -> str:
    """The managers' alert that ``key`` is a recurring issue this month (§9.2.1)."""
    return f"kb-alert:{key}:{month}"


def kb_realert(key: str, month: str) -> str:
    """The one reminder when the alerted key's article is not published in time (§9.2.4)."""
    return f"kb-realert:{key}:{month}"


def kb_mail(article: int, what: str, stamp: dt.datetime) -> str:
    """A review request or a decision about an article revision, keyed by the command's time."""
    return f"kb-{what}:{article}:{stamp.astimezone(dt.UTC).isoformat()}"


def kb_command_error(sender: str, stamp: dt.datetime) -> str:
    """The one error mail answering a refused #kb command mail."""
    return f"kb-error:{sender}:{stamp.astimezone(dt.UTC).isoformat()}"


def sla_breach_apology(ticket: int) -> str:
    """Template 3 and its credit: once in a ticket's life, whatever deadline is missed."""
    return f"apology:{ticket}"


def update_overdue(timer_key: str) -> str:
    """The Support Manager's alert that a promised update (its timer's key) was not sent."""
    return f"update-overdue:{timer_key}"


def incident_notice(incident: int, customer: str) -> str:
    """A customer's notice that an incident is known, once per customer of the incident."""
    return f"incident-notice:{incident}:{customer}"


def report(kind: str, period: str) -> str:
    """A scheduled report mail (weekly, monthly, quarterly), once per period."""
    return f"report:{kind}:{period}"

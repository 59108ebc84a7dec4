"""Knowledge base by mail (§9): recurring-issue alerts, drafts from resolved tickets, review.

``#kb`` commands come on a ticket (an agent's reply) or in a mail to the KB address (the
review mail's Reply-To, its subject tag naming the article). Every command is checked against
the store first; a refused one changes nothing and its author gets an error mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.core import keys
from mailproc.core.commands import CommandError, check_commands, parse_commands
from mailproc.core.events import EventKind
from mailproc.core.identity import Agent, AgentRole
from mailproc.core.kb import (
    KB_USAGE,
    ArticleStatus,
    KbAction,
    KbCommand,
    Visibility,
    default_visibility,
    month_start,
    next_month_start,
    recurring_issues,
    steps_from_text,
    subject_key,
)
from mailproc.core.model import Address
from mailproc.kb import articles
from mailproc.outbound.compose import AutoSubmitted
from mailproc.outbound.contexts import CommandErrorContext, CommandProblem
from mailproc.outbound.kb_contexts import KbAlertContext, KbOutcome, KbReviewContext
from mailproc.store import repo
from mailproc.store.models import KbAlert, KbArticle, MessageRecord, Ticket
from mailproc.store.staged import insert_new_only
from mailproc.workflows.context import CheckSummary, WorkflowContext


@dataclass(frozen=True)
class Planned:
    """A checked command: its article key, the revision it acts on, the steps it brings."""

    command: KbCommand
    key: str
    revision: KbArticle | None
    steps: tuple[str, ...]


# -- checking -------------------------------------------------------------------------------


def resolution_text(session: Session, ticket: Ticket) -> str:
    """The ticket's resolution: the text of the agents' last reply that had any."""
    texts = session.scalars(
        select(MessageRecord.new_text)
        .where(MessageRecord.ticket_id == ticket.id, MessageRecord.sender_kind == "agent")
        .order_by(MessageRecord.id.desc())
    )
    for text in texts:
        remaining = parse_commands(text).remaining_text.strip()
        if remaining:
            return remaining
    return ""


def plan(
    ctx: WorkflowContext,
    session: Session,
    command: KbCommand,
    body: str,
    subject: str = "",
    ticket: Ticket | None = None,
) -> Planned | CommandError:
    """Check one command against the store; ``body`` is the text the mail brings."""
    key = command.key or subject_key(subject)
    if key is None:
        return CommandError(command.source, "name the article (CODE) or reply to its review mail")
    known = ctx.notifier.catalog.get(key) is not None or articles.has_article(session, key)
    if not known and not articles.was_alerted(session, key):
        return CommandError(command.source, f"unknown error code {key}", KB_USAGE)
    revision = articles.open_revision(session, key)
    if command.action is KbAction.DRAFT:
        if revision is not None:
            return CommandError(
                command.source, f"{key} already has a draft {revision.status} by {revision.author}"
            )
        if ticket is not None and not body.strip():
            body = resolution_text(session, ticket)
    elif revision is None:
        return CommandError(command.source, f"{key} has no draft to {command.action}")
    elif command.action is KbAction.PUBLISH and revision.status != ArticleStatus.IN_REVIEW:
        return CommandError(command.source, f"the draft of {key} was sent back: update it first")
    steps = steps_from_text(body)
    if command.action in (KbAction.DRAFT, KbAction.UPDATE) and not steps:
        where = f"ticket #{ticket.number} has no agent reply" if ticket else "the mail has none"
        return CommandError(command.source, f"no steps to write: {where}", KB_USAGE)
    return Planned(command, key, revision, steps)


def check(
    ctx: WorkflowContext,
    session: Session,
    commands: Sequence[KbCommand],
    body: str,
    subject: str = "",
    ticket: Ticket | None = None,
) -> tuple[list[Planned], list[CommandError]]:
    """Plan every command; the problems found, if any, mean nothing may be applied."""
    planned: list[Planned] = []
    problems: list[CommandError] = []
    for command in commands:
        result = plan(ctx, session, command, body, subject, ticket)
        if isinstance(result, CommandError):
            problems.append(result)
        else:
            planned.append(result)
    return planned, problems


# -- applying -------------------------------------------------------------------------------


def apply(
    ctx: WorkflowContext,
    session: Session,
    agent: Agent,
    planned: Planned,
    now: dt.datetime,
    ticket: Ticket | None = None,
) -> KbArticle:
    """Carry out a checked command; return the revision it changed."""
    command, key = planned.command, planned.key
    articles.forget_quotes(session)  # acknowledgments after this one quote the change
    if command.action is KbAction.DRAFT:
        return _draft(ctx, session, agent, planned, now, ticket)
    article = planned.revision
    assert article is not None  # plan() refuses the other actions without an open revision
    article.updated_at = now
    if command.action is KbAction.UPDATE:
        article.steps = {**article.steps, command.locale: list(planned.steps)}
        article.status = ArticleStatus.IN_REVIEW
        repo.record_event(
            session, now, EventKind.KB_UPDATED, f"{key} ({command.locale}) by {agent.name}"
        )
        _review_mail(ctx, session, article, KbOutcome.REVIEW, now)
    elif command.action is KbAction.PUBLISH:
        live = articles.published(session, key)
        if live is not None:
            live.status, live.retired_at = ArticleStatus.RETIRED, now
            session.flush()  # one published revision per key (a partial unique index)
        article.status, article.reviewer, article.published_at = (
            ArticleStatus.PUBLISHED,
            agent.name,
            now,
        )
        repo.record_event(session, now, EventKind.KB_PUBLISHED, f"{key} published by {agent.name}")
        _review_mail(ctx, session, article, KbOutcome.PUBLISHED, now)
    else:
        article.status, article.reviewer, article.note = (
            ArticleStatus.DRAFT,
            agent.name,
            command.reason,
        )
        repo.record_event(session, now, EventKind.KB_REJECTED, f"{key} sent back: {command.reason}")
        _review_mail(ctx, session, article, KbOutcome.REJECTED, now)
    session.flush()
    return article


def _draft(
    ctx: WorkflowContext,
    session: Session,
    agent: Agent,
    planned: Planned,
    now: dt.datetime,
    ticket: Ticket | None,
) -> KbArticle:
    command, key = planned.command, planned.key
    entry = ctx.notifier.catalog.get(key)
    live = articles.published(session, key)
    if live is None and entry is not None and not articles.has_article(session, key):
        live = articles.seed_entry(session, entry, now)
    titles = dict(live.titles) if live is not None else {"en": key}
    topic = f"{entry.area if entry else ''} {titles.get('en', key)}"
    visibility = command.visibility or (
        Visibility(live.visibility) if live is not None else default_visibility(topic)
    )
    article = KbArticle(
        key=key,
        status=ArticleStatus.IN_REVIEW,
        visibility=visibility,
        titles=titles,
        steps={command.locale: list(planned.steps)},
        author=agent.name,
        source_ticket=ticket.number if ticket is not None else None,
        note="",
        created_at=now,
        updated_at=now,
    )
    session.add(article)
    session.flush()
    origin = f" from ticket #{ticket.number}" if ticket is not None else ""
    repo.record_event(session, now, EventKind.KB_DRAFTED, f"{key} drafted by {agent.name}{origin}")
    _review_mail(ctx, session, article, KbOutcome.REVIEW, now)
    return article


def _review_mail(
    ctx: WorkflowContext,
    session: Session,
    article: KbArticle,
    outcome: KbOutcome,
    now: dt.datetime,
) -> None:
    """The revision to the managers for review, or their decision to them and its author."""
    to = list(ctx.notifier.role_recipients(AgentRole.SUPPORT_MANAGER))
    if outcome is not KbOutcome.REVIEW:
        to.extend(
            Address(a.name, a.addresses[0])
            for a in ctx.notifier.agents
            if a.name == article.author and all(t.addr != a.addresses[0] for t in to)
        )
    ctx.notifier.queue(
        session,
        key=keys.kb_mail(article.id, outcome, now),
        ticket=None,
        locale="en",
        to=to,
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        reply_to=ctx.settings.kb.address,
        context=KbReviewContext(
            key=article.key,
            title=article.titles.get("en", article.key),
            outcome=outcome,
            author=article.author,
            internal=article.visibility == Visibility.INTERNAL,
            steps=tuple((loc, tuple(lines)) for loc, lines in sorted(article.steps.items())),
            reviewer=article.reviewer,
            note=article.note,
        ),
    )


def refuse(
    ctx: WorkflowContext,
    session: Session,
    agent: Agent,
    problems: Sequence[CommandError],
    now: dt.datetime,
) -> None:
    """The error mail for refused commands sent to the KB address: nothing was changed."""
    ctx.notifier.queue(
        session,
        key=keys.kb_command_error(agent.addresses[0], now),
        ticket=None,
        locale="en",
        to=(Address(agent.name, agent.addresses[0]),),
        automatic=AutoSubmitted.AUTO_REPLIED,
        now=now,
        reply_to=ctx.settings.kb.address,
        context=CommandErrorContext(
            agent.name, tuple(CommandProblem(p.source, p.problem, p.usage) for p in problems)
        ),
    )
    reasons = "; ".join(f"{p.source}: {p.problem}" for p in problems)
    repo.record_event(session, now, EventKind.KB_COMMANDS_REFUSED, f"{agent.name}: {reasons}")


def kb_mail(
    ctx: WorkflowContext,
    session: Session,
    agent: Agent,
    subject: str,
    new_text: str,
    now: dt.datetime,
) -> str:
    """A staff member's mail to the KB address: its ``#kb`` commands, checked, then applied."""
    parsed = parse_commands(new_text)
    problems = list(check_commands(parsed, agent))
    commands = [c for c in parsed.commands if isinstance(c, KbCommand)]
    if not commands and not problems:
        problems.append(CommandError(subject or "(no command)", "no #kb command found", KB_USAGE))
    planned, refused = check(ctx, session, commands, parsed.remaining_text, subject)
    problems.extend(refused)
    if problems:
        refuse(ctx, session, agent, problems, now)
        return "refused"
    for step in planned:
        apply(ctx, session, agent, step, now)
    return "applied"


# -- the scheduler --------------------------------------------------------------------------


def check_recurring(
    ctx: WorkflowContext, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
) -> None:
    """Alert the managers once per key and month (§9.2.1); remind them once after 5 days."""
    settings = ctx.settings.kb
    counts = {
        key: len(times)
        for key, times in articles.tickets_by_key(
            session, month_start(now), next_month_start(now)
        ).items()
    }
    reviewed = articles.last_reviewed(session)
    fresh = dt.timedelta(days=settings.fresh_days)
    for issue in recurring_issues(counts, reviewed, now, settings.recurring_threshold, fresh):
        line = f"kb: {issue.key}: {issue.count} tickets in {issue.month}"
        if dry_run:
            summary.kb.append(line + " (would alert)")
            continue
        inserted = session.execute(
            insert_new_only(session, KbAlert).returning(KbAlert.id),
            {"key": issue.key, "month": issue.month, "count": issue.count, "alerted_at": now},
        ).first()
        if inserted is None:
            continue
        _alert(ctx, session, issue.key, issue.count, issue.month, issue.last_reviewed, None, now)
        repo.record_event(session, now, EventKind.KB_RECURRING, line)
        summary.kb.append(line)
    _remind(ctx, session, now, dry_run, summary)


def _remind(
    ctx: WorkflowContext, session: Session, now: dt.datetime, dry_run: bool, summary: CheckSummary
) -> None:
    due = now - dt.timedelta(days=ctx.settings.kb.publish_days)
    alerts = session.scalars(
        select(KbAlert).where(KbAlert.realerted_at.is_(None), KbAlert.alerted_at <= due)
    )
    for alert in alerts:
        live = articles.published(session, alert.key)
        if live is not None and live.published_at and live.published_at >= alert.alerted_at:
            continue
        line = f"kb: {alert.key}: no article published within the time after {alert.month}'s alert"
        summary.kb.append(line + (" (would remind)" if dry_run else ""))
        if dry_run:
            continue
        alert.realerted_at = now
        reviewed = articles.last_reviewed(session).get(alert.key)
        _alert(ctx, session, alert.key, alert.count, alert.month, reviewed, alert.alerted_at, now)


def _alert(
    ctx: WorkflowContext,
    session: Session,
    key: str,
    count: int,
    month: str,
    reviewed: dt.datetime | None,
    alerted_at: dt.datetime | None,
    now: dt.datetime,
) -> None:
    entry = ctx.notifier.catalog.get(key)
    builder = keys.kb_alert if alerted_at is None else keys.kb_realert
    ctx.notifier.queue(
        session,
        key=builder(key, month),
        ticket=None,
        locale="en",
        to=ctx.notifier.role_recipients(AgentRole.SUPPORT_MANAGER),
        automatic=AutoSubmitted.AUTO_GENERATED,
        now=now,
        reply_to=ctx.settings.kb.address,
        context=KbAlertContext(
            key=key,
            count=count,
            month=month,
            kb_address=ctx.settings.kb.address,
            title=entry.title("en") if entry else None,
            last_reviewed=reviewed,
            alerted_at=alerted_at,
        ),
    )

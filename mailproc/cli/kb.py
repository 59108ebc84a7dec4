"""``mailproc kb``: the knowledge base (§9): list, show, export, draft, deflection."""

from __future__ import annotations

import click
from sqlalchemy import select

from mailproc.cli.context import current_app, parse_time
from mailproc.cli.errors import EX_DATAERR, fail
from mailproc.core.kb import ArticleStatus, KbAction, KbCommand, Visibility, normalize_key
from mailproc.kb.deflection import deflection_report
from mailproc.kb.export import to_html, to_markdown
from mailproc.store.db import transaction
from mailproc.store.models import KbArticle, Ticket
from mailproc.workflows import kb as kb_workflow


@click.group()
def kb() -> None:
    """Knowledge-base articles: list, show, export for the docs site, draft, deflection."""


@kb.command("list")
@click.option("--all", "show_all", is_flag=True, help="Retired revisions too.")
def kb_list(show_all: bool) -> None:
    """One line per article revision: key, status, visibility, locales, author, reviewer."""
    query = select(KbArticle).order_by(KbArticle.key, KbArticle.id)
    if not show_all:
        query = query.where(KbArticle.status != ArticleStatus.RETIRED)
    with transaction(current_app().sessions, commit=False) as session:
        for a in session.scalars(query):
            click.echo(
                f"{a.key:<12} {a.status:<10} {a.visibility:<8} {','.join(sorted(a.steps)):<9} "
                f"{a.author} {a.reviewer or '-'} {a.updated_at.isoformat()}"
            )


@kb.command("show")
@click.argument("key")
@click.option("--locale", default="en", show_default=True)
def kb_show(key: str, locale: str) -> None:
    """Every revision of KEY with its steps in LOCALE."""
    with transaction(current_app().sessions, commit=False) as session:
        rows = list(
            session.scalars(
                select(KbArticle).where(KbArticle.key == normalize_key(key)).order_by(KbArticle.id)
            )
        )
        if not rows:
            fail(f"no article for {key}", EX_DATAERR)
        for a in rows:
            click.echo(f"#{a.id} {a.status} {a.visibility} by {a.author}; reviewer {a.reviewer}")
            click.echo(to_markdown([a], locale))


@kb.command("export")
@click.option("--locale", default="en", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["markdown", "html"]), default="markdown")
@click.option("--internal", is_flag=True, help="Internal articles too (never for a public site).")
def kb_export(locale: str, fmt: str, internal: bool) -> None:
    """The published articles in LOCALE (English where a version is missing)."""
    query = select(KbArticle).where(KbArticle.status == ArticleStatus.PUBLISHED)
    if not internal:
        query = query.where(KbArticle.visibility == Visibility.PUBLIC)
    with transaction(current_app().sessions, commit=False) as session:
        rows = list(session.scalars(query.order_by(KbArticle.key)))
        click.echo((to_html if fmt == "html" else to_markdown)(rows, locale), nl=False)


@kb.command("draft")
@click.argument("key")
@click.option("--from-ticket", "number", type=int, required=True, help="Its agents' last reply.")
@click.option("--as", "author", required=True, help="The drafting agent's address.")
@click.option("--internal", is_flag=True, help="Staff only (security topics).")
def kb_draft(key: str, number: int, author: str, internal: bool) -> None:
    """Draft KEY from a resolved ticket and send it to the Support Managers for review."""
    app = current_app()
    desk = app.workflows()
    agent = next((a for a in desk.context.notifier.agents if author.lower() in a.addresses), None)
    if agent is None:
        fail(f"{author} is not a configured agent", EX_DATAERR)
    visibility = Visibility.INTERNAL if internal else None
    command = KbCommand(f"kb draft {key}", KbAction.DRAFT, normalize_key(key), "en", visibility)
    with transaction(app.sessions) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == number)).first()
        if ticket is None:
            fail(f"no ticket #{number}", EX_DATAERR)
        planned = kb_workflow.plan(desk.context, session, command, "", ticket=ticket)
        if not isinstance(planned, kb_workflow.Planned):
            fail(planned.problem, EX_DATAERR)
        article = kb_workflow.apply(desk.context, session, agent, planned, app.clock.now(), ticket)
        click.echo(f"{article.key}: draft #{article.id} sent for review")


@kb.command("deflection")
@click.option("--now", "now_text", help="As of this ISO time (default: now, UTC).")
@click.option("--since", "since_text", help="Only articles published since this ISO time.")
def kb_deflection(now_text: str | None, since_text: str | None) -> None:
    """Tickets per 30 days before and after each article, and articles published per month."""
    app = current_app()
    now = parse_time(now_text) or app.clock.now()
    with transaction(app.sessions, commit=False) as session:
        report = deflection_report(session, app.settings, now, parse_time(since_text))
    click.echo(f"{'key':<12} {'changed':<20} {'before':>6} {'after':>6} reduction")
    for row in report.rows:
        cut = "-" if row.reduction is None else f"{row.reduction:.0%}"
        changed = row.changed_at.strftime("%Y-%m-%d %H:%M")
        click.echo(f"{row.key:<12} {changed:<20} {row.before:>6} {row.after:>6} {cut}")
    for month, count in report.published:
        click.echo(f"{month}: {count} article(s) published (target {report.target})")

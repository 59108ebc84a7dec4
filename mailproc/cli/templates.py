"""The ``mailproc templates`` commands: render one template with sample data, check them all."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, cast

import click

from mailproc.cli.context import current_app
from mailproc.cli.errors import EX_DATAERR
from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.errors import NotFoundError, PermanentError
from mailproc.outbound.contexts import TEMPLATES, TemplateContext
from mailproc.outbound.render import Renderer, RenderError
from mailproc.outbound.samples import SAMPLES, UNKNOWN_SENDER_SAMPLES, check_templates
from mailproc.store.db import transaction
from mailproc.store.repo import ticket_by_number, to_core_customer


def _renderer(ctx: click.Context) -> Renderer:
    """The renderer the composition root put in ``ctx.obj``, else one with default settings."""
    found = ctx.find_object(Renderer)
    return found if found is not None else Renderer()


@click.group("templates")
def templates() -> None:
    """Render and check the outbound mail templates."""


@templates.command("render")
@click.argument("name", type=click.Choice(sorted(TEMPLATES)))
@click.option("--locale", type=click.Choice(SUPPORTED_LOCALES), default="en", show_default=True)
@click.option(
    "--part",
    type=click.Choice(["text", "html", "subject"]),
    default="text",
    show_default=True,
    help="Which part to print; text is preceded by its subject.",
)
@click.option("--ticket", "ticket_number", type=int, help="Fill the facts from ticket N.")
@click.option(
    "--unknown-sender",
    is_flag=True,
    help="The sample written to a sender not in the customer list (where its wording differs).",
)
@click.pass_context
def render_command(
    ctx: click.Context,
    name: str,
    locale: str,
    part: str,
    ticket_number: int | None,
    unknown_sender: bool,
) -> None:
    """Render template NAME with its sample data (the customer and ticket of N with --ticket)."""
    context = SAMPLES[name]
    if unknown_sender:
        if name not in UNKNOWN_SENDER_SAMPLES:
            known = ", ".join(sorted(UNKNOWN_SENDER_SAMPLES))
            raise click.UsageError(f"{name} reads the same to anyone; --unknown-sender: {known}")
        context = UNKNOWN_SENDER_SAMPLES[name]
    renderer = _renderer(ctx)
    if ticket_number is not None:
        context, renderer = _with_ticket(context, ticket_number, locale)
    try:
        mail = renderer.render(context, locale)
    except RenderError as exc:
        raise PermanentError(str(exc)) from exc
    if part == "subject":
        click.echo(mail.subject)
    elif part == "html":
        click.echo(mail.html, nl=False)
    else:
        click.echo(f"Subject: {mail.subject}\n\n{mail.text}", nl=False)


def _with_ticket(
    sample: TemplateContext, number: int, locale: str
) -> tuple[TemplateContext, Renderer]:
    """The sample with its customer and ticket replaced by ticket ``number``'s real ones."""
    app = current_app()
    notifier = app.notifier(app.reply_scheme())
    with transaction(app.sessions, commit=False) as session:
        ticket = ticket_by_number(session, number)
        if ticket is None:
            raise NotFoundError(f"no ticket #{number}")
        customer = to_core_customer(ticket.customer) if ticket.customer is not None else None
        names = {field.name for field in dataclasses.fields(sample)}
        facts: dict[str, object] = {}
        if "customer" in names:
            facts["customer"] = notifier.customer_info(ticket, customer)
        if "ticket" in names:
            facts["ticket"] = notifier.ticket_info(ticket, customer, locale)
    return dataclasses.replace(cast(Any, sample), **facts), notifier.renderer


@templates.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Render every template in every locale; list the problems if any (exit 65)."""
    problems = check_templates(_renderer(ctx))
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(EX_DATAERR)
    click.echo(
        f"{len(TEMPLATES)} templates x {len(SUPPORTED_LOCALES)} locales: no problems "
        f"({len(UNKNOWN_SENDER_SAMPLES)} unknown-sender samples included)"
    )

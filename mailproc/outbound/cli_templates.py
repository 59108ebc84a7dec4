"""The ``mailproc templates`` commands: render one template with sample data, check them all."""

from __future__ import annotations

import click

from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.outbound.render import SAMPLES, TEMPLATES, Renderer, RenderError, check_templates


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
@click.pass_context
def render_command(ctx: click.Context, name: str, locale: str, part: str) -> None:
    """Render template NAME with its sample data."""
    try:
        mail = _renderer(ctx).render(name, locale, SAMPLES[name])
    except RenderError as exc:
        raise click.ClickException(str(exc)) from exc
    if part == "subject":
        click.echo(mail.subject)
    elif part == "html":
        click.echo(mail.html, nl=False)
    else:
        click.echo(f"Subject: {mail.subject}\n\n{mail.text}", nl=False)


@templates.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Render every template in every locale; exit 1 and list the problems if any."""
    problems = check_templates(_renderer(ctx))
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"{len(TEMPLATES)} templates x {len(SUPPORTED_LOCALES)} locales: no problems")

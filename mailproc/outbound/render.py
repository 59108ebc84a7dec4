"""Rendering: one Jinja2 environment per locale turns a template context into a mail's parts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    pass_eval_context,
    select_autoescape,
)
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

from mailproc.core.locale_policy import SUPPORTED_LOCALES
from mailproc.outbound.contexts import TemplateContext
from mailproc.outbound.i18n import SafeCatalog, UnformattableValue, load_catalog, locale_filters
from mailproc.outbound.values import Company
from mailproc.resources import resource_path

PARTS: Final = ("subject.txt", "body.txt", "body.html")
LAYOUTS_FOLDER: Final = "layouts"  # shared layouts and macros, not a template

# The HTML parts import the shared macros under this name: the same source as the text
# parts' macros.txt, compiled with HTML autoescape. A macro's output takes the caller's
# autoescape mode, so text-compiled macros would hand unescaped customer data to HTML.
_HTML_ALIASES: Final = {"layouts/macros.html": "layouts/macros.txt"}

_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


class RenderError(ValueError):
    """A mail cannot be rendered: unknown template or locale, a value it cannot show, a bug.

    Permanent: rendering the same input again fails the same way.
    """


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """One rendered template: a one-line subject, a text/plain and a text/html body."""

    template: str
    locale: str
    subject: str
    text: str
    html: str


def ticket_tag(number: int) -> str:
    """The subject tag that names a ticket, e.g. ``[Ticket #12345]``."""
    return f"[Ticket #{number}]"


class _TemplateLoader(FileSystemLoader):
    """Loads ``templates/``, serving each HTML alias from its text source."""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        return super().get_source(environment, _HTML_ALIASES.get(template, template))


def mailto(address: str, subject: str, body: str = "") -> str:
    """A ``mailto:`` URL (RFC 6068) with a subject and an optional body."""
    url = f"mailto:{quote(address, safe='@+')}?subject={quote(_plain(subject), safe='')}"
    return url + (f"&body={quote(_plain(body), safe='')}" if body else "")


def paragraphs(text: str) -> Markup:
    """Plain text as HTML paragraphs: escaped, blank lines split paragraphs, newlines kept."""
    blocks = [block.strip("\n") for block in re.split(r"\n\s*\n", text.strip())]
    return Markup("\n").join(
        Markup("<p>")
        + Markup("<br>\n").join(escape(line) for line in block.split("\n"))
        + Markup("</p>")
        for block in blocks
        if block
    )


def quote_lines(text: str) -> str:
    """Plain text quoted mail-style, ``> `` before every line."""
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def _plain(value: str) -> str:
    return value.unescape() if isinstance(value, Markup) else str(value)


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, one final newline."""
    text = _TRAILING_SPACE.sub("\n", text.replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip("\n") + "\n"


_TEXT_FILTERS: Final[dict[str, Callable[..., str]]] = {
    "mailto": mailto,
    "paragraphs": paragraphs,
    "quote": quote_lines,
    "ticket_tag": ticket_tag,
}


def _direct_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """The i18n extension's new-style ``gettext`` and ``_`` (the same escaping and
    ``%``-formatting), calling the catalog directly: Jinja2's own goes through the template
    context twice per string, a fifth of a render with ~26 strings a mail."""

    @pass_eval_context
    def gettext(eval_context: EvalContext, message: str, /, **variables: Any) -> str:
        translated = translate(message)
        if eval_context.autoescape:
            translated = Markup(translated)
        return translated % variables

    return gettext


class Renderer:
    """Renders the templates of ``templates_dir`` with the catalogs of ``locales_dir``.

    One Jinja2 environment per supported locale is built up front, with that locale's
    catalog and formatting filters installed; compiled templates are cached inside it.
    """

    def __init__(
        self,
        company: Company | None = None,
        *,
        templates_dir: Path | None = None,
        locales_dir: Path | None = None,
    ) -> None:
        self.company = company or Company()
        self.templates_dir = templates_dir or resource_path("templates")
        self.locales_dir = locales_dir or resource_path("locales")
        loader = _TemplateLoader(self.templates_dir)
        self._catalogs = {
            locale: load_catalog(self.locales_dir, locale) for locale in SUPPORTED_LOCALES
        }
        self._environments = {
            locale: self._environment(loader, locale, catalog)
            for locale, catalog in self._catalogs.items()
        }

    def _environment(
        self, loader: _TemplateLoader, locale: str, catalog: SafeCatalog
    ) -> Environment:
        environment = Environment(
            loader=loader,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        environment.install_gettext_callables(  # type: ignore[attr-defined]
            catalog.gettext, catalog.ngettext, newstyle=True
        )
        gettext = _direct_gettext(catalog.gettext)
        environment.globals.update(gettext=gettext, _=gettext)
        environment.filters.update(locale_filters(locale))
        environment.filters.update(_TEXT_FILTERS)
        environment.globals.update(company=self.company, locale=locale)
        return environment

    def render(self, context: TemplateContext, locale: str) -> RenderedMail:
        """Render the context's template in ``locale``; customer text in it is data only."""
        name = context.template
        environment = self._environments.get(locale)
        if environment is None:
            raise RenderError(f"unsupported locale {locale!r}; expected one of {SUPPORTED_LOCALES}")
        variables = {item.name: getattr(context, item.name) for item in fields(context)}
        try:
            subject, text, html = (
                environment.get_template(f"{name}/{part}").render(variables) for part in PARTS
            )
        except (TemplateError, UnformattableValue) as exc:
            raise RenderError(f"template {name!r} ({locale}): {exc}") from exc
        return RenderedMail(
            template=name,
            locale=locale,
            subject=" ".join(subject.split()),
            text=_tidy(text),
            html=html.strip() + "\n",
        )

    def fallbacks(self, locale: str) -> frozenset[str]:
        """Source strings rendered in English so far because ``locale`` lacks a translation."""
        return frozenset(self._catalogs[locale].fallbacks)

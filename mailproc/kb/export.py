"""Published articles as Markdown or HTML, one locale at a time, for a docs site (§9.1)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from mailproc.core.catalog import FALLBACK_LANGUAGE
from mailproc.store.models import KbArticle


def _version(article: KbArticle, locale: str) -> tuple[str, list[str]]:
    title = article.titles.get(locale) or article.titles.get(FALLBACK_LANGUAGE) or article.key
    return title, article.steps.get(locale) or article.steps.get(FALLBACK_LANGUAGE) or []


def to_markdown(articles: Sequence[KbArticle], locale: str) -> str:
    """One section per article: ``## CODE: Title`` and its numbered steps."""
    parts = []
    for article in articles:
        title, steps = _version(article, locale)
        lines = "\n".join(f"{n}. {step}" for n, step in enumerate(steps, 1))
        parts.append(f"## {article.key}: {title}\n\n{lines}\n")
    return "\n".join(parts)


def to_html(articles: Sequence[KbArticle], locale: str) -> str:
    """One ``<section>`` per article, every text escaped."""
    parts = [f'<article lang="{html.escape(locale)}">']
    for article in articles:
        title, steps = _version(article, locale)
        items = "".join(f"<li>{html.escape(step)}</li>" for step in steps)
        key = html.escape(article.key)
        parts.append(
            f'<section id="{key}"><h2>{key}: {html.escape(title)}</h2><ol>{items}</ol></section>'
        )
    parts.append("</article>")
    return "\n".join(parts) + "\n"

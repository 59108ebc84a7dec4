"""Articles in the store: the live and open revisions of a key, the catalog seed, ticket counts.

The shipped error-code catalog is the first published revision of each code. A code with no
article row at all is quoted from the catalog as it is, so nothing customers see changes until
someone writes about it; `seed_catalog` (run by `mailproc init` and `db upgrade`) writes the
rows, and a draft for an unseeded code seeds it first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from mailproc.core.catalog import FALLBACK_LANGUAGE, Catalog, ErrorCode
from mailproc.core.kb import (
    OPEN_STATUSES,
    SEED_AUTHOR,
    ArticleStatus,
    Visibility,
    default_visibility,
    issue_keys,
)
from mailproc.store.models import KbAlert, KbArticle, Ticket
from mailproc.store.staged import forget_memo, memo_get, scope_memo


@dataclass(frozen=True, slots=True)
class QuotedArticle:
    """What an acknowledgment shows of an article, in the customer's language or English."""

    title: str
    steps: tuple[str, ...]
    in_english: bool  # no version in the customer's language


def published(session: Session, key: str) -> KbArticle | None:
    """The key's published revision, if any."""
    return session.scalars(
        select(KbArticle).where(KbArticle.key == key, KbArticle.status == ArticleStatus.PUBLISHED)
    ).first()


def open_revision(session: Session, key: str) -> KbArticle | None:
    """The key's revision in draft or in review, if any."""
    return session.scalars(
        select(KbArticle).where(KbArticle.key == key, KbArticle.status.in_(OPEN_STATUSES))
    ).first()


def has_article(session: Session, key: str) -> bool:
    """Whether any revision of ``key`` was ever written."""
    return bool(session.scalar(select(exists().where(KbArticle.key == key))))


def was_alerted(session: Session, key: str) -> bool:
    """Whether ``key`` was ever reported as a recurring issue (how rule keys become known)."""
    return bool(session.scalar(select(exists().where(KbAlert.key == key))))


def seed_entry(session: Session, entry: ErrorCode, now: dt.datetime) -> KbArticle:
    """Write a catalog entry as the code's first published article."""
    article = KbArticle(
        key=entry.code,
        status=ArticleStatus.PUBLISHED,
        visibility=default_visibility(f"{entry.area} {entry.title('en')}"),
        titles=dict(entry.titles),
        steps={locale: list(lines) for locale, lines in entry.steps.items()},
        author=SEED_AUTHOR,
        note="",
        created_at=now,
        updated_at=now,
        published_at=now,
    )
    session.add(article)
    session.flush()
    forget_quotes(session)
    return article


def seed_catalog(session: Session, catalog: Catalog, now: dt.datetime) -> int:
    """Write every catalog code that has no article yet; return how many were written."""
    written = set(session.scalars(select(KbArticle.key).distinct()))
    entries = [entry for code, entry in sorted(catalog.codes.items()) if code not in written]
    for entry in entries:
        seed_entry(session, entry, now)
    return len(entries)


def quoted(session: Session, catalog: Catalog, code: str, locale: str) -> QuotedArticle | None:
    """The steps an acknowledgment quotes for ``code``: the published public article only."""
    source = _quotable(session, catalog, code)
    if source is None:
        return None
    titles, steps = source
    lines = steps.get(locale) or steps.get(FALLBACK_LANGUAGE) or []
    if not lines:
        return None
    title = titles.get(locale) or titles.get(FALLBACK_LANGUAGE) or code
    return QuotedArticle(title, tuple(lines), locale not in steps)


_QUOTABLE = "kb_quotable"  # the staging scope's memo: code -> (titles, steps) or None
_Quotable = tuple[Mapping[str, str], Mapping[str, list[str]]]
_UNREAD = object()


def _quotable(session: Session, catalog: Catalog, code: str) -> _Quotable | None:
    """The titles and steps ``code`` may quote (read once per staging scope)."""
    found = memo_get(session, _QUOTABLE, code, _UNREAD)
    if found is not _UNREAD:
        return cast(_Quotable | None, found)
    article = published(session, code)
    source: _Quotable | None
    if article is None:
        entry = catalog.get(code)
        if entry is None or has_article(session, code):
            source = None  # retired with nothing in its place
        else:
            source = dict(entry.titles), {k: list(v) for k, v in entry.steps.items()}
    elif article.visibility != Visibility.PUBLIC:
        source = None
    else:
        source = article.titles, article.steps
    memo = scope_memo(session, _QUOTABLE)
    if memo is not None:
        memo[code] = source
    return source


def forget_quotes(session: Session) -> None:
    """An article changed: what acknowledgments quote is read anew."""
    forget_memo(session, _QUOTABLE)


def tickets_by_key(
    session: Session, start: dt.datetime, end: dt.datetime, keys: set[str] | None = None
) -> dict[str, list[dt.datetime]]:
    """When each key's tickets were received in ``[start, end)`` (all keys, or ``keys``);
    history imports do not count (no recurring-issue alert, not in the reports)."""
    found: dict[str, list[dt.datetime]] = {}
    rows = session.execute(
        select(Ticket.received_at, Ticket.classification).where(
            Ticket.received_at >= start, Ticket.received_at < end, Ticket.imported_at.is_(None)
        )
    )
    for received_at, classification in rows:
        for key in issue_keys(classification or {}):
            if keys is None or key in keys:
                found.setdefault(key, []).append(received_at)
    return found


def last_reviewed(session: Session) -> dict[str, dt.datetime]:
    """When each key's article was last published by a reviewer (catalog seeds do not count)."""
    rows = session.execute(
        select(KbArticle.key, KbArticle.published_at).where(
            KbArticle.reviewer.is_not(None), KbArticle.published_at.is_not(None)
        )
    )
    latest: dict[str, dt.datetime] = {}
    for key, at in rows:
        if at is not None and (key not in latest or at > latest[key]):
            latest[key] = at
    return latest

"""Ticket deflection (§9.3): per key, tickets per 30 days before and after its article was
published or updated, and articles published per month against the target (10).

`deflection_report` is what `mailproc kb deflection` prints and the quarterly report quotes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproc.config import Settings
from mailproc.core.kb import SEED_AUTHOR, Deflection, deflection, month_of
from mailproc.kb.articles import tickets_by_key
from mailproc.store.models import KbArticle

WINDOW = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class DeflectionReport:
    """Each reviewed publication's before/after counts, and publications per month."""

    rows: tuple[Deflection, ...]
    published: tuple[tuple[str, int], ...]  # (YYYY-MM, articles published), oldest first
    target: int


def deflection_report(
    session: Session, settings: Settings, now: dt.datetime, since: dt.datetime | None = None
) -> DeflectionReport:
    """Every article published by a reviewer (since ``since``), newest change per key last."""
    query = select(KbArticle.key, KbArticle.published_at).where(
        KbArticle.published_at.is_not(None), KbArticle.author != SEED_AUTHOR
    )
    if since is not None:
        query = query.where(KbArticle.published_at >= since)
    changes = [(key, at) for key, at in session.execute(query.order_by(KbArticle.published_at))]
    if not changes:
        return DeflectionReport((), (), settings.kb.monthly_target)
    start = min(at for _, at in changes if at is not None) - WINDOW
    received = tickets_by_key(session, start, now, {key for key, _ in changes})
    rows = tuple(
        deflection(key, at, received.get(key, ()), now, WINDOW) for key, at in changes if at
    )
    months: dict[str, int] = {}
    for _, at in changes:
        if at is not None:
            months[month_of(at)] = months.get(month_of(at), 0) + 1
    return DeflectionReport(rows, tuple(sorted(months.items())), settings.kb.monthly_target)

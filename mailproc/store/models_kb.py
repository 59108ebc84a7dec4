"""The knowledge base's tables (§9): article revisions and recurring-issue alerts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from mailproc.store.base import Base, UtcDateTime


class KbArticle(Base):
    """One revision of a knowledge-base article (§9): per-locale title and steps, its state.

    At most one revision of a key is open (draft or in review) and one is published: partial
    unique indexes keep that true under concurrent mail.
    """

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    visibility: Mapped[str] = mapped_column(String(8))
    titles: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    steps: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    author: Mapped[str] = mapped_column(String(320))
    reviewer: Mapped[str | None] = mapped_column(String(320))
    source_ticket: Mapped[int | None] = mapped_column(Integer)  # the ticket drafted from
    note: Mapped[str] = mapped_column(Text, default="")  # a reviewer's reason to reject
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    published_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(
            "uq_kb_articles_open_key",
            "key",
            unique=True,
            sqlite_where=text("status IN ('draft', 'in_review')"),
            postgresql_where=text("status IN ('draft', 'in_review')"),
        ),
        Index(
            "uq_kb_articles_published_key",
            "key",
            unique=True,
            sqlite_where=text("status = 'published'"),
            postgresql_where=text("status = 'published'"),
        ),
    )


class KbAlert(Base):
    """A recurring issue (§9.2.1) the managers were told of: one per key and month."""

    __tablename__ = "kb_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    month: Mapped[str] = mapped_column(String(7))
    count: Mapped[int] = mapped_column(Integer)
    alerted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    realerted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("key", "month", name="uq_kb_alerts_key_month"),)

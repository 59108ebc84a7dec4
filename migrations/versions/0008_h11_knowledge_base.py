"""Knowledge base (§9): article revisions and recurring-issue alerts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 15:40:00.000000

The shipped error-code catalog needs no rows: a code without any article is quoted from the
catalog, and `mailproc init` / `db upgrade` write the catalog's entries as published articles.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('draft', 'in_review')"
_PUBLISHED = "status = 'published'"


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("visibility", sa.String(length=8), nullable=False),
        sa.Column("titles", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("reviewer", sa.String(length=320), nullable=True),
        sa.Column("source_ticket", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_articles")),
    )
    op.create_index(op.f("ix_kb_articles_key"), "kb_articles", ["key"], unique=False)
    for name, where in (
        ("uq_kb_articles_open_key", _OPEN),
        ("uq_kb_articles_published_key", _PUBLISHED),
    ):
        op.create_index(
            name,
            "kb_articles",
            ["key"],
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    op.create_table(
        "kb_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("realerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_alerts")),
        sa.UniqueConstraint("key", "month", name="uq_kb_alerts_key_month"),
    )


def downgrade() -> None:
    op.drop_table("kb_alerts")
    op.drop_index("uq_kb_articles_published_key", table_name="kb_articles")
    op.drop_index("uq_kb_articles_open_key", table_name="kb_articles")
    op.drop_index(op.f("ix_kb_articles_key"), table_name="kb_articles")
    op.drop_table("kb_articles")

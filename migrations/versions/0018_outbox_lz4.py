"""Outbound mail bytes compressed with lz4 on PostgreSQL (issue 18)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 20:30:00.000000

``outbox.raw`` (a few kilobytes per mail, written once by the deliverer) is compressed with
lz4 instead of pglz where the server supports it (PostgreSQL 14 and later, built with lz4):
keeping a batch's bytes costs a quarter less (``benchmarks/bench_deliver.py``). Values stored
before keep their compression. SQLite and servers without lz4 are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LZ4 = sa.text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(_LZ4).scalar():
        op.execute("ALTER TABLE outbox ALTER COLUMN raw SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(_LZ4).scalar():
        op.execute("ALTER TABLE outbox ALTER COLUMN raw SET COMPRESSION DEFAULT")

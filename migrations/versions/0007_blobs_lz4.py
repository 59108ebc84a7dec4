"""PostgreSQL: raw mail (blobs.data) compressed with lz4 where the server has it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 13:40:00.000000

lz4 compresses and decompresses several times faster than the default pglz at a similar
ratio on mail; the column's setting applies to rows written from now on (older rows stay as
they are, and both read the same). SQLite and servers built without lz4 are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _has_lz4() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        bind.exec_driver_sql(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        ).scalar()
    )


def upgrade() -> None:
    if _has_lz4():
        op.execute("ALTER TABLE blobs ALTER COLUMN data SET COMPRESSION lz4")


def downgrade() -> None:
    if _has_lz4():
        op.execute("ALTER TABLE blobs ALTER COLUMN data SET COMPRESSION pglz")
